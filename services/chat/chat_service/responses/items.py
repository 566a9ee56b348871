"""The Responses API's objects as plain dicts, field by field as the `openai` package's `types/responses` parse them:
the response itself, its output items and its usage.
"""

from __future__ import annotations

import uuid
from typing import Any

from ortserve_common.protocol.chat import AssistantMessage
from ortserve_common.protocol.common import now
from ortserve_common.protocol.responses import ResponsesRequest

from chat_service.serving.generation import GenerationStats

_ITEM_PREFIX = {"message": "msg", "function_call": "fc", "function_call_output": "fco", "compaction": "cmp"}


def new_item_id(kind: str) -> str:
    return f"{_ITEM_PREFIX[kind]}_{uuid.uuid4().hex}"


def with_ids(items: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [{"id": new_item_id(item["type"]), **item} for item in items]


def output_text_part(text: str) -> dict[str, Any]:
    return {"type": "output_text", "text": text, "annotations": [], "logprobs": []}


def message_item(item_id: str, text: str, status: str = "completed") -> dict[str, Any]:
    content = [output_text_part(text)] if status != "in_progress" else []
    return {"id": item_id, "type": "message", "role": "assistant", "status": status, "content": content}


def function_call_item(
    item_id: str, call_id: str, name: str, arguments: str, status: str = "completed"
) -> dict[str, Any]:
    return {
        "id": item_id,
        "type": "function_call",
        "call_id": call_id,
        "name": name,
        "arguments": arguments,
        "status": status,
    }


def output_items(reply: AssistantMessage, incomplete: bool, parallel_tool_calls: bool) -> list[dict[str, Any]]:
    """The reply as output items: its text as a message, then one function_call per call (the first only when
    parallel_tool_calls is false)."""
    status = "incomplete" if incomplete else "completed"
    calls = reply.tool_calls or []
    if not parallel_tool_calls:
        calls = calls[:1]
    items = [] if reply.content is None else [message_item(new_item_id("message"), reply.content, status)]
    for call in calls:
        items.append(
            function_call_item(new_item_id("function_call"), call.id, call.function.name, call.function.arguments)
        )
    return items


def usage(stats: GenerationStats) -> dict[str, Any]:
    return {
        "input_tokens": stats.prompt_tokens,
        "input_tokens_details": {"cached_tokens": stats.cached_tokens, "cache_write_tokens": 0},
        "output_tokens": stats.completion_tokens,
        "output_tokens_details": {"reasoning_tokens": 0},
        "total_tokens": stats.prompt_tokens + stats.completion_tokens,
    }


def function_tools(request: ResponsesRequest) -> list[dict[str, Any]]:
    return [
        {
            "type": "function",
            "name": tool["name"],
            "description": tool.get("description"),
            "parameters": tool.get("parameters"),
            "strict": tool.get("strict"),
        }
        for tool in request.tools or []
    ]


def response_object(
    request: ResponsesRequest,
    response_id: str,
    created_at: int,
    status: str,
    output: list[dict[str, Any]],
    stats: GenerationStats | None = None,
    error: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """The response as the client gets it (and as it is stored); `stats` is None while it is still in progress."""
    text_format: dict[str, Any] = {"type": "text"}
    if request.text is not None and request.text.format is not None:
        text_format = request.text.format.model_dump(by_alias=True, exclude_none=True)
    conversation_id = request.conversation_id()
    return {
        "id": response_id,
        "object": "response",
        "created_at": created_at,
        "completed_at": now() if status == "completed" else None,
        "status": status,
        "background": False,
        "error": error,
        "incomplete_details": {"reason": "max_output_tokens"} if status == "incomplete" else None,
        "instructions": request.instructions,
        "max_output_tokens": request.max_output_tokens,
        "model": request.model,
        "output": output,
        "parallel_tool_calls": request.parallel_tool_calls is not False,
        "previous_response_id": request.previous_response_id,
        "conversation": {"id": conversation_id} if conversation_id else None,
        "reasoning": {"effort": None, "summary": None},
        "store": request.store is not False,
        "temperature": 1.0 if request.temperature is None else request.temperature,
        "text": {"format": text_format},
        "tool_choice": request.tool_choice or "auto",
        "tools": function_tools(request),
        "top_p": 1.0 if request.top_p is None else request.top_p,
        "presence_penalty": request.presence_penalty or 0.0,
        "frequency_penalty": request.frequency_penalty or 0.0,
        "top_logprobs": request.top_logprobs or 0,
        "max_tool_calls": request.max_tool_calls,
        "truncation": request.truncation or "disabled",
        "usage": usage(stats) if stats is not None else None,
        "user": request.user,
        "metadata": request.metadata or {},
        "service_tier": "default",  # the only tier here (a request's "auto" runs on it)
        "safety_identifier": request.safety_identifier,
        "prompt_cache_key": request.prompt_cache_key,
    }
