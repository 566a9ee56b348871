"""/v1/messages and /v1/messages/count_tokens: Anthropic's Messages API, on the chat pipeline.

Every refusal on these routes is Anthropic's error object (`{"type": "error", "error": {"type", "message"}}`),
since Anthropic's SDKs read only that shape; the route class converts what the rest of the service raises in
OpenAI's shape (validation errors included), so the serving layer raises the one error type everywhere.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Coroutine
from typing import Any

from fastapi import APIRouter, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, StreamingResponse
from fastapi.routing import APIRoute
from ortserve_common.errors import OpenAIError
from ortserve_common.protocol.messages import ANTHROPIC_ERROR_SCHEMA, CountTokensRequest, MessagesRequest
from ortserve_common.sse import SSE_HEADERS, sse_event_stream
from ortserve_common.validation import validation_error
from starlette.exceptions import HTTPException

from chat_service.dependencies import MessagesServingDep, OwnerDep, PriorityDep
from chat_service.messages.blocks import error_body

logger = logging.getLogger(__name__)


def anthropic_error(exc: OpenAIError) -> JSONResponse:
    """Anthropic's error object for one of ours (the app also answers an unknown method here with it)."""
    return JSONResponse(error_body(exc), status_code=exc.status, headers=exc.headers)


class AnthropicErrorRoute(APIRoute):
    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def route(request: Request) -> Response:
            try:
                return await handler(request)
            except RequestValidationError as exc:
                return anthropic_error(validation_error(exc.errors()))
            except OpenAIError as exc:
                return anthropic_error(exc)
            except HTTPException as exc:  # a body that is not even UTF-8 text
                return anthropic_error(OpenAIError(exc.status_code, str(exc.detail)))
            except Exception:
                logger.exception("unhandled error on %s", request.url.path)
                return anthropic_error(OpenAIError(500, "Internal server error.", "server_error"))

        return route


_ERRORS: dict[int | str, dict[str, Any]] = {
    "default": {
        "description": "A refusal or failure, in Anthropic's error shape",
        "content": {"application/json": {"schema": ANTHROPIC_ERROR_SCHEMA}},
    }
}
messages_router = APIRouter(
    prefix="/v1/messages", tags=["messages"], route_class=AnthropicErrorRoute, responses=_ERRORS
)


@messages_router.post("", response_model=None)
async def create_message(
    request: MessagesRequest, serving: MessagesServingDep, owner: OwnerDep, priority: PriorityDep
) -> JSONResponse | StreamingResponse:
    result = await serving.create(request, owner, priority)
    if isinstance(result, dict):
        return JSONResponse(result)
    return StreamingResponse(sse_event_stream(result), media_type="text/event-stream", headers=SSE_HEADERS)


@messages_router.post("/count_tokens")
async def count_tokens(request: CountTokensRequest, serving: MessagesServingDep, owner: OwnerDep) -> dict[str, int]:
    return await serving.count_tokens(request, owner)
