"""POST /v1/completions: raw prompts (no template) → engine → response or stream of chunks.

Each prompt gets n choices, at index prompt_index * n + choice (OpenAI's order); a prompt's n choices run at once,
the prompts one after another.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator
from contextlib import aclosing

from ortserve_common.errors import invalid_request
from ortserve_common.priority import DEFAULT_PRIORITY, Priority
from ortserve_common.protocol.common import UsageInfo, new_id, now
from ortserve_common.protocol.completions import (
    CompletionChoice,
    CompletionChunk,
    CompletionLogprobs,
    CompletionRequest,
    CompletionResponse,
)

from chat_service.engine.vocabulary import Vocabulary
from chat_service.models.pool import ServedModel
from chat_service.serving.base import BaseServing, start_stream
from chat_service.serving.generation import TextGeneration, TextPiece
from chat_service.serving.guided import extension_guidance, resolve_guidance
from chat_service.serving.logprobs import GeneratedToken, completion_logprobs, load_token_bytes
from chat_service.serving.multiplex import interleave, run_all


class CompletionText:
    """One choice's text and tokens so far, and the logprobs layout for a part of them."""

    def __init__(self, vocabulary: Vocabulary | None, logprobs: bool) -> None:
        self._vocabulary = vocabulary if logprobs else None
        self.text = ""
        self.tokens: list[GeneratedToken] = []

    def add(self, piece: TextPiece) -> CompletionLogprobs | None:
        """Take a piece; the logprobs of its tokens, with offsets into this choice's text."""
        offset = len(self.text)
        self.text += piece.text
        self.tokens += piece.tokens
        if self._vocabulary is None:
            return None
        return completion_logprobs(piece.tokens, self._vocabulary, offset)

    def logprobs(self) -> CompletionLogprobs | None:
        return None if self._vocabulary is None else completion_logprobs(self.tokens, self._vocabulary, 0)


class CompletionServing(BaseServing):
    async def _groups(
        self, model: ServedModel, request: CompletionRequest, owner: str, priority: Priority
    ) -> list[list[TextGeneration]]:
        """One group of n generations per prompt; `owner` scopes the prefix cache (see GenerationRequest)."""
        engine = model.engine
        if request.logprobs is not None:
            await load_token_bytes(engine.tokenizer.vocabulary)
        guidance = await resolve_guidance(extension_guidance(request), engine.tokenizer.vocabulary)
        bias = self.logit_bias(request, engine)
        samplings = self.sampling_params(request, request.logprobs, guidance, bias)
        groups = []
        for i, prompt in enumerate(request.prompts()):
            param = "prompt" if isinstance(request.prompt, str) else f"prompt[{i}]"
            if not prompt:
                raise invalid_request("The prompt must not be empty.", param)
            # Off the event loop, as chat encodes: a long prompt takes milliseconds that other streams would wait.
            prompt_ids = await asyncio.to_thread(engine.tokenizer.encode, prompt)
            max_tokens = self.resolve_max_tokens(model, len(prompt_ids), request.max_tokens, param)
            stops = request.stop_list()
            speculative = self.speculative_tokens(request)
            groups.append(
                [
                    TextGeneration(engine, prompt_ids, max_tokens, s, stops, owner, priority, speculative)
                    for s in samplings
                ]
            )
        return groups

    def check_completion_supported(self, request: CompletionRequest) -> None:
        self.check_supported(request)
        if request.echo:
            raise invalid_request("echo is not supported yet.", "echo", "unsupported_value")
        if request.suffix:
            raise invalid_request("suffix is not supported by this model.", "suffix", "unsupported_value")

    async def create(
        self, request: CompletionRequest, owner: str = "", priority: Priority = DEFAULT_PRIORITY
    ) -> CompletionResponse | AsyncGenerator[CompletionChunk, None]:
        model = self.pool.model(request.model)
        self.check_completion_supported(request)
        request = model.config.fill(request)
        engine = model.engine
        groups = await self._groups(model, request, owner, priority)
        generations = [g for group in groups for g in group]
        texts = [CompletionText(engine.tokenizer.vocabulary, request.logprobs is not None) for _ in generations]
        if request.stream:
            return await start_stream(self._stream(request, groups, texts, engine.system_fingerprint, priority))
        # One slot serves the prompts one after another, so a multi-prompt request cannot starve itself.
        async with self.run(request, [g.stats for g in generations], priority=priority):
            for start, group in _starts(groups):
                await run_all(group, [texts[start + j].add for j in range(len(group))])
        choices = [
            CompletionChoice(index=i, text=t.text, logprobs=t.logprobs(), finish_reason=g.stats.finish_reason)
            for i, (t, g) in enumerate(zip(texts, generations, strict=True))
        ]
        return CompletionResponse(
            id=new_id("cmpl"),
            created=now(),
            model=request.model,
            choices=choices,
            usage=_usage(groups),
            system_fingerprint=engine.system_fingerprint,
        )

    async def _stream(
        self,
        request: CompletionRequest,
        groups: list[list[TextGeneration]],
        texts: list[CompletionText],
        fingerprint: str,
        priority: Priority,
    ) -> AsyncGenerator[CompletionChunk, None]:
        chunk_id, created = new_id("cmpl"), now()

        def chunk(index: int, text: str, logprobs: CompletionLogprobs | None = None, finish=None) -> CompletionChunk:
            choice = CompletionChoice(index=index, text=text, logprobs=logprobs, finish_reason=finish)
            return CompletionChunk(
                id=chunk_id, created=created, model=request.model, choices=[choice], system_fingerprint=fingerprint
            )

        async with self.run(request, [g.stats for group in groups for g in group], priority=priority):
            # The first chunk is sent before generation so admission is settled before the status line goes out.
            yield chunk(0, "")
            for start, group in _starts(groups):
                async with aclosing(interleave([g.pieces() for g in group])) as pieces:
                    async for j, piece in pieces:
                        index = start + j
                        if piece is None:
                            yield chunk(index, "", finish=group[j].stats.finish_reason)
                        else:
                            yield chunk(index, piece.text, texts[index].add(piece))
            if request.include_usage():
                yield CompletionChunk(
                    id=chunk_id,
                    created=created,
                    model=request.model,
                    choices=[],
                    usage=_usage(groups),
                    system_fingerprint=fingerprint,
                )


def _starts(groups: list[list[TextGeneration]]) -> list[tuple[int, list[TextGeneration]]]:
    """Each group with the choice index of its first generation."""
    starts, index = [], 0
    for group in groups:
        starts.append((index, group))
        index += len(group)
    return starts


def _usage(groups: list[list[TextGeneration]]) -> UsageInfo:
    """Each prompt counts once; completion tokens count for every choice."""
    prompt = sum(group[0].stats.prompt_tokens for group in groups)
    completion = sum(g.stats.completion_tokens for group in groups for g in group)
    cached = sum(group[0].stats.cached_tokens for group in groups)
    return UsageInfo.counted(prompt, completion, cached)
