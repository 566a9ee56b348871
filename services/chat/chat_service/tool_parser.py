"""The model's reply → OpenAI tool calls, incrementally, so streams carry OpenAI's tool-call deltas.

The convention (Hermes/Qwen style, and what the tool prompt asks for): a reply that calls tools *starts* with one
or more `<tool_call>{"name": ..., "arguments": {...}}</tool_call>` blocks, or is the bare JSON object itself (what
guided decoding writes for a forced call). Anything else is ordinary content. Once the name is known the call's
header goes out; the arguments then stream as the model writes them, ending exactly where their JSON value ends.
"""

from __future__ import annotations

import json
import re
import uuid
from dataclasses import dataclass, field
from typing import Any, Literal

TOOL_CALL_OPEN = "<tool_call>"
TOOL_CALL_CLOSE = "</tool_call>"
_STRING = r'"((?:[^"\\]|\\.)*)"'
_HEADER = re.compile(r'\s*\{\s*"name"\s*:\s*' + _STRING + r'\s*,\s*"arguments"\s*:\s*')
_FIRST_KEY = re.compile(r"\s*\{\s*" + _STRING)
_BLOCK = re.compile(re.escape(TOOL_CALL_OPEN) + r"(.*?)(?:" + re.escape(TOOL_CALL_CLOSE) + r"|$)", re.DOTALL)


def new_call_id() -> str:
    return f"call_{uuid.uuid4().hex[:24]}"


@dataclass
class ToolCallDelta:
    """One streamed piece of a call: the header (id and name) once, then argument fragments."""

    index: int
    id: str | None = None
    name: str | None = None
    arguments: str = ""


@dataclass
class ParsedToolCall:
    id: str
    name: str
    arguments: str = ""  # JSON text, as the model wrote it


@dataclass
class ParserOutput:
    content: str = ""
    deltas: list[ToolCallDelta] = field(default_factory=list)


class _JsonValueEnd:
    """Finds where one JSON value ends in streamed text (strings, escapes and nesting respected)."""

    def __init__(self) -> None:
        self.depth = 0
        self.started = False
        self.done = False
        self._in_string = False
        self._escaped = False
        self._scalar = False

    def feed(self, text: str) -> tuple[int, int]:
        """(chars of leading whitespace skipped, chars that belong to the value) at the start of `text`."""
        skipped = 0
        for i, char in enumerate(text):
            if not self.started:
                if char.isspace():
                    skipped += 1
                    continue
                self.started = True
                self._scalar = char not in '{["'
                self.depth = 1 if char in "{[" else 0
                self._in_string = char == '"'
                continue
            if self._scalar:
                if char in ",}] \n\r\t":
                    self.done = True
                    return skipped, i - skipped
            elif self._in_string:
                if self._escaped:
                    self._escaped = False
                elif char == "\\":
                    self._escaped = True
                elif char == '"':
                    self._in_string = False
                    if self.depth == 0:
                        self.done = True
                        return skipped, i + 1 - skipped
            elif char == '"':
                self._in_string = True
            elif char in "{[":
                self.depth += 1
            elif char in "}]":
                self.depth -= 1
                if self.depth == 0:
                    self.done = True
                    return skipped, i + 1 - skipped
        return skipped, len(text) - skipped


class ToolCallParser:
    """Feed the reply's text as it comes; get content and tool-call deltas back. `forced`: the reply is a call."""

    def __init__(self, tool_names: set[str], forced: bool) -> None:
        self._names = tool_names
        self._state: Literal["undecided", "content", "header", "arguments", "tail", "fallback"] = (
            "header" if forced else "undecided"
        )
        self._raw = ""  # everything fed, for the fallback and for content when no call is found
        self._buffer = ""  # unparsed text of the current state
        self._scanner = _JsonValueEnd()
        self.calls: list[ParsedToolCall] = []

    def feed(self, text: str) -> ParserOutput:
        self._raw += text
        if self._state == "content":
            return ParserOutput(content=text)
        if self._state == "fallback":
            return ParserOutput()
        self._buffer += text
        out = ParserOutput()
        self._advance(out)
        return out

    def finish(self) -> ParserOutput:
        """The end of the reply: settle what is still held back."""
        out = ParserOutput()
        if self._state == "fallback":
            self._parse_whole(out)
        elif self._state in ("undecided", "header") and not self.calls:
            out.content = self._raw  # never became a call: it was content all along
        self._state = "content"
        return out

    # Internals -----------------------------------------------------------------------------------------------------
    def _advance(self, out: ParserOutput) -> None:
        while True:
            before = (self._state, len(self._buffer))
            if self._state == "undecided":
                self._decide(out)
            elif self._state == "header":
                self._header(out)
            elif self._state == "arguments":
                self._arguments(out)
            elif self._state == "tail":
                self._tail()
            if self._state in ("content", "fallback") or (self._state, len(self._buffer)) == before:
                return

    def _decide(self, out: ParserOutput) -> None:
        start = self._buffer.lstrip()
        if not start or (TOOL_CALL_OPEN.startswith(start) and start != TOOL_CALL_OPEN):
            return  # could still become a call
        if start.startswith(TOOL_CALL_OPEN):
            self._buffer, self._state = start[len(TOOL_CALL_OPEN) :], "header"
        elif start.startswith("{"):
            self._buffer, self._state = start, "header"
        else:
            out.content, self._state = self._raw, "content"

    def _header(self, out: ParserOutput) -> None:
        match = _HEADER.match(self._buffer)
        if match is None:
            first_key = _FIRST_KEY.match(self._buffer)
            stripped = self._buffer.lstrip()
            if (first_key and first_key.group(1) != "name") or (stripped and not stripped.startswith("{")):
                self._give_up_streaming()
            return
        name = _unescape(match.group(1))
        if name not in self._names:
            self._give_up_streaming()
            return
        call = ParsedToolCall(new_call_id(), name)
        self.calls.append(call)
        out.deltas.append(ToolCallDelta(len(self.calls) - 1, call.id, name))
        self._buffer, self._state, self._scanner = self._buffer[match.end() :], "arguments", _JsonValueEnd()

    def _give_up_streaming(self) -> None:
        """Not laid out as name-then-arguments: parse the whole reply at the end. After a call has already gone
        out, the rest is not a call we can stand behind, so it is dropped as trailing noise instead."""
        self._state = "tail" if self.calls else "fallback"

    def _arguments(self, out: ParserOutput) -> None:
        skipped, taken = self._scanner.feed(self._buffer)
        fragment = self._buffer[skipped : skipped + taken]
        self._buffer = self._buffer[skipped + taken :]
        if fragment:
            self.calls[-1].arguments += fragment
            out.deltas.append(ToolCallDelta(len(self.calls) - 1, arguments=fragment))
        if self._scanner.done:
            self._state = "tail"

    def _tail(self) -> None:
        # After the arguments: the closing brace and tag, then perhaps another call.
        at = self._buffer.find(TOOL_CALL_OPEN)
        if at >= 0:
            self._buffer, self._state = self._buffer[at + len(TOOL_CALL_OPEN) :], "header"

    def _parse_whole(self, out: ParserOutput) -> None:
        text = self._raw.strip()
        bodies = [m.group(1) for m in _BLOCK.finditer(text)] if text.startswith(TOOL_CALL_OPEN) else [text]
        parsed = [_call_from_json(body, self._names) for body in bodies]
        calls = [p for p in parsed if p is not None]
        if not parsed or len(calls) < len(parsed):
            if not self.calls:
                out.content = self._raw
            return
        for name, arguments in calls:
            call = ParsedToolCall(new_call_id(), name, arguments)
            self.calls.append(call)
            out.deltas.append(ToolCallDelta(len(self.calls) - 1, call.id, name, arguments))


def _call_from_json(body: str, names: set[str]) -> tuple[str, str] | None:
    try:
        value: Any = json.loads(body)
    except ValueError:
        return None
    if not isinstance(value, dict) or value.get("name") not in names:
        return None
    arguments = value.get("arguments", value.get("parameters", {}))
    return value["name"], arguments if isinstance(arguments, str) else json.dumps(arguments, ensure_ascii=False)


def _unescape(json_string_body: str) -> str:
    try:
        return json.loads(f'"{json_string_body}"')
    except ValueError:
        return json_string_body
