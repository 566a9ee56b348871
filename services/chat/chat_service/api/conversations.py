"""/v1/conversations: OpenAI's Conversations API (create, retrieve, update, delete, items), plus a paginated list."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query
from ortserve_common.protocol.conversations import (
    MAX_PAGE,
    Conversation,
    ConversationCreateRequest,
    ConversationDeleted,
    ConversationItemList,
    ConversationList,
    ConversationUpdateRequest,
    ItemsCreateRequest,
)

from chat_service.dependencies import ConversationServingDep, OwnerDep

conversations_router = APIRouter(prefix="/v1/conversations", tags=["conversations"])

Limit = Annotated[int, Query(ge=1, le=MAX_PAGE)]
After = Annotated[str | None, Query(min_length=1)]


@conversations_router.post("", response_model=Conversation)
async def create_conversation(
    body: ConversationCreateRequest, serving: ConversationServingDep, owner: OwnerDep
) -> Conversation:
    return await serving.create(owner, body)


@conversations_router.get("", response_model=ConversationList)
async def list_conversations(
    serving: ConversationServingDep,
    owner: OwnerDep,
    after: After = None,
    limit: Limit = 20,
    order: Literal["asc", "desc"] = "desc",
) -> ConversationList:
    return await serving.page(owner, after, limit, order)


@conversations_router.get("/{conversation_id}", response_model=Conversation)
async def retrieve_conversation(conversation_id: str, serving: ConversationServingDep, owner: OwnerDep) -> Conversation:
    return await serving.retrieve(owner, conversation_id)


@conversations_router.post("/{conversation_id}", response_model=Conversation)
async def update_conversation(
    conversation_id: str, body: ConversationUpdateRequest, serving: ConversationServingDep, owner: OwnerDep
) -> Conversation:
    return await serving.update(owner, conversation_id, body)


@conversations_router.delete("/{conversation_id}", response_model=ConversationDeleted)
async def delete_conversation(
    conversation_id: str, serving: ConversationServingDep, owner: OwnerDep
) -> ConversationDeleted:
    return await serving.delete(owner, conversation_id)


@conversations_router.post("/{conversation_id}/items", response_model=ConversationItemList)
async def create_items(
    conversation_id: str, body: ItemsCreateRequest, serving: ConversationServingDep, owner: OwnerDep
) -> ConversationItemList:
    return await serving.add_items(owner, conversation_id, body)


@conversations_router.get("/{conversation_id}/items", response_model=ConversationItemList)
async def list_items(
    conversation_id: str,
    serving: ConversationServingDep,
    owner: OwnerDep,
    after: After = None,
    limit: Limit = 20,
    order: Literal["asc", "desc"] = "desc",
) -> ConversationItemList:
    return await serving.list_items(owner, conversation_id, after, limit, order)


@conversations_router.get("/{conversation_id}/items/{item_id}")
async def retrieve_item(
    conversation_id: str, item_id: str, serving: ConversationServingDep, owner: OwnerDep
) -> dict[str, Any]:
    return await serving.get_item(owner, conversation_id, item_id)


@conversations_router.delete("/{conversation_id}/items/{item_id}", response_model=Conversation)
async def delete_item(
    conversation_id: str, item_id: str, serving: ConversationServingDep, owner: OwnerDep
) -> Conversation:
    return await serving.delete_item(owner, conversation_id, item_id)
