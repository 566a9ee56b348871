"""/v1/conversations: stored conversations and their items, per owner (no HTTP here).

The store blocks (SQLite or PostgreSQL), so every call runs on a worker thread; the event loop keeps streaming.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Literal, TypeVar

from anyio import to_thread
from ortserve_common.errors import OpenAIError, invalid_request
from ortserve_common.protocol.conversations import (
    Conversation,
    ConversationCreateRequest,
    ConversationDeleted,
    ConversationItemList,
    ConversationList,
    ConversationUpdateRequest,
    InputItem,
    InputMessageItem,
    ItemsCreateRequest,
)

from chat_service.conversations.items import item_body
from chat_service.conversations.store.conversations import ConversationRecord, ConversationStore, UnknownCursor

T = TypeVar("T")
Order = Literal["asc", "desc"]


def conversation_not_found(conversation_id: str, param: str | None = None) -> OpenAIError:
    return OpenAIError(
        404, f"No conversation found with id '{conversation_id}'.", "invalid_request_error", param, "not_found"
    )


def _item_not_found(item_id: str) -> OpenAIError:
    return OpenAIError(404, f"No item found with id '{item_id}'.", "invalid_request_error", None, "not_found")


def _conversation(record: ConversationRecord) -> Conversation:
    return Conversation(id=record.id, created_at=record.created_at, metadata=record.metadata)


def _unknown_cursor(after: str) -> OpenAIError:
    return invalid_request(f"Invalid 'after': no object with id '{after}' in this listing.", "after")


def _stored_items(items: list[InputItem], where: str) -> list[dict[str, Any]]:
    """Items as stored; images are refused here: only a chat or responses request reads them (by OCR)."""
    for i, item in enumerate(items):
        if isinstance(item, InputMessageItem) and item.has_images():
            message = "Images cannot be added to a conversation directly; send them in a chat or responses request."
            raise invalid_request(message, f"{where}[{i}].content", "unsupported_parameter")
    return [item_body(item) for item in items]


class ConversationServing:
    def __init__(self, store: ConversationStore) -> None:
        self.store = store

    async def _run(self, call: Callable[..., T], *args: Any) -> T:
        return await to_thread.run_sync(call, *args)

    async def create(self, owner: str, body: ConversationCreateRequest) -> Conversation:
        items = _stored_items(body.items or [], "items")
        return _conversation(await self._run(self.store.create, owner, body.metadata or {}, items))

    async def retrieve(self, owner: str, conversation_id: str) -> Conversation:
        record = await self._run(self.store.get, owner, conversation_id)
        if record is None:
            raise conversation_not_found(conversation_id)
        return _conversation(record)

    async def page(self, owner: str, after: str | None, limit: int, order: Order) -> ConversationList:
        try:
            page = await self._run(self.store.page, owner, after, limit, order)
        except UnknownCursor:
            raise _unknown_cursor(after or "") from None
        data = [_conversation(r) for r in page.rows]
        return ConversationList(
            data=data,
            first_id=data[0].id if data else None,
            last_id=data[-1].id if data else None,
            has_more=page.has_more,
        )

    async def update(self, owner: str, conversation_id: str, body: ConversationUpdateRequest) -> Conversation:
        record = await self._run(self.store.update_metadata, owner, conversation_id, body.metadata)
        if record is None:
            raise conversation_not_found(conversation_id)
        return _conversation(record)

    async def delete(self, owner: str, conversation_id: str) -> ConversationDeleted:
        if not await self._run(self.store.delete, owner, conversation_id):
            raise conversation_not_found(conversation_id)
        return ConversationDeleted(id=conversation_id)

    async def add_items(self, owner: str, conversation_id: str, body: ItemsCreateRequest) -> ConversationItemList:
        stored = await self.append(owner, conversation_id, _stored_items(body.items, "items"))
        return ConversationItemList(data=stored, first_id=stored[0]["id"], last_id=stored[-1]["id"], has_more=False)

    async def list_items(
        self, owner: str, conversation_id: str, after: str | None, limit: int, order: Order
    ) -> ConversationItemList:
        try:
            page = await self._run(self.store.items, owner, conversation_id, after, limit, order)
        except UnknownCursor:
            raise _unknown_cursor(after or "") from None
        if page is None:
            raise conversation_not_found(conversation_id)
        rows = page.rows
        return ConversationItemList(
            data=rows,
            first_id=rows[0]["id"] if rows else None,
            last_id=rows[-1]["id"] if rows else None,
            has_more=page.has_more,
        )

    async def get_item(self, owner: str, conversation_id: str, item_id: str) -> dict[str, Any]:
        item = await self._run(self.store.item, owner, conversation_id, item_id)
        if item is None:
            await self.retrieve(owner, conversation_id)  # which 404: the conversation's, or the item's
            raise _item_not_found(item_id)
        return item

    async def delete_item(self, owner: str, conversation_id: str, item_id: str) -> Conversation:
        conversation = await self.retrieve(owner, conversation_id)
        if not await self._run(self.store.delete_item, owner, conversation_id, item_id):
            raise _item_not_found(item_id)
        return conversation

    # For chat completions that name a conversation ------------------------------------------------------------------
    async def history(self, owner: str, conversation_id: str) -> list[dict[str, Any]]:
        page = await self._run(self.store.items, owner, conversation_id)
        if page is None:
            raise conversation_not_found(conversation_id, "conversation")
        return page.rows

    async def append(self, owner: str, conversation_id: str, items: list[dict[str, Any]]) -> list[dict[str, Any]]:
        stored = await self._run(self.store.append, owner, conversation_id, items)
        if stored is None:
            raise conversation_not_found(conversation_id)
        return stored
