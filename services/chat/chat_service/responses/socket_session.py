"""WebSocket mode for /v1/responses (no transport here): one socket's `response.create` turns, one at a time.

Each turn answers with the same events a streamed response sends, ending in response.completed, .incomplete or
.failed, or with one `error` event when the request is refused before it starts. The socket keeps the chains of its
newest responses in its own cache, so `store: false` continues with `previous_response_id` on that socket; an id
that is neither cached nor stored for the key is `previous_response_not_found`, and a turn that fails evicts the id it
continued, so a retry from that id must start again (the Open Responses WebSocket rules).
"""

from __future__ import annotations

import json
import logging
from collections import OrderedDict
from collections.abc import AsyncGenerator
from contextlib import aclosing
from typing import Any

from ortserve_common.errors import OpenAIError, invalid_request
from ortserve_common.priority import DEFAULT_PRIORITY, Priority
from ortserve_common.protocol.responses import ResponsesRequest
from ortserve_common.validation import validation_error
from pydantic import ValidationError

from chat_service.responses.events import Event
from chat_service.responses.serving import ResponsesServing

logger = logging.getLogger(__name__)

# HTTP streaming knobs that mean nothing on a socket; Open Responses says a client MUST NOT send them.
_HTTP_ONLY_FIELDS = ("stream", "stream_options", "background")


def error_event(error: OpenAIError) -> Event:
    body = {"type": error.type, "code": error.code or error.type, "message": error.message, "param": error.param}
    return {"type": "error", "status": error.status, "error": body}


def previous_response_not_found(response_id: str) -> OpenAIError:
    message = (
        f"Previous response with id '{response_id}' not found: a store: false response can be continued only on the "
        "socket that made it, and not after a failed turn."
    )
    return OpenAIError(400, message, "invalid_request_error", "previous_response_id", "previous_response_not_found")


class SocketSession:
    def __init__(
        self, serving: ResponsesServing, owner: str, cache_size: int, priority: Priority = DEFAULT_PRIORITY
    ) -> None:
        self.serving = serving
        self.owner = owner
        self.priority = priority  # the key's, as on HTTP: every turn on the socket queues with it
        self.cache_size = cache_size
        self.cache: OrderedDict[str, list[dict[str, Any]]] = OrderedDict()  # response id → its whole chain

    async def turn(self, message: str) -> AsyncGenerator[Event, None]:
        """The events that answer one client message."""
        previous: str | None = None
        try:
            request = parse_create(message)
            previous = request.previous_response_id
            history = await self._history(previous)
            turn = await self.serving.prepare(request, self.owner, self.priority, history)
            events = self.serving.stream(turn)
            first = await anext(events)  # admission (a 429 or 503) happens here, before any event is sent
        except OpenAIError as exc:
            self._evict(previous)
            yield error_event(exc)
            return
        except Exception:  # the socket outlives one turn's bug: the client gets an error event, not a dropped socket
            logger.exception("websocket: a turn failed before it started")
            self._evict(previous)
            yield error_event(OpenAIError(500, "Internal server error.", "server_error", None, "server_error"))
            return
        failed = False
        async with aclosing(events):  # a client gone mid-turn ends the generation, as on HTTP
            yield first
            async for event in events:
                failed = failed or event["type"] == "response.failed"
                yield event
        if failed:
            self._evict(previous)
            return
        self.cache[turn.id] = turn.context
        while len(self.cache) > self.cache_size:
            self.cache.popitem(last=False)

    async def _history(self, previous: str | None) -> list[dict[str, Any]] | None:
        """The chain to continue: this socket's own first, then the key's stored responses."""
        if previous is None:
            return None
        if previous in self.cache:
            self.cache.move_to_end(previous)
            return self.cache[previous]
        try:
            return await self.serving.chain(self.owner, previous)
        except OpenAIError as exc:
            if exc.status == 404:
                raise previous_response_not_found(previous) from None
            raise

    def _evict(self, response_id: str | None) -> None:
        if response_id is not None and self.cache.pop(response_id, None) is not None:
            logger.info("websocket: response %s evicted after a failed turn", response_id)


def parse_create(message: str) -> ResponsesRequest:
    try:
        payload = json.loads(message)
    except ValueError:
        raise invalid_request("A WebSocket message must be a JSON object.", None, "invalid_json") from None
    if not isinstance(payload, dict) or payload.get("type") != "response.create":
        raise invalid_request("The only client event is {'type': 'response.create', ...}.", "type", "invalid_event")
    for name in _HTTP_ONLY_FIELDS:
        if name in payload:
            raise invalid_request(f"'{name}' is not sent in WebSocket mode (every turn streams).", name)
    try:
        return ResponsesRequest.model_validate({k: v for k, v in payload.items() if k != "type"})
    except ValidationError as exc:
        raise validation_error([dict(error) for error in exc.errors()]) from None
