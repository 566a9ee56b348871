"""A streamed response's typed events, in OpenAI's order and numbering, from the chat choice's deltas.

Text opens a message item (output_item.added, content_part.added, then output_text.delta ...); a tool call opens a
function_call item (output_item.added, function_call_arguments.delta ...); `close` ends whatever is open with the
.done events. Whitespace before anything else is held back: a reply that turns out to be only tool calls gets no
message item, as the non-streamed response has none.
"""

from __future__ import annotations

from typing import Any

from ortserve_common.protocol.chat import DeltaToolCall

from chat_service.responses.items import function_call_item, message_item, new_item_id, output_text_part

Event = dict[str, Any]


class ResponseEvents:
    def __init__(self, parallel_tool_calls: bool) -> None:
        self.parallel_tool_calls = parallel_tool_calls
        self.output: list[dict[str, Any]] = []  # every item opened, in order; done ones hold their final fields
        self._sequence = 0
        self._message: dict[str, Any] | None = None  # the open message item
        self._text: list[str] = []
        self._held = ""  # leading whitespace, not yet known to belong to a message
        self._calls: dict[int, dict[str, Any]] = {}  # open function_call items by the parser's call index

    def event(self, kind: str, **fields: Any) -> Event:
        event = {"type": kind, "sequence_number": self._sequence, **fields}
        self._sequence += 1
        return event

    # Text ----------------------------------------------------------------------------------------------------------
    def text(self, delta: str) -> list[Event]:
        if self._message is None:
            if not (self._held + delta).strip():
                self._held += delta
                return []
            delta, self._held = self._held + delta, ""
        events = self._open_message() if self._message is None else []
        self._text.append(delta)
        return [*events, self._text_event("response.output_text.delta", delta=delta)]

    def _open_message(self) -> list[Event]:
        events = self._close_calls()
        self._message = message_item(new_item_id("message"), "", "in_progress")
        self._text = []
        self.output.append(self._message)
        part = output_text_part("")
        return [
            *events,
            self.event("response.output_item.added", output_index=self._index(self._message), item=dict(self._message)),
            self._text_event("response.content_part.added", part=part),
        ]

    def _text_event(self, kind: str, **fields: Any) -> Event:
        assert self._message is not None
        extra: dict[str, Any] = {"logprobs": []} if kind.startswith("response.output_text") else {}
        return self.event(
            kind,
            item_id=self._message["id"],
            output_index=self._index(self._message),
            content_index=0,
            **fields,
            **extra,
        )

    def _close_message(self, status: str) -> list[Event]:
        if self._message is None:
            return []
        text = "".join(self._text)
        part = output_text_part(text)
        events = [
            self._text_event("response.output_text.done", text=text),
            self._text_event("response.content_part.done", part=part),
        ]
        self._message.update(message_item(self._message["id"], text, status))
        events.append(
            self.event("response.output_item.done", output_index=self._index(self._message), item=dict(self._message))
        )
        self._message = None
        return events

    # Tool calls ----------------------------------------------------------------------------------------------------
    def tool_call(self, delta: DeltaToolCall) -> list[Event]:
        if delta.index > 0 and not self.parallel_tool_calls:
            return []  # only the first call is kept, as in the non-streamed response
        function = delta.function
        arguments = function.arguments if function is not None and function.arguments else ""
        events: list[Event] = []
        item = self._calls.get(delta.index)
        if item is None:
            self._held = ""
            events += self._close_message("completed")
            name = function.name if function is not None and function.name else ""
            item = function_call_item(new_item_id("function_call"), delta.id or "", name, "", "in_progress")
            self._calls[delta.index] = item
            self.output.append(item)
            events.append(self.event("response.output_item.added", output_index=self._index(item), item=dict(item)))
        if arguments:
            item["arguments"] += arguments
            events.append(
                self.event(
                    "response.function_call_arguments.delta",
                    item_id=item["id"],
                    output_index=self._index(item),
                    delta=arguments,
                )
            )
        return events

    def _close_calls(self) -> list[Event]:
        events = []
        for item in self._calls.values():
            index = self._index(item)
            events.append(
                self.event(
                    "response.function_call_arguments.done",
                    item_id=item["id"],
                    output_index=index,
                    name=item["name"],
                    arguments=item["arguments"],
                )
            )
            item["status"] = "completed"
            events.append(self.event("response.output_item.done", output_index=index, item=dict(item)))
        self._calls = {}
        return events

    # The end -------------------------------------------------------------------------------------------------------
    def close(self, incomplete: bool) -> list[Event]:
        """End the open items; a reply with no items at all still gets its (empty or blank) message."""
        events: list[Event] = []
        if not self.output:
            events += self._open_message()
            self._text.append(self._held)
            self._held = ""
            if self._text[-1]:
                events.append(self._text_event("response.output_text.delta", delta=self._text[-1]))
        events += self._close_message("incomplete" if incomplete else "completed")
        events += self._close_calls()
        return events

    def _index(self, item: dict[str, Any]) -> int:
        return next(i for i, candidate in enumerate(self.output) if candidate is item)
