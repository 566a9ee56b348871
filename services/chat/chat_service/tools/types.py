"""What the tool-call readers give back: content, the calls found, and OpenAI-style deltas for streams."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from typing import Protocol


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
    arguments: str = ""  # JSON text of an object


@dataclass
class ParserOutput:
    content: str = ""
    deltas: list[ToolCallDelta] = field(default_factory=list)


class ToolCallParser(Protocol):
    """Feed the reply's text as it comes, then `finish` once; `calls` holds every call found so far."""

    calls: list[ParsedToolCall]

    def feed(self, text: str) -> ParserOutput: ...

    def finish(self) -> ParserOutput: ...
