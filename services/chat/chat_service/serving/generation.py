"""One prompt's generation as text deltas: the engine's tokens, stop strings applied, timings recorded."""

from __future__ import annotations

import time
from collections.abc import AsyncGenerator
from contextlib import aclosing
from dataclasses import dataclass, field

from ortserve_common.errors import OpenAIError
from ortserve_common.limits.limiter import charge_tokens
from ortserve_common.priority import DEFAULT_PRIORITY, Priority

from chat_service.engine import FinishReason, GenerationRequest, SamplingParams
from chat_service.engine.protocol import ChatEngine
from chat_service.engine.types import EngineClosedError
from chat_service.serving.logprobs import GeneratedToken, TokenAligner
from chat_service.serving.stop import StopStringMatcher


@dataclass
class GenerationStats:
    prompt_tokens: int
    completion_tokens: int = 0
    cached_tokens: int = 0  # prompt tokens the prefix cache supplied
    finish_reason: FinishReason | None = None
    stop_sequence: str | None = None  # the stop string that ended it, when one did
    ttft_s: float | None = None
    total_s: float = 0.0
    # For the metrics and the trace (generation_telemetry.py): the gap before each token after the first, and the text
    # sent (recorded on the span only when trace_content is on).
    itl_s: list[float] = field(default_factory=list)
    output: list[str] = field(default_factory=list)
    max_tokens: int | None = None  # as resolved (defaults, context cap), for the trace

    @property
    def tokens_per_s(self) -> float | None:
        decode_s = self.total_s - (self.ttft_s or 0.0)
        if self.completion_tokens < 2 or decode_s <= 0:
            return None
        return (self.completion_tokens - 1) / decode_s


@dataclass
class TextPiece:
    """Text safe to send, and the tokens it completes (only when logprobs were asked for)."""

    text: str
    tokens: list[GeneratedToken]


class TextGeneration:
    def __init__(
        self,
        engine: ChatEngine,
        prompt_ids: list[int],
        max_tokens: int,
        sampling: SamplingParams,
        stops: list[str],
        cache_scope: str = "",
        priority: Priority = DEFAULT_PRIORITY,
        speculative_tokens: int | None = None,
    ) -> None:
        self._engine = engine
        self._request = GenerationRequest(prompt_ids, max_tokens, sampling, cache_scope, priority, speculative_tokens)
        self._stops = stops
        self.stats = GenerationStats(prompt_tokens=len(prompt_ids), max_tokens=max_tokens)

    async def pieces(self) -> AsyncGenerator[TextPiece, None]:
        """Yield pieces with text or tokens; `stats.finish_reason` is set when the iterator ends normally."""
        start = time.perf_counter()
        matcher = StopStringMatcher(self._stops)
        aligner = TokenAligner() if self._request.sampling.logprobs is not None else None
        emitted = 0
        try:
            async with aclosing(self._engine.generate(self._request)) as events:
                last = start
                async for event in events:
                    now = time.perf_counter()
                    if self.stats.completion_tokens == 0:
                        self.stats.ttft_s = now - start
                        self.stats.cached_tokens = event.cached_tokens
                    else:
                        self.stats.itl_s.append(now - last)
                    last = now
                    self.stats.completion_tokens += 1
                    # Counted as produced: past the key's daily budget this raises, ending the stream with an error
                    # event one step after the budget ran out at most.
                    await charge_tokens(1, "completion")
                    # The end-of-sequence token is not part of the content, so it gets no logprob entry.
                    is_eos = event.finish_reason == "stop" and not event.text
                    if aligner is not None and event.logprobs is not None and not is_eos:
                        aligner.add(event.token_id, event.text, event.logprobs)
                    text, stopped = matcher.feed(event.text)
                    if not stopped and event.finish_reason is not None:
                        text += matcher.flush()
                    emitted += len(text)
                    tokens = aligner.release(emitted, cut=stopped) if aligner is not None else []
                    if text or tokens:
                        self.stats.output.append(text)
                        yield TextPiece(text, tokens)
                    if stopped or event.finish_reason is not None:
                        self.stats.finish_reason = "stop" if stopped else event.finish_reason
                        self.stats.stop_sequence = matcher.matched
                        return
        except EngineClosedError as exc:
            raise OpenAIError(
                503,
                f"The model was unloaded before this request finished ({exc}). Retry with a model that is served.",
                "server_error",
                None,
                "model_unloaded",
            ) from exc
        finally:
            self.stats.total_s = time.perf_counter() - start

    async def deltas(self) -> AsyncGenerator[str, None]:
        """Yield non-empty text pieces; `stats.finish_reason` is set when the iterator ends normally."""
        async with aclosing(self.pieces()) as pieces:
            async for piece in pieces:
                if piece.text:
                    yield piece.text

    async def text(self) -> str:
        return "".join([piece async for piece in self.deltas()])
