"""The chat service's metrics, and one gen_ai span per generation request (OpenTelemetry GenAI conventions).

The span starts when the request asks for an admission slot and ends when its last token is out, so it holds the
time in queue and the generation; it is a child of the request's server span. Its attributes follow the gen_ai.*
semantic conventions; time in queue, time to first token and end-to-end time use vLLM's gen_ai.latency.* names,
since the conventions define no span attribute for them. Prompt and output text are recorded only when
`trace_content` is on.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from opentelemetry import trace
from opentelemetry.trace import Span, SpanKind, Status, StatusCode
from ortserve_common.errors import OpenAIError
from ortserve_common.priority import PRIORITIES
from ortserve_common.protocol.chat import ChatCompletionRequest
from ortserve_common.protocol.completions import CompletionRequest
from ortserve_common.protocol.sampling import SamplingRequest
from ortserve_common.telemetry import ServiceMetrics
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from chat_service.models.pool import ModelPool
from chat_service.serving.generation import GenerationStats
from chat_service.settings import ChatSettings

TTFT_BUCKETS = (0.005, 0.01, 0.02, 0.04, 0.06, 0.08, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0, 20.0, 40.0)
ITL_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.015, 0.02, 0.03, 0.05, 0.075, 0.1, 0.15, 0.2, 0.3, 0.5, 1.0, 2.5)
E2E_BUCKETS = (0.1, 0.25, 0.5, 1.0, 1.5, 2.0, 2.5, 5.0, 10.0, 15.0, 20.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1800.0)


class ChatMetrics(ServiceMetrics):
    def __init__(self) -> None:
        super().__init__(admission=True)
        self.ttft = self.histogram(
            "ortserve_time_to_first_token_seconds",
            "Time from a generation's start to its first token.",
            ["model"],
            TTFT_BUCKETS,
        )
        self.itl = self.histogram(
            "ortserve_inter_token_latency_seconds", "Time between consecutive generated tokens.", ["model"], ITL_BUCKETS
        )
        self.e2e = self.histogram(
            "ortserve_e2e_request_latency_seconds",
            "Time from asking for an admission slot to the last token, for requests that finished.",
            ["model"],
            E2E_BUCKETS,
        )
        self.prompt_tokens = self.counter("ortserve_prompt_tokens", "Prompt tokens processed.", ["model"])
        self.cached_prompt_tokens = self.counter(
            "ortserve_prompt_cached_tokens", "Prompt tokens whose KV came from the prefix cache.", ["model"]
        )
        self.completion_tokens = self.counter("ortserve_completion_tokens", "Tokens generated.", ["model"])
        self.finished = self.counter(
            "ortserve_request_finished",
            "Generations ended, by finish reason (abort: cancelled or failed).",
            ["model", "finish_reason"],
        )
        self._engines = EngineCollector()
        self.registry.register(self._engines)

    def track_engines(self, pool: ModelPool) -> None:
        """The models whose engines /metrics reports (the lifespan makes the pool after the app exists)."""
        self._engines.pool = pool


# Each engine's state, per model, read from engine.stats() when /metrics is scraped (never pushed from the scheduler
# thread, which must not wait on anything but its decoder): (name, help, counter or gauge, EngineStats field).
ENGINE_SERIES = (
    (
        "ortserve_engine_rows_decoding",
        "Rows in the model's running batch (generator: generations running).",
        "gauge",
        "rows_decoding",
    ),
    (
        "ortserve_engine_rows_waiting",
        "Generations submitted to the model's engine and not yet in a KV slot.",
        "gauge",
        "rows_waiting",
    ),
    ("ortserve_engine_kv_slots", "KV slots the model's batched engine has (max_batch_size).", "gauge", "kv_slots"),
    (
        "ortserve_engine_kv_slots_used",
        "KV slots in use: decoding rows and a long prompt being prefilled.",
        "gauge",
        "kv_slots_used",
    ),
    ("ortserve_engine_kv_positions_used", "Positions cached in the KV slots in use.", "gauge", "kv_positions_used"),
    (
        "ortserve_engine_prefix_cache_hit_tokens",
        "Prompt tokens whose KV the prefix cache supplied.",
        "counter",
        "prefix_cache_hit_tokens",
    ),
    ("ortserve_engine_prefix_cache_blocks", "Blocks the model's prefix cache holds.", "gauge", "prefix_cache_blocks"),
    (
        "ortserve_engine_decode_steps",
        "Batched decode steps (generator: tokens generated); its rate is steps/s.",
        "counter",
        "decode_steps",
    ),
    (
        "ortserve_engine_spec_verify_steps",
        "Prompt-lookup verify calls: steps of a row decoding alone that checked its drafts in one call.",
        "counter",
        "spec_verify_steps",
    ),
    (
        "ortserve_engine_spec_draft_tokens",
        "Prompt-lookup tokens drafted into verify calls.",
        "counter",
        "spec_draft_tokens",
    ),
    (
        "ortserve_engine_spec_accepted_tokens",
        "Drafted tokens the row's sampler drew (accepted): tokens gained over one per step.",
        "counter",
        "spec_accepted_tokens",
    ),
)


class EngineCollector(Collector):
    def __init__(self) -> None:
        self.pool: ModelPool | None = None

    def collect(self) -> Iterator[Metric]:
        yield from self._engine_series()
        yield from self._priority_series()

    def _priority_series(self) -> Iterator[Metric]:
        """Per model and priority (ortserve_common.priority): who waits where, and who holds the admitted places."""
        labels = ["model", "priority"]
        engine_queue = GaugeMetricFamily(
            "ortserve_engine_queue_depth",
            "Generations waiting in the model's engine for a KV slot (generator: a worker), by priority.",
            labels=labels,
        )
        admission_queue = GaugeMetricFamily(
            "ortserve_admission_queue_depth", "Requests queued for one of the model's admission places.", labels=labels
        )
        admitted = GaugeMetricFamily(
            "ortserve_admission_running", "Requests holding one of the model's admission places.", labels=labels
        )
        for model in self.pool.models() if self.pool is not None else []:
            stats = model.engine.stats()
            engine_waiting = {
                "interactive": stats.rows_waiting - stats.rows_waiting_batch,
                "batch": stats.rows_waiting_batch,
            }
            for priority in PRIORITIES:
                engine_queue.add_metric([model.id, priority], max(0, engine_waiting[priority]))
                admission_queue.add_metric([model.id, priority], model.admission.waiting_for(priority))
                admitted.add_metric([model.id, priority], model.admission.running_for(priority))
        yield from (engine_queue, admission_queue, admitted)

    def _engine_series(self) -> Iterator[Metric]:
        families: list[tuple[GaugeMetricFamily | CounterMetricFamily, str]] = [
            (
                (CounterMetricFamily if kind == "counter" else GaugeMetricFamily)(name, text, labels=["model"]),
                field,
            )
            for name, text, kind, field in ENGINE_SERIES
        ]
        for model in self.pool.models() if self.pool is not None else []:
            stats = model.engine.stats()
            for family, field in families:
                family.add_metric([model.id], getattr(stats, field))
        for family, _ in families:
            yield family


@dataclass
class GenerationSpan:
    """One request's gen_ai span, from its ask for a slot to its last token."""

    span: Span
    started: float  # perf_counter when the request asked for a slot
    max_tokens_given: bool


class GenerationTelemetry:
    def __init__(self, metrics: ChatMetrics, trace_content: bool = False) -> None:
        """`metrics` are the ones the app's /metrics serves."""
        self.metrics = metrics
        self.trace_content = trace_content
        self._tracer = trace.get_tracer("ortserve.chat")

    def begin(self, request: SamplingRequest, settings: ChatSettings, operation: str | None = None) -> GenerationSpan:
        """Start the span; temperature and top_p are the values used, the service's defaults where the request
        gives none. `operation` names an endpoint that runs on a chat request of its own making (responses)."""
        operation = operation or ("chat" if isinstance(request, ChatCompletionRequest) else "text_completion")
        attributes: dict[str, Any] = {
            "gen_ai.operation.name": operation,
            "gen_ai.provider.name": "ortserve",
            "gen_ai.request.model": request.model,
            "gen_ai.request.temperature": (
                settings.default_temperature if request.temperature is None else request.temperature
            ),
            "gen_ai.request.top_p": settings.default_top_p if request.top_p is None else request.top_p,
            "gen_ai.request.choice.count": request.n or 1,
        }
        requested = getattr(request, "max_completion_tokens", None) or request.max_tokens
        if requested is not None:
            attributes["gen_ai.request.max_tokens"] = requested
        for name in ("frequency_penalty", "presence_penalty", "seed"):
            if getattr(request, name) is not None:
                attributes[f"gen_ai.request.{name}"] = getattr(request, name)
        if request.stop_list():
            attributes["gen_ai.request.stop_sequences"] = request.stop_list()
        if self.trace_content:
            attributes["gen_ai.input.messages"] = json.dumps(_input_messages(request), ensure_ascii=False)
        span = self._tracer.start_span(f"{operation} {request.model}", kind=SpanKind.INTERNAL, attributes=attributes)
        return GenerationSpan(span, time.perf_counter(), requested is not None)

    def admitted(self, current: GenerationSpan, queued_s: float) -> None:
        self.metrics.observe_queue(queued_s)
        current.span.set_attribute("gen_ai.latency.time_in_queue", queued_s)

    def refused(self, current: GenerationSpan, exc: BaseException) -> None:
        """No slot: the queue was full (429), the wait too long (503), or the client left while queued."""
        if isinstance(exc, OpenAIError):
            current.span.set_status(Status(StatusCode.ERROR, exc.message))
            current.span.set_attribute("error.type", str(exc.status))
        else:
            current.span.set_attribute("ortserve.cancelled", True)
        current.span.end()

    def finish(
        self, current: GenerationSpan, model: str, stats: list[GenerationStats], exc: BaseException | None
    ) -> None:
        """Metrics and the span's usage, timings and outcome. `exc` is how the request's block ended: an Exception
        is the generation's failure, a GeneratorExit or CancelledError a client that went away."""
        metrics = self.metrics
        metrics.prompt_tokens.labels(model).inc(sum(s.prompt_tokens for s in stats))
        metrics.cached_prompt_tokens.labels(model).inc(sum(s.cached_tokens for s in stats))
        metrics.completion_tokens.labels(model).inc(sum(s.completion_tokens for s in stats))
        for s in stats:
            if s.ttft_s is not None:
                metrics.ttft.labels(model).observe(s.ttft_s)
            itl = metrics.itl.labels(model)
            for gap in s.itl_s:
                itl.observe(gap)
            metrics.finished.labels(model, s.finish_reason or "abort").inc()
        elapsed = time.perf_counter() - current.started
        if exc is None and all(s.finish_reason for s in stats):
            metrics.e2e.labels(model).observe(elapsed)
        span = current.span
        span.set_attributes(
            {
                "gen_ai.response.model": model,
                "gen_ai.usage.input_tokens": sum(s.prompt_tokens for s in stats),
                "gen_ai.usage.cache_read.input_tokens": sum(s.cached_tokens for s in stats),
                "gen_ai.usage.output_tokens": sum(s.completion_tokens for s in stats),
                "gen_ai.response.finish_reasons": [s.finish_reason or "abort" for s in stats],
                "gen_ai.latency.e2e": elapsed,
            }
        )
        if stats and stats[0].ttft_s is not None:
            span.set_attribute("gen_ai.latency.time_to_first_token", stats[0].ttft_s)
        if not current.max_tokens_given and stats and stats[0].max_tokens is not None:
            span.set_attribute("gen_ai.request.max_tokens", stats[0].max_tokens)  # the default, capped by context
        if self.trace_content:
            span.set_attribute("gen_ai.output.messages", json.dumps(_output_messages(stats), ensure_ascii=False))
        if isinstance(exc, OpenAIError):
            span.set_status(Status(StatusCode.ERROR, exc.message))
            span.set_attribute("error.type", str(exc.status))
        elif isinstance(exc, Exception):
            span.record_exception(exc)
            span.set_status(Status(StatusCode.ERROR, f"{type(exc).__name__}: {exc}"))
            span.set_attribute("error.type", type(exc).__qualname__)
        elif exc is not None:
            span.set_attribute("ortserve.cancelled", True)  # the client went away: not an error of ours
        span.end()


def _input_messages(request: SamplingRequest) -> list[dict[str, Any]]:
    """gen_ai.input.messages: role and text parts, as the conventions' JSON shape."""
    if isinstance(request, ChatCompletionRequest):
        return [{"role": m.role, "parts": [{"type": "text", "content": m.text()}]} for m in request.messages]
    if isinstance(request, CompletionRequest):
        return [{"role": "user", "parts": [{"type": "text", "content": p}]} for p in request.prompts()]
    return []


def _output_messages(stats: list[GenerationStats]) -> list[dict[str, Any]]:
    return [
        {
            "role": "assistant",
            "parts": [{"type": "text", "content": "".join(s.output)}],
            "finish_reason": s.finish_reason or "abort",
        }
        for s in stats
    ]
