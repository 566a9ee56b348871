"""The ASGI side of per-key limits: reads the key id and limits nginx set from its key check, admits the request
(reading the body's `model` only when the key has an allow-list), puts the request's KeyRequest where the serving
code charges tokens to it, adds the rate-limit headers to every answer, and releases the in-flight entry at the end.

Pure ASGI, like the request-context middleware: streamed bodies pass through untouched and the release happens after
the last byte, so a stream holds its in-flight entry for its whole life.
"""

from __future__ import annotations

import json
from typing import Any

import anyio
from fastapi.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from ortserve_common.errors import OpenAIError
from ortserve_common.limits.limiter import KeyLimiter, current_key_request
from ortserve_common.limits.model import KEY_ID_HEADER, KEY_LIMITS_HEADER, KeyLimits
from ortserve_common.logs import record_request_fields

# The routes that do work a key is limited on; every other route (conversations, tokenize, health) is not counted.
LIMITED_PATHS = frozenset(
    {"/v1/chat/completions", "/v1/completions", "/v1/responses", "/v1/messages", "/v1/embeddings", "/v1/rerank"}
)
# Anthropic's SDKs read only Anthropic's error shape on its route.
_ANTHROPIC_TYPES = {403: "permission_error", 429: "rate_limit_error"}


class KeyLimitsMiddleware:
    def __init__(self, app: ASGIApp, limiter: KeyLimiter) -> None:
        self.app = app
        self.limiter = limiter

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope.get("method") != "POST" or scope.get("path") not in LIMITED_PATHS:
            await self.app(scope, receive, send)
            return
        headers = dict(scope.get("headers") or [])
        key_id = headers.get(KEY_ID_HEADER.lower().encode(), b"").decode("latin-1")
        if not key_id:  # reached without the proxy: nobody to count against
            await self.app(scope, receive, send)
            return
        limits = KeyLimits.from_header(headers.get(KEY_LIMITS_HEADER.lower().encode(), b"").decode("latin-1"))
        model = None
        if limits is not None and limits.models is not None:
            body, receive = await _buffered(receive)
            model = _model_of(body)
        try:
            request = await self.limiter.admit(key_id, limits, model)
        except OpenAIError as exc:
            record_request_fields(limit_refused=exc.code or exc.type)
            await _refusal(exc, scope["path"])(scope, receive, send)
            return
        extra = [(k.encode(), v.encode()) for k, v in request.headers.items()]

        async def send_with_headers(message: Message) -> None:
            if extra and message["type"] == "http.response.start":
                message["headers"] = [*message.get("headers", []), *extra]
            await send(message)

        token = current_key_request.set(request)
        try:
            await self.app(scope, receive, send_with_headers)
        finally:
            current_key_request.reset(token)
            # Shielded: a request cancelled by its client's disconnect must still leave the in-flight set now, not
            # when its entry ages out an hour later.
            with anyio.CancelScope(shield=True):
                await request.release()


async def _buffered(receive: Receive) -> tuple[bytes, Receive]:
    """The whole body (nginx already bounded its size), and a receive that hands it to the app again."""
    chunks: list[bytes] = []
    while True:
        message = await receive()
        if message["type"] != "http.request":
            break
        chunks.append(message.get("body", b""))
        if not message.get("more_body", False):
            break
    body = b"".join(chunks)
    replayed = False

    async def replay() -> Message:
        nonlocal replayed
        if not replayed:
            replayed = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return body, replay


def _model_of(body: bytes) -> str | None:
    """The body's model, or None: a body the service will refuse anyway (not JSON, no model) is left to it."""
    try:
        data: Any = json.loads(body)
    except ValueError:
        return None
    model = data.get("model") if isinstance(data, dict) else None
    return model if isinstance(model, str) else None


def _refusal(exc: OpenAIError, path: str) -> JSONResponse:
    if path == "/v1/messages":
        body: dict[str, Any] = {
            "type": "error",
            "error": {"type": _ANTHROPIC_TYPES.get(exc.status, "api_error"), "message": exc.message},
        }
    else:
        body = exc.body()
    return JSONResponse(body, status_code=exc.status, headers=exc.headers)
