"""Traces and Prometheus metrics every service shares.

Tracing is configured only by the standard OTEL_* variables (OTEL_SERVICE_NAME, OTEL_EXPORTER_OTLP_ENDPOINT,
OTEL_TRACES_EXPORTER, OTEL_TRACES_SAMPLER, OTEL_BSP_*, OTEL_SDK_DISABLED). Metrics live in one CollectorRegistry per
app, never in module globals, because the tests build several apps in one process.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Sequence
from typing import Any, Protocol
from urllib.parse import urlsplit

import httpx
from opentelemetry import trace
from opentelemetry.context import Context
from opentelemetry.instrumentation.httpx import HTTPXClientInstrumentor
from opentelemetry.sdk.resources import SERVICE_NAME, Resource
from opentelemetry.sdk.trace import SpanProcessor, TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, ConsoleSpanExporter, SpanExporter
from opentelemetry.sdk.trace.sampling import Decision, Sampler, SamplingResult
from opentelemetry.trace import Link, SpanKind
from opentelemetry.util.types import Attributes
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    Info,
    disable_created_metrics,
    generate_latest,
)

from ortserve_common.cpu import host_cpu

logger = logging.getLogger(__name__)

# Probes, scrapes, heartbeats and key checks: a trace of their own for each would bury the real ones. They are still
# traced when they are part of a trace (the proxy's key check, a heartbeat sent while serving an admin load).
QUIET_PATHS = frozenset({"/health", "/ready", "/metrics", "/internal/instances", "/internal/auth"})
_OTLP_ENDPOINT_VARS = ("OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")

LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0)
QUEUE_BUCKETS = (0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)


class QuietRootSampler(Sampler):
    """Drops a trace that would start at a quiet path; everything else goes to the sampler OTEL_TRACES_SAMPLER chose."""

    def __init__(self, delegate: Sampler) -> None:
        self._delegate = delegate

    def should_sample(
        self,
        parent_context: Context | None,
        trace_id: int,
        name: str,
        kind: SpanKind | None = None,
        attributes: Attributes = None,
        links: Sequence[Link] | None = None,
        trace_state: Any = None,
    ) -> SamplingResult:
        parent = trace.get_current_span(parent_context).get_span_context()
        if not parent.is_valid and _path_of(attributes) in QUIET_PATHS:
            return SamplingResult(Decision.DROP)
        return self._delegate.should_sample(parent_context, trace_id, name, kind, attributes, links, trace_state)

    def get_description(self) -> str:
        return f"QuietRoot{{{self._delegate.get_description()}}}"


def _path_of(attributes: Attributes) -> str | None:
    """The request path from server (url.path, http.target) or client (url.full, http.url) span attributes."""
    if not attributes:
        return None
    for key in ("url.path", "http.target"):
        if isinstance(attributes.get(key), str):
            return str(attributes[key]).split("?", 1)[0]
    for key in ("url.full", "http.url"):
        if isinstance(attributes.get(key), str):
            return urlsplit(str(attributes[key])).path
    return None


def _exporters() -> list[SpanExporter]:
    """OTEL_TRACES_EXPORTER's exporters. Unset, spans go out over OTLP only when an endpoint is configured: the SDK's
    own default (localhost:4318) would have every service and test warn about a collector that is not there."""
    configured = os.environ.get("OTEL_TRACES_EXPORTER", "").strip().lower()
    if not configured:
        configured = "otlp" if any(os.environ.get(var) for var in _OTLP_ENDPOINT_VARS) else "none"
    exporters: list[SpanExporter] = []
    for name in filter(None, (part.strip() for part in configured.split(","))):
        if name == "otlp":
            protocol = os.environ.get("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL") or os.environ.get(
                "OTEL_EXPORTER_OTLP_PROTOCOL", "http/protobuf"
            )
            if protocol != "http/protobuf":
                logger.warning("OTLP protocol %r is not supported here; sending http/protobuf", protocol)
            # Imported here: it pulls in requests, which a service with tracing off never needs.
            from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

            exporters.append(OTLPSpanExporter())
        elif name == "console":
            exporters.append(ConsoleSpanExporter())
        elif name != "none":
            logger.warning("unknown OTEL_TRACES_EXPORTER entry %r ignored (known: otlp, console, none)", name)
    return exporters


def setup_tracing(default_service_name: str) -> TracerProvider | None:
    """The process's tracer provider, made on the first call from the OTEL_* variables; None when OTEL_SDK_DISABLED.

    Process-wide on purpose: OpenTelemetry has one global provider, and every app in a process shares it.
    """
    current = trace.get_tracer_provider()
    if isinstance(current, TracerProvider):
        return current
    if os.environ.get("OTEL_SDK_DISABLED", "").strip().lower() == "true":
        return None
    resource = Resource.create()
    if str(resource.attributes.get(SERVICE_NAME, "")).startswith("unknown_service"):
        resource = resource.merge(Resource({SERVICE_NAME: default_service_name}))
    provider = TracerProvider(resource=resource)
    provider.sampler = QuietRootSampler(provider.sampler)  # the sampler the SDK read from OTEL_TRACES_SAMPLER
    for exporter in _exporters():
        provider.add_span_processor(BatchSpanProcessor(exporter))
    trace.set_tracer_provider(provider)
    logger.debug("tracing as %s", provider.resource.attributes.get(SERVICE_NAME))
    return provider


def trace_httpx(client: httpx.Client | httpx.AsyncClient) -> None:
    """Trace a client's calls and send `traceparent` with them, so the service called joins the caller's trace.

    Per client rather than HTTPXClientInstrumentor().instrument(), which patches every httpx client in the process:
    in a process that also drives the stack (the tests build apps in-process, then call nginx) it would replace the
    traceparent headers that callers set themselves.
    """
    HTTPXClientInstrumentor.instrument_client(client)


def add_span_processor(processor: SpanProcessor) -> None:
    """Tests: see the spans of apps already built in this process (the provider is global and made only once)."""
    provider = trace.get_tracer_provider()
    if not isinstance(provider, TracerProvider):
        raise RuntimeError("tracing is not set up in this process (create an app first, without OTEL_SDK_DISABLED)")
    provider.add_span_processor(processor)


def current_trace_ids() -> tuple[str, str] | None:
    """(trace id, span id) of the current span in hex, or None outside a valid span."""
    context = trace.get_current_span().get_span_context()
    if not context.is_valid:
        return None
    return trace.format_trace_id(context.trace_id), trace.format_span_id(context.span_id)


def started_ns_ago(seconds: float) -> int:
    """A span start time for work measured with perf_counter that is recorded as a span only once it is over."""
    return time.time_ns() - int(seconds * 1e9)


class AdmissionCounts(Protocol):
    """Requests holding an admission slot, and requests queued for one (an AdmissionController has both)."""

    @property
    def running(self) -> int: ...

    @property
    def waiting(self) -> int: ...


class ServiceMetrics:
    """A service's Prometheus metrics, in a registry of its own; subclasses add their own families."""

    def __init__(self, admission: bool = False) -> None:
        # A *_created series per counter and histogram doubles what Prometheus stores, for nothing a dashboard uses.
        disable_created_metrics()
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "ortserve_http_requests",
            "HTTP requests answered, by method, route template and status.",
            ["method", "route", "status"],
            registry=self.registry,
        )
        self.request_seconds = Histogram(
            "ortserve_http_request_duration_seconds",
            "Time from a request's arrival to its last response byte, by method and route template.",
            ["method", "route"],
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        # Every figure a dashboard shows depends on the CPU's kernels and cores: name them beside the figures.
        Info(
            "ortserve_cpu",
            "The CPU this process runs on: model name, vendor, family and model number, the ISA flags that select "
            "ONNX Runtime's kernels, and the usable cores (affinity and cgroup quota) engine threads default to.",
            registry=self.registry,
        ).info(host_cpu().labels())
        self._admission: AdmissionCounts | None = None
        self.queue_seconds: Histogram | None = None
        if admission:
            self.queue_seconds = Histogram(
                "ortserve_queue_time_seconds",
                "Time requests waited for an admission slot.",
                buckets=QUEUE_BUCKETS,
                registry=self.registry,
            )
            running = Gauge("ortserve_requests_running", "Requests holding a slot.", registry=self.registry)
            waiting = Gauge("ortserve_requests_waiting", "Requests queued for a slot.", registry=self.registry)
            # Read at scrape time: the controller's own counts are the truth, so nothing can drift.
            running.set_function(lambda: self._admission.running if self._admission else 0)
            waiting.set_function(lambda: self._admission.waiting if self._admission else 0)

    def track_admission(self, admission: AdmissionCounts) -> None:
        """What the running/waiting gauges read (the lifespan makes it after the app exists): one controller, or
        an object summing several (chat admits per model)."""
        self._admission = admission

    def observe_queue(self, queued_s: float) -> None:
        if self.queue_seconds is not None:
            self.queue_seconds.observe(queued_s)

    def observe_request(self, method: str, route: str, status: int, seconds: float) -> None:
        self.requests.labels(method, route, str(status)).inc()
        self.request_seconds.labels(method, route).observe(seconds)

    def counter(self, name: str, documentation: str, labels: Sequence[str]) -> Counter:
        return Counter(name, documentation, list(labels), registry=self.registry)

    def histogram(self, name: str, documentation: str, labels: Sequence[str], buckets: Sequence[float]) -> Histogram:
        return Histogram(name, documentation, list(labels), buckets=tuple(buckets), registry=self.registry)

    def exposition(self) -> tuple[bytes, str]:
        """The /metrics body and its content type."""
        return generate_latest(self.registry), CONTENT_TYPE_LATEST
