"""POST /v1/completions: raw prompts (no template) → engine → response or stream of chunks."""

from __future__ import annotations

from collections.abc import AsyncGenerator

from ortserve_common.errors import invalid_request
from ortserve_common.protocol.common import UsageInfo, new_id, now
from ortserve_common.protocol.completions import (
    CompletionChoice,
    CompletionChunk,
    CompletionRequest,
    CompletionResponse,
)

from chat_service.engine.ort_genai import OrtGenAIEngine
from chat_service.generation import TextGeneration
from chat_service.serving_base import BaseServing, start_stream


class CompletionServing(BaseServing):
    def _generations(self, engine: OrtGenAIEngine, request: CompletionRequest) -> list[TextGeneration]:
        sampling = self.sampling_params(request)
        generations = []
        prompts = request.prompts()
        for i, prompt in enumerate(prompts):
            param = "prompt" if isinstance(request.prompt, str) else f"prompt[{i}]"
            if not prompt:
                raise invalid_request("The prompt must not be empty.", param)
            prompt_ids = engine.encode(prompt)
            max_tokens = self.resolve_max_tokens(engine, len(prompt_ids), request.max_tokens, param)
            generations.append(TextGeneration(engine, prompt_ids, max_tokens, sampling, request.stop_list()))
        return generations

    def check_completion_supported(self, request: CompletionRequest) -> None:
        self.check_supported(request)
        if request.echo:
            raise invalid_request("echo is not supported yet.", "echo", "unsupported_value")
        if request.suffix:
            raise invalid_request("suffix is not supported by this model.", "suffix", "unsupported_value")

    async def create(self, request: CompletionRequest) -> CompletionResponse | AsyncGenerator[CompletionChunk, None]:
        engine = self.pool.get(request.model)
        self.check_completion_supported(request)
        generations = self._generations(engine, request)
        if request.stream:
            return await start_stream(self._stream(request, generations))
        slot = await self.admit(request)
        try:
            # One slot serves the prompts one after another, so a multi-prompt request cannot starve itself.
            texts = [await generation.text() for generation in generations]
        finally:
            slot.release()
            self.record(request.model, [g.stats for g in generations])
        choices = [
            CompletionChoice(index=i, text=text, finish_reason=g.stats.finish_reason)
            for i, (text, g) in enumerate(zip(texts, generations, strict=True))
        ]
        return CompletionResponse(
            id=new_id("cmpl"), created=now(), model=request.model, choices=choices, usage=_usage(generations)
        )

    async def _stream(
        self, request: CompletionRequest, generations: list[TextGeneration]
    ) -> AsyncGenerator[CompletionChunk, None]:
        chunk_id, created = new_id("cmpl"), now()
        slot = await self.admit(request)

        def chunk(index: int, text: str, finish: str | None = None) -> CompletionChunk:
            choice = CompletionChoice(index=index, text=text, finish_reason=finish)  # type: ignore[arg-type]
            return CompletionChunk(id=chunk_id, created=created, model=request.model, choices=[choice])

        try:
            # The first chunk is sent before generation so admission is settled before the status line goes out.
            yield chunk(0, "")
            for index, generation in enumerate(generations):
                async for piece in generation.deltas():
                    yield chunk(index, piece)
                yield chunk(index, "", generation.stats.finish_reason)
            if request.include_usage():
                yield CompletionChunk(
                    id=chunk_id, created=created, model=request.model, choices=[], usage=_usage(generations)
                )
        finally:
            slot.release()
            self.record(request.model, [g.stats for g in generations])


def _usage(generations: list[TextGeneration]) -> UsageInfo:
    prompt = sum(g.stats.prompt_tokens for g in generations)
    completion = sum(g.stats.completion_tokens for g in generations)
    return UsageInfo(prompt_tokens=prompt, completion_tokens=completion, total_tokens=prompt + completion)
