"""One generation request, from its ask for an admission slot to its last token: the slot, the gen_ai span and the
statistics it reports, held by one object whose `async with` block is the request's life.

How the block ends decides the outcome: normally (finished), with an exception (failed), or with GeneratorExit or
CancelledError (the client went away). A stream's generator holds the block across its yields.
"""

from __future__ import annotations

from types import TracebackType

from ortserve_common.admission import AdmissionController, AdmissionSlot
from ortserve_common.limits.limiter import charge_tokens
from ortserve_common.logs import record_request_fields
from ortserve_common.priority import DEFAULT_PRIORITY, Priority
from ortserve_common.protocol.sampling import SamplingRequest

from chat_service.serving.generation import GenerationStats
from chat_service.serving.generation_telemetry import GenerationSpan, GenerationTelemetry
from chat_service.settings import ChatSettings


class RequestRun:
    def __init__(
        self,
        request: SamplingRequest,
        stats: list[GenerationStats],
        admission: AdmissionController,
        telemetry: GenerationTelemetry,
        settings: ChatSettings,
        operation: str | None = None,
        priority: Priority = DEFAULT_PRIORITY,
    ) -> None:
        self.request = request
        self._operation = operation
        self.priority = priority  # which queued requests take a free place first (ortserve_common.priority)
        self.stats = stats  # one per choice (and per prompt), filled in as the generations run
        self._admission = admission
        self._telemetry = telemetry
        self._settings = settings
        self._span: GenerationSpan | None = None
        self._slot: AdmissionSlot | None = None
        self._failure: BaseException | None = None

    def failed(self, exc: BaseException) -> None:
        """A failure the block handled itself (a stream that told its client in an event of its own)."""
        self._failure = exc

    async def __aenter__(self) -> RequestRun:
        # The span starts before the wait for a slot, so it holds the time in queue.
        span = self._span = self._telemetry.begin(self.request, self._settings, self._operation)
        span.span.set_attribute("ortserve.priority", self.priority)
        try:
            # The prompt counts against the key's token limits once admitted, as usage reports it: once per prompt,
            # whatever the number of choices.
            choices = self.request.n or 1
            await charge_tokens(sum(s.prompt_tokens for s in self.stats) // choices, "prompt")
            self._slot = await self._admission.acquire(self.priority)
        except BaseException as exc:  # 429, 503, or cancelled while queued: the span must still end
            self._telemetry.refused(span, exc)
            raise
        record_request_fields(queued_s=round(self._slot.queued_s, 4), priority=self.priority)
        self._telemetry.admitted(span, self._slot.queued_s)
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        assert self._slot is not None and self._span is not None  # entered
        self._slot.release()
        stats = self.stats
        rates = [s.tokens_per_s for s in stats if s.tokens_per_s is not None]
        ttft = stats[0].ttft_s if stats else None
        record_request_fields(
            model=self.request.model,
            prompt_tokens=sum(s.prompt_tokens for s in stats),
            completion_tokens=sum(s.completion_tokens for s in stats),
            ttft_s=None if ttft is None else round(ttft, 4),
            tokens_per_s=round(sum(rates) / len(rates), 2) if rates else None,
            finish_reason=[s.finish_reason for s in stats],
        )
        self._telemetry.finish(self._span, self.request.model, stats, exc or self._failure)
