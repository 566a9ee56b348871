"""One gen_ai span per generation request (OpenTelemetry GenAI conventions), and the request metrics it records.

The span starts when the request asks for an admission slot and ends when its last token is out, so it holds the
time in queue and the generation; it is a child of the request's server span. Its attributes follow the gen_ai.*
semantic conventions; time in queue, time to first token and end-to-end time use vLLM's gen_ai.latency.* names,
since the conventions define no span attribute for them. Prompt and output text are recorded only when
`trace_content` is on.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from typing import Any

from opentelemetry import trace
from opentelemetry.trace import Span, SpanKind, Status, StatusCode
from ortserve_common.errors import OpenAIError
from ortserve_common.protocol.chat import ChatCompletionRequest
from ortserve_common.protocol.completions import CompletionRequest
from ortserve_common.protocol.sampling import SamplingRequest

from chat_service.serving.generation import GenerationStats
from chat_service.serving.observability import ChatMetrics
from chat_service.settings import ChatSettings


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
