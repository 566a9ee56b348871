"""Reading the call that guided decoding forces (`tool_choice` required or a named function): the bare
`{"name": ..., "arguments": {...}}` object its grammar writes, name first. The name goes out as soon as it is known,
then the arguments stream as the model writes them, ending exactly where their JSON value ends."""

from __future__ import annotations

import re

from chat_service.tools.json_calls import STRING, JsonValueEnd, unescape
from chat_service.tools.types import ParsedToolCall, ParserOutput, ToolCallDelta, new_call_id

_HEADER = re.compile(r'\s*\{\s*"name"\s*:\s*' + STRING + r'\s*,\s*"arguments"\s*:\s*')


class ForcedCallParser:
    """The reply is the call object guided decoding writes, name first; its arguments stream as they come."""

    def __init__(self, tool_names: set[str]) -> None:
        self._names = tool_names
        self._raw = ""  # everything fed: the content if no call comes of it (cut short before the name)
        self._buffer = ""  # not yet read
        self._scanner: JsonValueEnd | None = None  # set once the header is read
        self.calls: list[ParsedToolCall] = []

    def feed(self, text: str) -> ParserOutput:
        self._raw += text
        out = ParserOutput()
        if self._scanner is not None and self._scanner.done:
            return out  # the grammar's closing brace
        self._buffer += text
        if self._scanner is None:
            header = _HEADER.match(self._buffer)
            if header is None or unescape(header.group(1)) not in self._names:
                return out
            call = ParsedToolCall(new_call_id(), unescape(header.group(1)))
            self.calls.append(call)
            out.deltas.append(ToolCallDelta(0, call.id, call.name))
            self._buffer, self._scanner = self._buffer[header.end() :], JsonValueEnd()
        skipped, taken = self._scanner.feed(self._buffer)
        fragment = self._buffer[skipped : skipped + taken]
        self._buffer = self._buffer[skipped + taken :]
        if fragment:
            self.calls[0].arguments += fragment
            out.deltas.append(ToolCallDelta(0, arguments=fragment))
        return out

    def finish(self) -> ParserOutput:
        # Cut short (max_tokens) before the name was out: what was written is content. After it, the call keeps
        # the arguments written so far, as OpenAI's API does for a call cut by the length limit.
        return ParserOutput(content=self._raw if not self.calls else "")
