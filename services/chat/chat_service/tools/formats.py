"""Reading the calls a model makes by itself (`tool_choice: auto`), in the formats model families write them.

Recognised, each only when every call it holds names a tool the request declared (json_calls.py says what a call
object is); otherwise the text is content, unchanged:
- `<tool_call>{...}</tool_call>` (Qwen, Hermes; what the server's own tool prompt asks for), anywhere in the reply;
- a fenced block, ```json or a bare ```, holding a call object or a list of them, anywhere in the reply (small
  models write this when they follow a tool prompt loosely; llama-server's Hermes parser accepts it too);
- `[TOOL_CALLS][{...}, ...]` (Mistral) and `<|python_tag|>{...}` (Llama 3.1), anywhere;
- a bare call object or list of them (`{"name": ..., "parameters": ...}`, Llama 3 JSON), only at the very start of
  the reply or right after another call (apart from whitespace, or `;` between Llama's calls): in the middle of
  prose a JSON object is too likely to be an example.
Text before, between and after calls stays content. Content that might still turn into a call (a reply opening with
"```" or "{", a trailing "<tool") is held back only until that is decided, then released unchanged. Whitespace is
dropped only where it merely separates calls (from each other or from the content). A call goes out whole once its
JSON is complete and checked: with `auto`, broken JSON must come back as the text it was, so no part of a call can
be streamed before it is.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Literal

from chat_service.tools.json_calls import JsonValueEnd, calls_in_value, could_be_call
from chat_service.tools.types import ParsedToolCall, ParserOutput, ToolCallDelta, new_call_id

TOOL_CALL_OPEN = "<tool_call>"
TOOL_CALL_CLOSE = "</tool_call>"
FENCE = "```"
MISTRAL_CALLS = "[TOOL_CALLS]"
PYTHON_TAG = "<|python_tag|>"
OPENERS = (TOOL_CALL_OPEN, FENCE, MISTRAL_CALLS, PYTHON_TAG)
CLOSERS = {TOOL_CALL_OPEN: TOOL_CALL_CLOSE, FENCE: FENCE}  # the others end where their JSON value does
FENCE_LANGUAGES = frozenset({"", "json", "tool_call", "tool_calls"})  # any other language is a code block
_LANGUAGE = re.compile(r"[A-Za-z0-9_+.-]*")
_SEPARATOR = re.compile(r"\s*")
_SEPARATOR_AFTER_CALL = re.compile(r"[\s;]*")


@dataclass
class _Region:
    """Text that may be a call, from its opener on ("" for a bare object); `held` is released as it was if not."""

    opener: str
    held: str
    phase: Literal["language", "value", "after"]
    calls: list[tuple[str, str]] = field(default_factory=list)
    value: str = ""  # the JSON value being read
    scanner: JsonValueEnd | None = None


class AutoCallParser:
    def __init__(self, tool_names: set[str]) -> None:
        self._names = tool_names
        self._buffer = ""  # fed, not yet read
        self._space = ""  # whitespace after the last content or call: it goes out with what follows, if content
        self._mode: Literal["text", "region", "code"] = "text"
        self._region: _Region | None = None
        self._bare_ok = True  # a bare JSON call may start here: at the reply's start, or right after a call
        self.calls: list[ParsedToolCall] = []

    def feed(self, text: str) -> ParserOutput:
        self._buffer += text
        out = ParserOutput()
        self._run(out, final=False)
        return out

    def finish(self) -> ParserOutput:
        out = ParserOutput()
        self._run(out, final=True)
        if not self.calls:
            out.content += self._space  # a reply without calls comes back exactly as written
        self._space = ""
        return out

    def _run(self, out: ParserOutput, final: bool) -> None:
        while True:
            if self._mode == "text":
                progressed = self._text(out, final)
            elif self._mode == "region":
                progressed = self._read_region(out, final)
            else:
                progressed = self._code(out, final)
            if not progressed:
                return

    # Content -------------------------------------------------------------------------------------------------------
    def _text(self, out: ParserOutput, final: bool) -> bool:
        if self._bare_ok:
            separator = (_SEPARATOR_AFTER_CALL if self.calls else _SEPARATOR).match(self._buffer)
            assert separator is not None
            self._space += separator.group(0)
            self._buffer = self._buffer[separator.end() :]
            if self._buffer[:1] in ("{", "["):
                if not final and any(o != self._buffer and o.startswith(self._buffer) for o in OPENERS):
                    return False  # "[" may yet be "[TOOL_CALLS]"
                if not any(self._buffer.startswith(o) for o in OPENERS):
                    self._open("")
                    return True
        buffer = self._buffer
        found = [(at, opener) for opener in OPENERS if (at := buffer.find(opener)) >= 0]
        if found:
            at, opener = min(found)
            self._content(out, buffer[:at])
            self._buffer = buffer[at + len(opener) :]
            self._open(opener)
            return True
        keep = 0 if final else _partial_opener_length(buffer)
        self._content(out, buffer[: len(buffer) - keep])
        self._buffer = buffer[len(buffer) - keep :]
        return False

    def _code(self, out: ParserOutput, final: bool) -> bool:
        """Inside a code block that is not a call: content up to its closing fence, which is no opener."""
        at = self._buffer.find(FENCE)
        if at >= 0:
            self._content(out, self._buffer[: at + len(FENCE)])
            self._buffer, self._mode = self._buffer[at + len(FENCE) :], "text"
            return True
        keep = 0 if final else len(self._buffer) - len(self._buffer.rstrip("`"))
        self._content(out, self._buffer[: len(self._buffer) - keep])
        self._buffer = self._buffer[len(self._buffer) - keep :]
        return False

    def _content(self, out: ParserOutput, text: str) -> None:
        """Content goes out with the whitespace before it; its own trailing whitespace waits for what follows."""
        if not text:
            return
        text = self._space + text
        body = text.rstrip()
        self._space = text[len(body) :]
        if body:
            out.content += body
            self._bare_ok = False

    # Regions that may be calls -------------------------------------------------------------------------------------
    def _open(self, opener: str) -> None:
        phase: Literal["language", "value"] = "language" if opener == FENCE else "value"
        self._region = _Region(opener, self._space + opener, phase)
        self._space, self._mode = "", "region"

    def _read_region(self, out: ParserOutput, final: bool) -> bool:
        region = self._region
        assert region is not None
        if region.phase == "language":
            language = _LANGUAGE.match(self._buffer)
            assert language is not None
            if language.end() == len(self._buffer) and not final:
                return False  # the fence's language may still be being written
            self._take(language.end())
            if language.group(0).lower() not in FENCE_LANGUAGES:
                return self._reject(out)
            region.phase = "value"
            return True
        if region.phase == "value":
            return self._read_value(region, out, final)
        closer = CLOSERS.get(region.opener)
        if closer is None:
            return self._accept(out)
        rest = self._buffer.lstrip()
        if rest.startswith(closer):
            self._take(len(self._buffer) - len(rest) + len(closer))
            return self._accept(out)
        if rest[:1] in ("{", "["):  # another call in the same block
            self._take(len(self._buffer) - len(rest))
            region.phase = "value"
            return True
        if closer.startswith(rest):  # the closer may be on its way (or was cut off by the end: the calls are whole)
            if not final:
                return False
            self._take(len(self._buffer))
            return self._accept(out)
        return self._reject(out)

    def _read_value(self, region: _Region, out: ParserOutput, final: bool) -> bool:
        if region.scanner is None:
            self._take(len(self._buffer) - len(self._buffer.lstrip()))
            if not self._buffer:
                return self._reject(out) if final else False
            if self._buffer[0] not in "{[":
                return self._reject(out)
            region.scanner, region.value = JsonValueEnd(), ""
        skipped, taken = region.scanner.feed(self._buffer)
        piece = self._buffer[: skipped + taken]
        region.value += piece
        self._take(len(piece))
        if not could_be_call(region.value, self._names):
            return self._reject(out)
        if not region.scanner.done:
            return self._reject(out) if final else False
        calls = calls_in_value(region.value, self._names)
        if calls is None:
            return self._reject(out)
        region.calls += calls
        region.scanner, region.phase = None, "after"
        return True

    def _take(self, length: int) -> None:
        assert self._region is not None
        self._region.held += self._buffer[:length]
        self._buffer = self._buffer[length:]

    def _accept(self, out: ParserOutput) -> bool:
        assert self._region is not None
        for name, arguments in self._region.calls:
            call = ParsedToolCall(new_call_id(), name, arguments)
            self.calls.append(call)
            out.deltas.append(ToolCallDelta(len(self.calls) - 1, call.id, name, arguments))
        self._region, self._mode, self._bare_ok = None, "text", True
        return True

    def _reject(self, out: ParserOutput) -> bool:
        """Not a call: its text is content as it was; a rejected fence is a code block up to its closing fence."""
        assert self._region is not None
        region, self._region = self._region, None
        self._content(out, region.held)
        self._mode = "code" if region.opener == FENCE else "text"
        return True


def _partial_opener_length(text: str) -> int:
    """How much of the end of `text` may be the start of an opener, held back until the next piece says."""
    for length in range(min(len(text), max(map(len, OPENERS)) - 1), 0, -1):
        if any(opener.startswith(text[-length:]) for opener in OPENERS):
            return length
    return 0
