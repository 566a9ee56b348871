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
from fastapi.openapi.utils import get_openapi
from fastapi.responses import JSONResponse, Response
from opentelemetry import trace
from opentelemetry.instrumentation.fastapi import FastAPIInstrumentor
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import Match
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from ortserve_common.errors import OpenAIError, error_body
from ortserve_common.limits.limiter import KeyLimiter
from ortserve_common.limits.middleware import KeyLimitsMiddleware
from ortserve_common.logs import request_fields_var, request_id_var
from ortserve_common.server import is_draining
from ortserve_common.telemetry import QUIET_PATHS, ServiceMetrics, current_trace_ids, setup_tracing
from ortserve_common.validation import validation_error

access_logger = logging.getLogger("ortserve.access")
logger = logging.getLogger(__name__)

_METHODS = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS")
_FASTAPI_BODY_ERROR = "There was an error parsing the body"
_HTTP_CODES = {404: "not_found", 405: "method_not_allowed", 413: "payload_too_large", 415: "unsupported_media_type"}


ErrorRenderer = Callable[[OpenAIError], Response]


def _error_response(exc: OpenAIError) -> JSONResponse:
    return JSONResponse(exc.body(), status_code=exc.status, headers=exc.headers)


def _render(request: Request, exc: OpenAIError) -> Response:
    """In the shape of the API whose path this is: a service may give path prefixes a shape of their own (the chat
    service's /v1/messages answers in Anthropic's), which its routes use and the router's own 404s and 405s too."""
    renderers: dict[str, ErrorRenderer] = getattr(request.app.state, "error_renderers", {})
    path = request.url.path
    for prefix, render in renderers.items():
        if path == prefix or path.startswith(prefix.rstrip("/") + "/"):
            return render(exc)
    return _error_response(exc)


async def _openai_error_handler(_: Request, exc: OpenAIError) -> JSONResponse:
    return _error_response(exc)


async def _validation_handler(_: Request, exc: RequestValidationError) -> JSONResponse:
    return _error_response(validation_error(exc.errors()))


async def _http_error_handler(request: Request, exc: StarletteHTTPException) -> Response:
    if exc.status_code == 404:
        message = f"Unknown path: {request.method} {request.url.path}"
    elif exc.status_code == 405:
        message = f"Method {request.method} is not allowed on {request.url.path}"
    elif exc.status_code == 400 and exc.detail == _FASTAPI_BODY_ERROR:
        # FastAPI's answer when the body cannot even be decoded (bytes that are not UTF-8, JSON nested so deep that
        # the parser gives up); a JSON syntax error goes through the validation handler instead.
        message = "The request body could not be read as JSON: it is not UTF-8 text, or it is nested too deeply."
    else:
        message = str(exc.detail)
    type_ = "invalid_request_error" if exc.status_code < 500 else "server_error"
    code = "invalid_json" if exc.status_code == 400 and exc.detail == _FASTAPI_BODY_ERROR else None
    code = code or _HTTP_CODES.get(exc.status_code)
    headers = dict(exc.headers or {})
    if exc.status_code == 405:
        headers["Allow"] = _allowed_methods(request)
    err = OpenAIError(exc.status_code, message, type_, None, code, headers)
    return _render(request, err)


def _allowed_methods(request: Request) -> str:
    """Every method some route serves at this path: Starlette's Allow names only the first matching route's.

    A path the OpenAPI schema names as it is (/v1/responses/compact) answers with the methods documented there, as
    OpenAPI reads a concrete path before a templated one (/v1/responses/{response_id}) that also matches it."""
    documented = request.app.openapi().get("paths", {}).get(request.url.path)
    allowed = []
    for method in _METHODS:
        if documented is not None:
            if method.lower() in documented:
                allowed.append(method)
            continue
        scope = {**request.scope, "method": method}
        if any(route.matches(scope)[0] == Match.FULL for route in request.app.routes):
            allowed.append(method)
    return ", ".join(allowed)


class RequestContextMiddleware:
    """Request id in and out, one JSON access line and one request metric per request, and a JSON 500 for anything
    unhandled.

    Pure ASGI rather than BaseHTTPMiddleware so that streamed bodies pass through untouched; the access line is
    written when the last body byte has gone, so streams are timed to their end. It runs inside the OpenTelemetry
    middleware, so the server span is current here and the access line carries its trace and span ids.
    """

    def __init__(self, app: ASGIApp, metrics: ServiceMetrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = dict(scope.get("headers") or [])
        # Without a request id from the proxy, the trace id serves: one id to search logs and traces by.
        ids = current_trace_ids()
        request_id = headers.get(b"x-request-id", b"").decode("latin-1")[:128] or (ids[0] if ids else uuid.uuid4().hex)
        request_id_var.set(request_id)
        fields: dict[str, Any] = {}
        request_fields_var.set(fields)
        # Whose request this is, as the proxy's key check found (never the secret): on the access line and the span.
        key_id = headers.get(b"x-ortserve-api-key-id", b"").decode("latin-1")[:64]
        if key_id:
            fields["api_key_id"] = key_id
            trace.get_current_span().set_attribute("ortserve.api_key_id", key_id)
        priority = headers.get(b"x-ortserve-key-priority", b"").decode("latin-1")[:16]
        if priority:
            fields["key_priority"] = priority
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
            level = logging.DEBUG if path in QUIET_PATHS and status["code"] < 400 else logging.INFO
            # The route template, never the raw path: one series per route, whatever ids the paths carry.
            route = getattr(scope.get("route"), "path", None) or "unmatched"
            self.metrics.observe_request(scope.get("method", ""), route, status["code"], elapsed)
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
        if is_ready(request.app) and not is_draining(request.app):
            return JSONResponse({"status": "ready"})
        return JSONResponse(
            error_body("Not ready: models are loading or draining.", "server_error", None, "not_ready"), 503
        )

    return router


def metrics_router(metrics: ServiceMetrics) -> APIRouter:
    router = APIRouter(tags=["health"])

    @router.get("/metrics", include_in_schema=False)
    async def prometheus_metrics() -> Response:
        body, content_type = metrics.exposition()
        return Response(body, media_type=content_type)

    return router


ERROR_SCHEMA = {
    "title": "ErrorResponse",
    "type": "object",
    "required": ["error"],
    "additionalProperties": False,
    "properties": {
        "error": {
            "type": "object",
            "required": ["message", "type", "param", "code"],
            "additionalProperties": False,
            "properties": {
                "message": {"type": "string"},
                "type": {"type": "string"},
                "param": {"type": ["string", "null"]},
                "code": {"type": ["string", "null"]},
            },
        }
    },
}


def _document_openai_errors(app: FastAPI) -> None:
    """The OpenAPI schema says what the services really answer: every refusal is OpenAI's error object (documented
    as the `default` response), and a validation failure is a 400, not FastAPI's 422 with its own body."""

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            schema = get_openapi(title=app.title, version=app.version, routes=app.routes)
            components = schema.setdefault("components", {}).setdefault("schemas", {})
            components.pop("HTTPValidationError", None)
            components.pop("ValidationError", None)
            components["ErrorResponse"] = ERROR_SCHEMA
            error = {"$ref": "#/components/schemas/ErrorResponse"}
            for path_item in schema.get("paths", {}).values():
                for operation in path_item.values():
                    responses = operation.setdefault("responses", {})
                    responses.pop("422", None)
                    # A route that answers in another API's shape (Anthropic's /v1/messages) documents its own.
                    responses.setdefault(
                        "default",
                        {
                            "description": "A refusal or failure, in OpenAI's error shape",
                            "content": {"application/json": {"schema": error}},
                        },
                    )
            app.openapi_schema = schema
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]  # FastAPI's documented way to extend the schema


def create_service_app(
    title: str,
    lifespan: Callable[[FastAPI], AbstractAsyncContextManager[None]],
    routers: list[APIRouter],
    is_ready: Callable[[FastAPI], bool],
    service_name: str,
    metrics: ServiceMetrics | None = None,
    key_limiter: KeyLimiter | None = None,
    error_renderers: dict[str, ErrorRenderer] | None = None,
) -> FastAPI:
    """`service_name` names the traces unless OTEL_SERVICE_NAME does; `metrics` defaults to the shared set only;
    `key_limiter` enforces per-key limits on the inference routes; `error_renderers` answers the router's own
    refusals (an unknown path or method) under a path prefix in that API's error shape instead of OpenAI's."""
    tracer_provider = setup_tracing(service_name)
    metrics = metrics or ServiceMetrics()
    app = FastAPI(title=title, lifespan=lifespan)
    app.state.metrics = metrics
    app.state.error_renderers = dict(error_renderers or {})
    # Starlette types a handler as taking any Exception; each of ours takes the one class it is registered for.
    app.add_exception_handler(OpenAIError, _openai_error_handler)  # type: ignore[arg-type]
    app.add_exception_handler(RequestValidationError, _validation_handler)  # type: ignore[arg-type]
    app.add_exception_handler(StarletteHTTPException, _http_error_handler)  # type: ignore[arg-type]
    if key_limiter is not None:
        # Added first, so it runs inside the request-context middleware: its refusals get an access line too.
        app.add_middleware(KeyLimitsMiddleware, limiter=key_limiter)
    app.add_middleware(RequestContextMiddleware, metrics=metrics)
    app.include_router(health_router(is_ready))
    app.include_router(metrics_router(metrics))
    for router in routers:
        app.include_router(router)
    _document_openai_errors(app)
    if tracer_provider is not None:
        # Per-chunk send/receive spans would turn every streamed token into a span.
        FastAPIInstrumentor.instrument_app(app, tracer_provider=tracer_provider, exclude_spans=["send", "receive"])
    return app
