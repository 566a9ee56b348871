"""POST /v1/chat/completions: request → prompt → n generations → response or stream of chunks."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator
from contextlib import aclosing
from dataclasses import dataclass
from typing import Any

from ortserve_common.errors import OpenAIError, invalid_request
from ortserve_common.priority import DEFAULT_PRIORITY, Priority
from ortserve_common.protocol.chat import (
    ChatCompletionChunk,
    ChatCompletionChunkChoice,
    ChatCompletionRequest,
    ChatCompletionResponse,
    DeltaMessage,
)
from ortserve_common.protocol.common import UsageInfo, new_id, now

from chat_service.engine.protocol import ChatEngine
from chat_service.engine.types import GuidanceSpec
from chat_service.models.pool import ServedModel
from chat_service.serving.base import BaseServing, start_stream
from chat_service.serving.chat_choices import ChatChoice
from chat_service.serving.chat_context import ChatContext, ChatTurn
from chat_service.serving.chat_prompt import PromptEncoder
from chat_service.serving.generation import TextGeneration
from chat_service.serving.guided import extension_guidance, resolve_guidance, response_format_guidance
from chat_service.serving.logprobs import load_token_bytes
from chat_service.serving.multiplex import interleave, run_all
from chat_service.tools.request import ToolPlan, blame_parameters, plan_tools
from chat_service.vision.reading import NO_IMAGES, ImageReading


@dataclass
class EncodedChat:
    model: ServedModel
    plan: ToolPlan
    turn: ChatTurn
    prompt_ids: list[int]


@dataclass
class PreparedChat:
    """A chat request ready to generate: one generation and one choice per `n`."""

    turn: ChatTurn
    generations: list[TextGeneration]
    choices: list[ChatChoice]
    fingerprint: str
    priority: Priority = DEFAULT_PRIORITY  # the key's: orders the model's queues (ortserve_common.priority)


class ChatServing(BaseServing):
    def __init__(
        self, *args: Any, context: ChatContext | None = None, images: ImageReading | None = None, **kwargs: Any
    ) -> None:
        super().__init__(*args, **kwargs)
        self.context = context  # conversations and prompt templates; None in tests of the HTTP layer alone
        self.images = images or NO_IMAGES  # OCR; without it (HTTP-layer tests) an image is a 400

    async def read_images(self, request: ChatCompletionRequest) -> ChatCompletionRequest:
        """The request with its images' text, read by OCR, in their place: what the rest of the pipeline (and a
        conversation it is recorded in) sees."""
        if not any(message.images() for message in request.messages):
            return request
        return request.model_copy(update={"messages": await self.images.read_messages(request.messages)})

    async def chat_turn(
        self, engine: ChatEngine, request: ChatCompletionRequest, owner: str, plan: ToolPlan
    ) -> tuple[ChatTurn, list[int]]:
        """The turn (what the model sees) and its prompt ids; a prompt already encoded to fit a conversation into
        the context is not encoded again."""
        encode = PromptEncoder(engine.tokenizer, plan)
        if self.context is None:
            if request.conversation is not None or request.prompt_template is not None:
                raise invalid_request("This server keeps no conversations or prompt templates.", "conversation")
            turn = ChatTurn(request, request.messages, owner)
        else:
            turn = await self.context.turn(request, owner, encode.count, engine.context_length)
        # Rendering and tokenizing a long conversation takes milliseconds: off the event loop, like the fitting.
        return turn, await asyncio.to_thread(encode, turn.messages)

    async def record(self, turn: ChatTurn, choice: ChatChoice) -> None:
        if self.context is not None:
            await self.context.record(turn, choice.message())

    def chat_logprobs(self, request: ChatCompletionRequest) -> int | None:
        """How many alternatives per token the sampler reports, or None for no logprobs."""
        if not request.logprobs:
            if request.top_logprobs is not None:
                raise invalid_request("top_logprobs needs logprobs set to true.", "top_logprobs")
            return None
        return request.top_logprobs or 0

    async def guidance(self, engine: ChatEngine, request: ChatCompletionRequest, plan: ToolPlan) -> GuidanceSpec | None:
        # A forced tool call decides the whole reply, so it takes the place of response_format.
        vocabulary = engine.tokenizer.vocabulary
        if plan.guidance is not None:
            candidates = [(plan.guidance, "tool_choice")]
        else:
            from_format = response_format_guidance(request.response_format)
            candidates = [from_format] if from_format else []
        candidates += extension_guidance(request)
        try:
            return await resolve_guidance(candidates, vocabulary)
        except OpenAIError:
            if plan.guidance is not None:  # a forced call's grammar failed: name the tool whose schema is at fault
                await asyncio.to_thread(blame_parameters, plan.functions, vocabulary)
            raise

    async def encode(self, request: ChatCompletionRequest, owner: str = "") -> EncodedChat:
        """The request checked and its prompt encoded: what /v1/messages/count_tokens counts, and the first half of
        `prepare`."""
        model = self.pool.model(request.model)
        self.check_supported(request)  # the cheap checks before any database read, compilation or tokenizing
        self.chat_logprobs(request)
        request = await self.read_images(request)  # after the cheap checks: OCR costs seconds of CPU
        vocabulary = model.engine.tokenizer.vocabulary
        # Tool schemas are compiled to be checked: off the event loop, which keeps the other streams going.
        plan = await asyncio.to_thread(
            plan_tools, request.tools, request.tool_choice, vocabulary, request.parallel_tool_calls
        )
        turn, prompt_ids = await self.chat_turn(model.engine, request, owner, plan)
        return EncodedChat(model, plan, turn, prompt_ids)

    async def prepare(
        self, request: ChatCompletionRequest, owner: str = "", priority: Priority = DEFAULT_PRIORITY
    ) -> PreparedChat:
        """Everything checked, encoded and compiled, before any slot is taken or any byte streamed; other endpoints
        that speak another wire format (/v1/messages) run the chat pipeline from here."""
        encoded = await self.encode(request, owner)
        model, plan, turn, prompt_ids = encoded.model, encoded.plan, encoded.turn, encoded.prompt_ids
        engine = model.engine
        # The model's defaults after the prompt template's parameters, which are the more specific.
        request = turn.request = model.config.fill(turn.request)
        self.check_supported(request)  # again: a prompt template may have filled in parameters
        logprobs = self.chat_logprobs(request)
        if logprobs is not None:
            await load_token_bytes(engine.tokenizer.vocabulary)
        guidance = await self.guidance(engine, request, plan)
        requested = request.max_completion_tokens or request.max_tokens
        max_tokens = self.resolve_max_tokens(model, len(prompt_ids), requested, "messages")
        stops = request.stop_list()
        speculative = self.speculative_tokens(request)
        generations = [
            TextGeneration(
                engine,
                prompt_ids,
                max_tokens,
                params,
                stops,
                cache_scope=owner,
                priority=priority,
                speculative_tokens=speculative,
            )
            for params in self.sampling_params(request, logprobs, guidance, self.logit_bias(request, engine))
        ]
        vocabulary = engine.tokenizer.vocabulary
        choices = [ChatChoice(i, plan, vocabulary, logprobs is not None) for i in range(len(generations))]
        return PreparedChat(turn, generations, choices, engine.system_fingerprint, priority)

    async def create(
        self, request: ChatCompletionRequest, owner: str = "", priority: Priority = DEFAULT_PRIORITY
    ) -> ChatCompletionResponse | AsyncGenerator[ChatCompletionChunk, None]:
        """`owner` is the API key the proxy vouched for: conversations are visible to their owner only, and cached
        prompt prefixes are reused for their owner only. `priority` is that key's."""
        prepared = await self.prepare(request, owner, priority)
        turn, generations, choices = prepared.turn, prepared.generations, prepared.choices
        request = turn.request
        if request.stream:
            return await start_stream(self._stream(prepared))
        async with self.run(request, [g.stats for g in generations], priority=priority):
            await run_all(generations, [choice.add for choice in choices])
        response = ChatCompletionResponse(
            id=new_id("chatcmpl"),
            created=now(),
            model=request.model,
            choices=[c.choice(g.stats.finish_reason) for c, g in zip(choices, generations, strict=True)],
            usage=_usage(generations),
            system_fingerprint=prepared.fingerprint,
        )
        await self.record(turn, choices[0])
        return response

    async def _stream(self, prepared: PreparedChat) -> AsyncGenerator[ChatCompletionChunk, None]:
        turn, generations, choices = prepared.turn, prepared.generations, prepared.choices
        request, fingerprint = turn.request, prepared.fingerprint
        chunk_id, created = new_id("chatcmpl"), now()

        def chunk(choice: ChatCompletionChunkChoice) -> ChatCompletionChunk:
            return ChatCompletionChunk(
                id=chunk_id, created=created, model=request.model, choices=[choice], system_fingerprint=fingerprint
            )

        async with self.run(request, [g.stats for g in generations], priority=prepared.priority):
            for choice in choices:
                yield chunk(
                    ChatCompletionChunkChoice(index=choice.index, delta=DeltaMessage(role="assistant", content=""))
                )
            async with aclosing(interleave([g.pieces() for g in generations])) as pieces:
                async for index, piece in pieces:
                    if piece is None:  # choice `index` has ended
                        for part in choices[index].final(generations[index].stats.finish_reason):
                            yield chunk(part)
                    elif (delta := choices[index].delta(piece)) is not None:
                        yield chunk(delta)
            # Stored before the last chunk: a client that reads to the end finds its turn in the conversation.
            await self.record(turn, choices[0])
            if request.include_usage():
                yield ChatCompletionChunk(
                    id=chunk_id,
                    created=created,
                    model=request.model,
                    choices=[],
                    usage=_usage(generations),
                    system_fingerprint=fingerprint,
                )


def _usage(generations: list[TextGeneration]) -> UsageInfo:
    """The prompt counts once; completion tokens count for every choice."""
    prompt = generations[0].stats.prompt_tokens
    completion = sum(g.stats.completion_tokens for g in generations)
    return UsageInfo.counted(prompt, completion, generations[0].stats.cached_tokens)
