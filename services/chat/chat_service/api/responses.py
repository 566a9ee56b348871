"""/v1/responses: OpenAI's Responses API (create, retrieve, delete, input_items, compact, and WebSocket mode), on
the chat pipeline."""

from __future__ import annotations

import asyncio
import json
from contextlib import aclosing
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query, WebSocket, WebSocketDisconnect
from fastapi.responses import JSONResponse, StreamingResponse
from ortserve_common.protocol.responses import MAX_PAGE, CompactRequest, ResponsesRequest
from ortserve_common.server import is_draining
from ortserve_common.sse import SSE_HEADERS, sse_event_stream

from chat_service.dependencies import CompactionServingDep, OwnerDep, PriorityDep, ResponsesServingDep
from chat_service.responses.socket_session import SocketSession

# How often an idle socket looks whether the service drains (it then closes with 1001, going away).
_DRAIN_POLL_S = 0.5

responses_router = APIRouter(prefix="/v1/responses", tags=["responses"])


@responses_router.post("", response_model=None)
async def create_response(
    request: ResponsesRequest, serving: ResponsesServingDep, owner: OwnerDep, priority: PriorityDep
) -> JSONResponse | StreamingResponse:
    result = await serving.create(request, owner, priority)
    if isinstance(result, dict):
        return JSONResponse(result)
    return StreamingResponse(sse_event_stream(result), media_type="text/event-stream", headers=SSE_HEADERS)


@responses_router.post("/compact")
async def compact_response(
    request: CompactRequest, serving: CompactionServingDep, owner: OwnerDep, priority: PriorityDep
) -> dict[str, Any]:
    return await serving.compact(request, owner, priority)


@responses_router.websocket("")
async def responses_socket(websocket: WebSocket, owner: OwnerDep, priority: PriorityDep) -> None:
    """WebSocket mode: `response.create` messages, each answered with its stream of events, one turn at a time."""
    await websocket.accept()
    app = websocket.app
    session = SocketSession(app.state.responses_serving, owner, app.state.settings.websocket_cache_responses, priority)
    try:
        while True:
            message = await _next_message(websocket)
            if message is None:
                await websocket.close(1001, "The server is draining; reconnect to another instance.")
                return
            async with aclosing(session.turn(message)) as events:
                async for event in events:
                    await websocket.send_text(json.dumps(event))
    except WebSocketDisconnect:
        return


async def _next_message(websocket: WebSocket) -> str | None:
    """The next text message, or None once the service drains (a turn in flight is finished first)."""
    while not is_draining(websocket.app):
        try:
            message = await asyncio.wait_for(websocket.receive(), _DRAIN_POLL_S)
        except TimeoutError:
            continue
        if message["type"] == "websocket.disconnect":
            raise WebSocketDisconnect(message.get("code", 1000))
        text = message.get("text")
        return text if text is not None else (message.get("bytes") or b"").decode("utf-8", "replace")
    return None


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
