"""Shared telemetry: quiet-path sampling, exporter choice, /metrics by route template, JSON logs with trace ids."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager

import pytest
from fastapi import APIRouter, FastAPI
from fastapi.testclient import TestClient
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.sdk.trace.sampling import ALWAYS_ON, Decision
from opentelemetry.trace import NonRecordingSpan, SpanContext, SpanKind, TraceFlags
from ortserve_common import telemetry
from ortserve_common.app import create_service_app
from ortserve_common.logs import configure_logging
from ortserve_common.telemetry import QuietRootSampler, add_span_processor, setup_tracing

_EXPORTER = InMemorySpanExporter()


@pytest.fixture
def spans() -> InMemorySpanExporter:
    if not getattr(_EXPORTER, "installed", False):
        setup_tracing("ortserve-test")
        add_span_processor(SimpleSpanProcessor(_EXPORTER))
        _EXPORTER.installed = True  # type: ignore[attr-defined]
    _EXPORTER.clear()
    return _EXPORTER


def _app() -> FastAPI:
    router = APIRouter()

    @router.get("/items/{item_id}")
    async def item(item_id: str) -> dict[str, str]:
        logging.getLogger("test.items").info("serving item %s", item_id)
        return {"id": item_id}

    @router.get("/boom")
    async def boom() -> None:
        raise RuntimeError("kaboom")

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        yield

    return create_service_app("t", lifespan, [router], is_ready=lambda _: True, service_name="ortserve-test")


@pytest.fixture
def log_lines() -> Iterator[io.StringIO]:
    root = logging.getLogger()
    saved = root.handlers[:], root.level
    configure_logging("INFO", "test")
    stream = io.StringIO()
    root.handlers[0].setStream(stream)  # type: ignore[attr-defined]
    try:
        yield stream
    finally:
        root.handlers[:], root.level = saved[0], saved[1]
        logging.getLogger("uvicorn.access").disabled = False


def test_quiet_paths_start_no_trace_but_stay_in_one() -> None:
    sampler = QuietRootSampler(ALWAYS_ON)
    drop = sampler.should_sample(None, 1, "GET /health", SpanKind.SERVER, {"url.path": "/health"})
    assert drop.decision == Decision.DROP
    beat = sampler.should_sample(None, 1, "POST", SpanKind.CLIENT, {"url.full": "http://r:8002/internal/instances"})
    assert beat.decision == Decision.DROP
    assert sampler.should_sample(None, 1, "GET /v1/models", attributes={"http.target": "/v1/models"}).decision == (
        Decision.RECORD_AND_SAMPLE
    )
    parent = SpanContext(0xABC, 0xDEF, is_remote=True, trace_flags=TraceFlags(TraceFlags.SAMPLED))
    context = trace.set_span_in_context(NonRecordingSpan(parent))
    kept = sampler.should_sample(context, 0xABC, "POST /internal/auth", attributes={"url.path": "/internal/auth"})
    assert kept.decision == Decision.RECORD_AND_SAMPLE  # the proxy's key check, inside a request's trace


def test_exporters_follow_the_standard_variables(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("OTEL_TRACES_EXPORTER", "OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"):
        monkeypatch.delenv(name, raising=False)
    assert telemetry._exporters() == []  # no endpoint: spans only give logs their ids, nothing is sent anywhere
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", "http://collector:4318")
    assert [type(e).__name__ for e in telemetry._exporters()] == ["OTLPSpanExporter"]
    monkeypatch.setenv("OTEL_TRACES_EXPORTER", "console,none")
    assert [type(e).__name__ for e in telemetry._exporters()] == ["ConsoleSpanExporter"]


def test_tracing_is_one_sdk_provider_per_process(spans: InMemorySpanExporter) -> None:
    provider = trace.get_tracer_provider()
    assert isinstance(provider, TracerProvider) and setup_tracing("other") is provider
    assert isinstance(provider.sampler, QuietRootSampler)


def test_metrics_count_by_route_template_and_status(spans: InMemorySpanExporter) -> None:
    with TestClient(_app(), raise_server_exceptions=False) as http:
        for item in ("a", "b", "c"):
            assert http.get(f"/items/{item}").status_code == 200
        assert http.get("/nowhere").status_code == 404
        assert http.get("/boom").status_code == 500
        text = http.get("/metrics").text
    assert 'ortserve_http_requests_total{method="GET",route="/items/{item_id}",status="200"} 3.0' in text
    assert 'ortserve_http_requests_total{method="GET",route="unmatched",status="404"} 1.0' in text
    assert 'ortserve_http_requests_total{method="GET",route="/boom",status="500"} 1.0' in text
    assert 'ortserve_http_request_duration_seconds_count{method="GET",route="/items/{item_id}"} 3.0' in text
    assert "/items/a" not in text
    assert "ortserve_requests_running" not in text  # no admission controller in this service


def test_log_lines_carry_the_trace_and_errors_their_stack(spans: InMemorySpanExporter, log_lines: io.StringIO) -> None:
    with TestClient(_app(), raise_server_exceptions=False) as http:
        ok = http.get("/items/x")
        failed = http.get("/boom")
    lines = [json.loads(line) for line in log_lines.getvalue().splitlines()]
    server_spans = {s.name: s for s in spans.get_finished_spans() if s.kind == SpanKind.SERVER}
    item_span = server_spans["GET /items/{item_id}"].context
    trace_id = trace.format_trace_id(item_span.trace_id)
    assert ok.headers["x-request-id"] == trace_id  # no id from a proxy: the trace id is the request id
    own = [line for line in lines if line.get("trace_id") == trace_id]
    assert [line["message"] for line in own] == ["serving item x", "GET /items/x 200"]
    assert all(line["span_id"] == trace.format_span_id(item_span.span_id) for line in own)
    access = own[-1]
    assert access["status"] == 200 and access["path"] == "/items/x"
    error = next(line for line in lines if line["level"] == "ERROR")
    assert "Traceback" in error["exc_info"] and "kaboom" in error["exc_info"]
    assert error["trace_id"] == failed.headers["x-request-id"]
    boom = server_spans["GET /boom"]
    assert boom.status.status_code == trace.StatusCode.ERROR
