"""POST /v1/messages and /v1/messages/count_tokens: Anthropic's Messages API (no HTTP here).

A message runs on the chat pipeline: its system prompt, content blocks and tools become a chat request, which chat
checks, renders, encodes, guides (a forced tool call), generates and tool-parses exactly as /v1/chat/completions
does, with the owner's prefix cache; only the reply's shape and the stream's events are Anthropic's.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncGenerator
from contextlib import aclosing
from typing import Any

from ortserve_common.errors import OpenAIError
from ortserve_common.priority import DEFAULT_PRIORITY, Priority
from ortserve_common.protocol.messages import CountTokensRequest, MessagesRequest

from chat_service.messages.blocks import content_blocks, message_object, new_message_id, stop_reason, usage
from chat_service.messages.events import Event, MessageEvents
from chat_service.messages.input import chat_request, refuse_unsupported
from chat_service.serving.base import start_stream
from chat_service.serving.chat import ChatServing, PreparedChat
from chat_service.serving.multiplex import run_all

logger = logging.getLogger(__name__)

OPERATION = "messages"


class MessagesServing:
    def __init__(self, chat: ChatServing) -> None:
        self.chat = chat

    async def create(
        self, request: MessagesRequest, owner: str = "", priority: Priority = DEFAULT_PRIORITY
    ) -> dict[str, Any] | AsyncGenerator[Event, None]:
        refuse_unsupported(request)  # the cheap checks before any compilation or tokenizing
        prepared = await self.chat.prepare(chat_request(request), owner, priority)
        if request.stream:
            return await start_stream(self._stream(prepared))
        [generation], [choice] = prepared.generations, prepared.choices
        async with self.chat.run(prepared.turn.request, [generation.stats], OPERATION, prepared.priority):
            await run_all([generation], [choice.add])
        stats = generation.stats
        finish = choice.choice(stats.finish_reason).finish_reason  # flushes what the tool-call parser still held
        blocks = content_blocks(choice.message())
        model = prepared.turn.request.model
        return message_object(new_message_id(), model, blocks, stop_reason(finish, stats), usage(stats))

    async def count_tokens(self, request: CountTokensRequest, owner: str = "") -> dict[str, int]:
        """The prompt's tokens as /v1/messages would encode it (system, messages, tools), without generating."""
        refuse_unsupported(request)
        encoded = await self.chat.encode(chat_request(request), owner)
        return {"input_tokens": len(encoded.prompt_ids)}

    async def _stream(self, prepared: PreparedChat) -> AsyncGenerator[Event, None]:
        [generation], [choice] = prepared.generations, prepared.choices
        request = prepared.turn.request
        events = MessageEvents()
        message_id = new_message_id()
        # The first event is yielded inside the run: admission (429/503) happens before the response starts.
        async with self.chat.run(request, [generation.stats], OPERATION, prepared.priority) as run:
            try:
                for event in events.start(message_id, request.model, generation.stats.prompt_tokens):
                    yield event
                async with aclosing(generation.pieces()) as pieces:
                    async for piece in pieces:
                        for event in _part_events(events, choice.delta(piece)):
                            yield event
                stats = generation.stats
                finish = None
                for part in choice.final(stats.finish_reason):
                    finish = part.finish_reason or finish
                    for event in _part_events(events, part):
                        yield event
                for event in events.close(stop_reason(finish, stats), usage(stats)):
                    yield event
            except OpenAIError as exc:  # told to the client as an error event; the span and metrics still say so
                run.failed(exc)
                yield events.error(exc)
            except Exception as exc:
                logger.exception("message %s failed after its stream started", message_id)
                run.failed(exc)
                yield events.error(OpenAIError(500, "Internal server error during streaming.", "server_error"))


def _part_events(events: MessageEvents, part: Any) -> list[Event]:
    if part is None:
        return []
    out: list[Event] = []
    if part.delta.content:
        out += events.text(part.delta.content)
    for call in part.delta.tool_calls or []:
        out += events.tool_call(call)
    return out
