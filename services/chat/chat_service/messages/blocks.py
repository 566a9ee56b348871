"""Anthropic's Messages objects as plain dicts, field by field as the `anthropic` package's `types` parse them: the
message, its content blocks, stop reason and usage, and the error body. No HTTP here.
"""

from __future__ import annotations

import json
import uuid
from typing import Any

from ortserve_common.errors import OpenAIError
from ortserve_common.protocol.chat import AssistantMessage, ChatFinishReason

from chat_service.serving.generation import GenerationStats

# Anthropic's error types by HTTP status; 503 (a queue wait that timed out, a model unloaded mid-request) is what
# Anthropic calls overloaded, and its SDK retries it as it does 529.
_ERROR_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "not_found_error",
    413: "request_too_large",
    429: "rate_limit_error",
    503: "overloaded_error",
    529: "overloaded_error",
}


def new_message_id() -> str:
    return f"msg_{uuid.uuid4().hex}"


def tool_use_id(call_id: str) -> str:
    """The chat parser's call id in Anthropic's form; the client sends it back as a tool_result's tool_use_id."""
    return f"toolu_{call_id.removeprefix('call_')}"


def tool_input(arguments: str) -> dict[str, Any]:
    """A call's arguments as the object Anthropic's `input` is; a call cut short by max_tokens has no whole JSON, and
    its stop_reason (max_tokens) says so."""
    try:
        value = json.loads(arguments)
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {}


def content_blocks(reply: AssistantMessage) -> list[dict[str, Any]]:
    """The reply's text as one text block (none when empty), then one tool_use block per call."""
    blocks: list[dict[str, Any]] = []
    if reply.content:
        blocks.append({"type": "text", "text": reply.content})
    for call in reply.tool_calls or []:
        block = {"type": "tool_use", "id": tool_use_id(call.id), "name": call.function.name}
        blocks.append({**block, "input": tool_input(call.function.arguments)})
    return blocks


def stop_reason(finish: ChatFinishReason | None, stats: GenerationStats) -> tuple[str, str | None]:
    """(stop_reason, stop_sequence): chat's finish reason, told apart where Anthropic distinguishes more."""
    if finish == "length":
        return "max_tokens", None
    if finish == "tool_calls":
        return "tool_use", None
    if stats.stop_sequence is not None:
        return "stop_sequence", stats.stop_sequence
    return "end_turn", None


def usage(stats: GenerationStats) -> dict[str, int]:
    """Anthropic counts cached prompt tokens apart: input_tokens + cache_read_input_tokens is the whole prompt."""
    return {
        "input_tokens": stats.prompt_tokens - stats.cached_tokens,
        "output_tokens": stats.completion_tokens,
        "cache_creation_input_tokens": 0,
        "cache_read_input_tokens": stats.cached_tokens,
    }


def message_object(
    message_id: str,
    model: str,
    content: list[dict[str, Any]],
    reason: tuple[str | None, str | None],
    counts: dict[str, int],
) -> dict[str, Any]:
    return {
        "id": message_id,
        "type": "message",
        "role": "assistant",
        "content": content,
        "model": model,
        "stop_reason": reason[0],
        "stop_sequence": reason[1],
        "usage": counts,
    }


def error_type(status: int) -> str:
    return _ERROR_TYPES.get(status, "invalid_request_error" if status < 500 else "api_error")


def error_body(error: OpenAIError) -> dict[str, Any]:
    """Anthropic's error object for one of ours; OpenAI's `param` has no field there, so it leads the message."""
    message = error.message
    if error.param and error.param not in message:
        message = f"{error.param}: {message}"
    return {"type": "error", "error": {"type": error_type(error.status), "message": message}}
