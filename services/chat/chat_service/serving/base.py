"""Checks and conversions that chat and text completions share (no HTTP here)."""

from __future__ import annotations

from collections.abc import AsyncGenerator
from contextlib import aclosing
from dataclasses import replace
from typing import TypeVar

from ortserve_common.errors import OpenAIError, invalid_request
from ortserve_common.priority import DEFAULT_PRIORITY, Priority
from ortserve_common.protocol.sampling import SamplingRequest

from chat_service.engine import SamplingParams
from chat_service.engine.protocol import ChatEngine
from chat_service.engine.types import GuidanceSpec
from chat_service.models.pool import ModelPool, ServedModel
from chat_service.serving.generation import GenerationStats
from chat_service.serving.generation_telemetry import GenerationTelemetry
from chat_service.serving.request_run import RequestRun
from chat_service.settings import ChatSettings

T = TypeVar("T")


async def start_stream(stream: AsyncGenerator[T, None]) -> AsyncGenerator[T, None]:
    """Run a stream up to its first chunk before any byte is sent.

    Admission happens there, so 429/503 still reach the client as HTTP statuses, and once started the generator's
    `finally` (which frees the slot) runs even if the response is torn down before it is iterated again.
    """
    first = await anext(stream)
    return _prepend(first, stream)


async def _prepend(first: T, rest: AsyncGenerator[T, None]) -> AsyncGenerator[T, None]:
    async with aclosing(rest):
        yield first
        async for item in rest:
            yield item


class BaseServing:
    def __init__(self, pool: ModelPool, settings: ChatSettings, telemetry: GenerationTelemetry) -> None:
        self.pool = pool
        self.settings = settings
        self.telemetry = telemetry

    def check_supported(self, request: SamplingRequest) -> None:
        """Refuse, clearly, what we would otherwise silently ignore."""
        if request.n is not None and request.n > self.settings.max_n:
            raise invalid_request(f"n must be at most {self.settings.max_n} on this server.", "n")
        if request.best_of is not None and request.best_of > 1:
            raise invalid_request("best_of > 1 is not supported.", "best_of", "unsupported_value")
        if request.unsupported_fields:
            name = request.unsupported_fields[0]
            raise invalid_request(
                f"The sampler parameter '{name}' is not supported by this server (it knows temperature, top_p, "
                "top_k, min_p, frequency_penalty, presence_penalty, repetition_penalty, seed and logit_bias).",
                name,
                "unsupported_parameter",
            )

    def resolve_max_tokens(
        self, model: ServedModel, prompt_tokens: int, requested: int | None, prompt_param: str
    ) -> int:
        """The request's own max tokens, refused when it does not fit; else the model's default, capped."""
        context = model.engine.context_length
        if requested is not None:
            if prompt_tokens + requested > context:
                raise OpenAIError(
                    400,
                    f"This model's maximum context length is {context} tokens. However, you requested "
                    f"{prompt_tokens + requested} tokens ({prompt_tokens} in the prompt, {requested} for the "
                    "completion). Please reduce the prompt or max_tokens.",
                    param=prompt_param,
                    code="context_length_exceeded",
                )
            return requested
        if prompt_tokens >= context:
            raise OpenAIError(
                400,
                f"This model's maximum context length is {context} tokens, but the prompt has {prompt_tokens} "
                "tokens, leaving no room for a completion.",
                param=prompt_param,
                code="context_length_exceeded",
            )
        return min(model.config.max_tokens, context - prompt_tokens)

    @staticmethod
    def logit_bias(request: SamplingRequest, engine: ChatEngine) -> tuple[tuple[int, float], ...]:
        """OpenAI's {"token id": bias} with biases in [-100, 100], checked against this model's vocabulary."""
        if not request.logit_bias:
            return ()
        vocab_size = engine.tokenizer.vocab_size
        pairs = []
        for key, value in request.logit_bias.items():
            try:
                token = int(key)
            except ValueError:
                raise invalid_request(f"logit_bias keys must be token ids; got {key!r}.", "logit_bias") from None
            if not 0 <= token < vocab_size:
                raise invalid_request(
                    f"logit_bias token id {token} is outside the vocabulary (0-{vocab_size - 1}).", "logit_bias"
                )
            if not -100 <= value <= 100:
                raise invalid_request(f"logit_bias values must be in [-100, 100]; got {value}.", "logit_bias")
            pairs.append((token, float(value)))
        return tuple(pairs)

    def sampling_params(
        self,
        request: SamplingRequest,
        logprobs: int | None = None,
        guidance: GuidanceSpec | None = None,
        logit_bias: tuple[tuple[int, float], ...] = (),
    ) -> list[SamplingParams]:
        """One per choice (n). With a seed, choice i samples with seed + i: each choice is reproducible on its own
        and the choices differ from one another."""
        temperature = self.settings.default_temperature if request.temperature is None else request.temperature
        top_p = self.settings.default_top_p if request.top_p is None else request.top_p
        base = SamplingParams(
            temperature=temperature,
            top_p=top_p,
            frequency_penalty=request.frequency_penalty or 0.0,
            presence_penalty=request.presence_penalty or 0.0,
            seed=request.seed,
            logprobs=logprobs,
            guidance=guidance,
            logit_bias=logit_bias,
            top_k=max(request.top_k or 0, 0),
            min_p=request.min_p or 0.0,
            repetition_penalty=1.0 if request.repetition_penalty is None else request.repetition_penalty,
        )
        n = request.n or 1
        return [replace(base, seed=None if request.seed is None else request.seed + i) for i in range(n)]

    def speculative_tokens(self, request: SamplingRequest) -> int | None:
        """Prompt-lookup drafts per step for the engine: None leaves the server's default, 0 turns them off."""
        options = request.speculative
        if options is None:
            return None
        if options.method == "none":
            return 0
        return options.num_speculative_tokens or self.settings.prompt_lookup_tokens

    def run(
        self,
        request: SamplingRequest,
        stats: list[GenerationStats],
        operation: str | None = None,
        priority: Priority = DEFAULT_PRIORITY,
    ) -> RequestRun:
        """`async with` it around the generations: it holds their slot among the model's admitted requests (each
        model admits its own, since each has its own slots; `priority` orders its queue) and their span, and reports
        `stats` at the end. `operation` names the span for an endpoint that runs on a chat request of its own making
        (responses)."""
        admission = self.pool.model(request.model).admission  # request.model is the model's id (ModelConfig.fill)
        return RequestRun(request, stats, admission, self.telemetry, self.settings, operation, priority)
