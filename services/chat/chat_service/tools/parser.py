"""The model's reply → OpenAI tool calls, incrementally, so streams carry OpenAI's tool-call deltas.

Two readers share one interface (types.ToolCallParser):
- `ForcedCallParser` (forced.py) when guided decoding makes the reply a call (`tool_choice` required or a
  named function): the arguments stream as they are written.
- `AutoCallParser` (formats.py) for `tool_choice: auto`, where the model decides and writes its calls in
  whichever family's format it learned; see there which formats are recognised, and where in a reply.
"""

from __future__ import annotations

from chat_service.tools.forced import ForcedCallParser
from chat_service.tools.formats import TOOL_CALL_CLOSE, TOOL_CALL_OPEN, AutoCallParser
from chat_service.tools.types import ParsedToolCall, ParserOutput, ToolCallDelta, ToolCallParser

__all__ = [
    "TOOL_CALL_CLOSE",
    "TOOL_CALL_OPEN",
    "ParsedToolCall",
    "ParserOutput",
    "ToolCallDelta",
    "ToolCallParser",
    "tool_call_parser",
]


def tool_call_parser(tool_names: set[str], forced: bool) -> ToolCallParser:
    return ForcedCallParser(tool_names) if forced else AutoCallParser(tool_names)
