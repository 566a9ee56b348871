"""POST /v1/chat/completions: request → prompt → engine → response or stream of chunks."""

from __future__ import annotations

from collections.abc import AsyncGenerator
from typing import Any

from ortserve_common.errors import invalid_request
from ortserve_common.protocol.chat import (
    AssistantMessage,
    ChatCompletionChoice,
    ChatCompletionChunk,
    ChatCompletionChunkChoice,
    ChatCompletionRequest,
    ChatCompletionResponse,
    DeltaMessage,
)
from ortserve_common.protocol.common import UsageInfo, new_id, now

from chat_service.engine.ort_genai import OrtGenAIEngine
from chat_service.generation import TextGeneration
from chat_service.serving_base import BaseServing, start_stream


class ChatServing(BaseServing):
    def render_prompt(self, engine: OrtGenAIEngine, request: ChatCompletionRequest) -> str:
        messages: list[dict[str, Any]] = []
        for i, message in enumerate(request.messages):
            if message.content is None and message.role != "assistant":
                raise invalid_request(f"messages[{i}] has no content.", f"messages[{i}].content")
            # Templates know "system"; OpenAI's "developer" role is the same thing for a model like this one.
            role = "system" if message.role == "developer" else message.role
            messages.append({"role": role, "content": message.text()})
        return engine.apply_chat_template(messages)

    def check_chat_supported(self, request: ChatCompletionRequest) -> None:
        self.check_supported(request)
        if request.top_logprobs is not None:
            raise invalid_request("top_logprobs is not supported yet.", "top_logprobs", "unsupported_value")
        if request.tools:
            raise invalid_request("tools are not supported yet.", "tools", "unsupported_value")
        if request.response_format and request.response_format.get("type", "text") != "text":
            raise invalid_request(
                "response_format other than text is not supported yet.", "response_format", "unsupported_value"
            )

    async def create(
        self, request: ChatCompletionRequest
    ) -> ChatCompletionResponse | AsyncGenerator[ChatCompletionChunk, None]:
        engine = self.pool.get(request.model)
        self.check_chat_supported(request)
        prompt_ids = engine.encode(self.render_prompt(engine, request))
        requested = request.max_completion_tokens or request.max_tokens
        max_tokens = self.resolve_max_tokens(engine, len(prompt_ids), requested, "messages")
        generation = TextGeneration(engine, prompt_ids, max_tokens, self.sampling_params(request), request.stop_list())
        if request.stream:
            return await start_stream(self._stream(request, generation))
        slot = await self.admit(request)
        try:
            text = await generation.text()
        finally:
            slot.release()
            self.record(request.model, [generation.stats])
        stats = generation.stats
        return ChatCompletionResponse(
            id=new_id("chatcmpl"),
            created=now(),
            model=request.model,
            choices=[
                ChatCompletionChoice(index=0, message=AssistantMessage(content=text), finish_reason=stats.finish_reason)
            ],
            usage=_usage(stats.prompt_tokens, stats.completion_tokens),
        )

    async def _stream(
        self, request: ChatCompletionRequest, generation: TextGeneration
    ) -> AsyncGenerator[ChatCompletionChunk, None]:
        chunk_id, created = new_id("chatcmpl"), now()
        slot = await self.admit(request)

        def chunk(delta: DeltaMessage, finish: Any = None) -> ChatCompletionChunk:
            choice = ChatCompletionChunkChoice(index=0, delta=delta, finish_reason=finish)
            return ChatCompletionChunk(id=chunk_id, created=created, model=request.model, choices=[choice])

        try:
            yield chunk(DeltaMessage(role="assistant", content=""))
            async for piece in generation.deltas():
                yield chunk(DeltaMessage(content=piece))
            stats = generation.stats
            yield chunk(DeltaMessage(), stats.finish_reason)
            if request.include_usage():
                yield ChatCompletionChunk(
                    id=chunk_id,
                    created=created,
                    model=request.model,
                    choices=[],
                    usage=_usage(stats.prompt_tokens, stats.completion_tokens),
                )
        finally:
            slot.release()
            self.record(request.model, [generation.stats])


def _usage(prompt: int, completion: int) -> UsageInfo:
    return UsageInfo(prompt_tokens=prompt, completion_tokens=completion, total_tokens=prompt + completion)
