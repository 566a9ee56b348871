"""/v1/responses: OpenAI's Responses API (create, retrieve, delete, input_items), on the chat pipeline."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query
from fastapi.responses import JSONResponse, StreamingResponse
from ortserve_common.protocol.responses import MAX_PAGE, ResponsesRequest
from ortserve_common.sse import SSE_HEADERS, sse_event_stream

from chat_service.dependencies import OwnerDep, PriorityDep, ResponsesServingDep

responses_router = APIRouter(prefix="/v1/responses", tags=["responses"])


@responses_router.post("", response_model=None)
async def create_response(
    request: ResponsesRequest, serving: ResponsesServingDep, owner: OwnerDep, priority: PriorityDep
) -> JSONResponse | StreamingResponse:
    result = await serving.create(request, owner, priority)
    if isinstance(result, dict):
        return JSONResponse(result)
    return StreamingResponse(sse_event_stream(result), media_type="text/event-stream", headers=SSE_HEADERS)


@responses_router.get("/{response_id}")
async def retrieve_response(response_id: str, serving: ResponsesServingDep, owner: OwnerDep) -> dict[str, Any]:
    return await serving.retrieve(owner, response_id)


@responses_router.delete("/{response_id}")
async def delete_response(response_id: str, serving: ResponsesServingDep, owner: OwnerDep) -> dict[str, Any]:
    return await serving.delete(owner, response_id)


@responses_router.get("/{response_id}/input_items")
async def list_input_items(
    response_id: str,
    serving: ResponsesServingDep,
    owner: OwnerDep,
    after: Annotated[str | None, Query(min_length=1)] = None,
    limit: Annotated[int, Query(ge=1, le=MAX_PAGE)] = 20,
    order: Literal["asc", "desc"] = "desc",
) -> dict[str, Any]:
    return await serving.input_items(owner, response_id, after, limit, order)
