"""FastAPI wiring shared by every service: error handlers, request ids, access logs, health and readiness."""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Callable
from contextlib import AbstractAsyncContextManager
from typing import Any

from fastapi import APIRouter, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from ortserve_common.errors import OpenAIError, error_body
from ortserve_common.logs import request_fields_var, request_id_var
from ortserve_common.validation import validation_error

access_logger = logging.getLogger("ortserve.access")
logger = logging.getLogger(__name__)

_QUIET_PATHS = frozenset({"/health", "/ready", "/metrics", "/internal/instances", "/internal/auth"})
_HTTP_CODES = {404: "not_found", 405: "method_not_allowed", 413: "payload_too_large", 415: "unsupported_media_type"}


def _error_response(exc: OpenAIError) -> JSONResponse:
    return JSONResponse(exc.body(), status_code=exc.status, headers=exc.headers)


async def _openai_error_handler(_: Request, exc: OpenAIError) -> JSONResponse:
    return _error_response(exc)


async def _validation_handler(_: Request, exc: RequestValidationError) -> JSONResponse:
    return _error_response(validation_error(exc.errors()))


async def _http_error_handler(request: Request, exc: StarletteHTTPException) -> JSONResponse:
    if exc.status_code == 404:
        message = f"Unknown path: {request.method} {request.url.path}"
    elif exc.status_code == 405:
        message = f"Method {request.method} is not allowed on {request.url.path}"
    else:
        message = str(exc.detail)
    type_ = "invalid_request_error" if exc.status_code < 500 else "server_error"
    err = OpenAIError(exc.status_code, message, type_, None, _HTTP_CODES.get(exc.status_code), dict(exc.headers or {}))
    return _error_response(err)


class RequestContextMiddleware:
    """Request id in and out, one JSON access line per request, and a JSON 500 for anything unhandled.

    Pure ASGI rather than BaseHTTPMiddleware so that streamed bodies pass through untouched; the access line is
    written when the last body byte has gone, so streams are timed to their end.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = dict(scope.get("headers") or [])
        request_id = headers.get(b"x-request-id", b"").decode("latin-1")[:128] or uuid.uuid4().hex
        request_id_var.set(request_id)
        fields: dict[str, Any] = {}
        request_fields_var.set(fields)
        start = time.perf_counter()
        status = {"code": 500, "started": False}

        async def send_wrapper(message: Message) -> None:
            if message["type"] == "http.response.start":
                status["code"] = message["status"]
                status["started"] = True
                message.setdefault("headers", [])
                message["headers"] = [*message["headers"], (b"x-request-id", request_id.encode("latin-1"))]
            await send(message)

        try:
            await self.app(scope, receive, send_wrapper)
        except Exception:
            logger.exception("unhandled error on %s %s", scope.get("method"), scope.get("path"))
            if not status["started"]:
                body = error_body(
                    f"Internal server error (request id {request_id}).", "server_error", None, "internal_error"
                )
                await JSONResponse(body, status_code=500)(scope, receive, send_wrapper)
        finally:
            elapsed = time.perf_counter() - start
            path = scope.get("path", "")
            # Probes, heartbeats and the proxy's key checks would drown the log at INFO.
            level = logging.DEBUG if path in _QUIET_PATHS and status["code"] < 400 else logging.INFO
            access_logger.log(
                level,
                "%s %s %s",
                scope.get("method"),
                path,
                status["code"],
                extra={
                    "method": scope.get("method"),
                    "path": path,
                    "status": status["code"],
                    "total_time_s": round(elapsed, 4),
                    **fields,
                },
            )


def health_router(is_ready: Callable[[FastAPI], bool]) -> APIRouter:
    router = APIRouter(tags=["health"])

    @router.get("/health")
    async def health() -> dict[str, str]:
        return {"status": "ok"}

    @router.get("/ready")
    async def ready(request: Request) -> JSONResponse:
        if is_ready(request.app):
            return JSONResponse({"status": "ready"})
        return JSONResponse(
            error_body("Not ready: models are loading or draining.", "server_error", None, "not_ready"), 503
        )

    return router


def create_service_app(
    title: str,
    lifespan: Callable[[FastAPI], AbstractAsyncContextManager[None]],
    routers: list[APIRouter],
    is_ready: Callable[[FastAPI], bool],
) -> FastAPI:
    app = FastAPI(title=title, lifespan=lifespan)
    app.add_exception_handler(OpenAIError, _openai_error_handler)  # type: ignore[arg-type]
    app.add_exception_handler(RequestValidationError, _validation_handler)  # type: ignore[arg-type]
    app.add_exception_handler(StarletteHTTPException, _http_error_handler)  # type: ignore[arg-type]
    app.add_middleware(RequestContextMiddleware)
    app.include_router(health_router(is_ready))
    for router in routers:
        app.include_router(router)
    return app
