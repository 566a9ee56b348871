"""A streamed message's events, in Anthropic's order, from the chat choice's deltas.

message_start; then each content block as content_block_start, its deltas (text_delta, or input_json_delta for a
tool_use), content_block_stop, one block open at a time; a ping after the first block opens (where Anthropic sends
it); message_delta with the stop reason and usage; message_stop. Whitespace before a block is held back: a reply
that turns out to be only tool calls gets no text block, as the non-streamed message has none.
"""

from __future__ import annotations

from typing import Any

from ortserve_common.errors import OpenAIError
from ortserve_common.protocol.chat import DeltaToolCall

from chat_service.messages.blocks import error_body, message_object, tool_use_id

Event = dict[str, Any]


class MessageEvents:
    def __init__(self) -> None:
        self.blocks: list[dict[str, Any]] = []  # every block opened, in order
        self._open: dict[str, Any] | None = None  # the block now open
        self._calls: dict[int, dict[str, Any]] = {}  # tool_use blocks by the parser's call index
        self._held = ""  # whitespace not yet known to belong to a text block
        self._pinged = False

    def start(self, message_id: str, model: str, prompt_tokens: int) -> list[Event]:
        # The prefix cache's share of the prompt is known only once generation starts: message_delta tells it.
        counts = {"input_tokens": prompt_tokens, "output_tokens": 0}
        return [{"type": "message_start", "message": message_object(message_id, model, [], (None, None), counts)}]

    # Text ----------------------------------------------------------------------------------------------------------
    def text(self, delta: str) -> list[Event]:
        if self._open is None or self._open["type"] != "text":
            if not (self._held + delta).strip():
                self._held += delta
                return []
            delta, self._held = self._held + delta, ""
            events = self._open_block({"type": "text", "text": ""})
        else:
            events = []
        assert self._open is not None
        self._open["text"] += delta
        return [*events, self._delta({"type": "text_delta", "text": delta})]

    # Tool calls ----------------------------------------------------------------------------------------------------
    def tool_call(self, delta: DeltaToolCall) -> list[Event]:
        function = delta.function
        arguments = function.arguments if function is not None and function.arguments else ""
        events: list[Event] = []
        block = self._calls.get(delta.index)
        if block is None:
            self._held = ""
            name = function.name if function is not None and function.name else ""
            block = {"type": "tool_use", "id": tool_use_id(delta.id or ""), "name": name, "input": {}}
            self._calls[delta.index] = block
            events += self._open_block(block)
        if arguments:
            block.setdefault("partial_json", "")
            block["partial_json"] += arguments
            events.append(self._delta({"type": "input_json_delta", "partial_json": arguments}))
        return events

    # The end -------------------------------------------------------------------------------------------------------
    def close(self, reason: tuple[str, str | None], counts: dict[str, int]) -> list[Event]:
        """End the open block, then the message; a reply of whitespace alone is still its text block."""
        events: list[Event] = []
        if not self.blocks and self._held:
            events += self._open_block({"type": "text", "text": self._held})
            events.append(self._delta({"type": "text_delta", "text": self._held}))
        events += self._close_block()
        if not self._pinged:
            events += self._ping()
        delta = {"stop_reason": reason[0], "stop_sequence": reason[1]}
        events.append({"type": "message_delta", "delta": delta, "usage": counts})
        events.append({"type": "message_stop"})
        return events

    @staticmethod
    def error(exc: OpenAIError) -> Event:
        return error_body(exc)

    # Internals -----------------------------------------------------------------------------------------------------
    def _open_block(self, block: dict[str, Any]) -> list[Event]:
        events = self._close_block()
        self.blocks.append(block)
        self._open = block
        start = {key: value for key, value in block.items() if key != "partial_json"}
        events.append({"type": "content_block_start", "index": len(self.blocks) - 1, "content_block": start})
        if not self._pinged:
            events += self._ping()
        return events

    def _close_block(self) -> list[Event]:
        if self._open is None:
            return []
        self._open = None
        return [{"type": "content_block_stop", "index": len(self.blocks) - 1}]

    def _delta(self, delta: dict[str, Any]) -> Event:
        return {"type": "content_block_delta", "index": len(self.blocks) - 1, "delta": delta}

    def _ping(self) -> list[Event]:
        self._pinged = True
        return [{"type": "ping"}]
