"""Conversation items (OpenAI's Responses layout) ↔ chat messages.

A chat turn with tool calls is stored as OpenAI stores it: the assistant's text as a message item, then one
`function_call` item per call; each tool result is a `function_call_output` item. Read back, calls that follow an
assistant message (or each other) join that message's `tool_calls` again.
"""

from __future__ import annotations

import json
from typing import Any

from ortserve_common.protocol.chat import AssistantMessage, ChatMessage, FunctionCall, ToolCall
from ortserve_common.protocol.conversations import (
    InputFunctionCallItem,
    InputFunctionCallOutputItem,
    InputItem,
    InputMessageItem,
    TextPart,
)


def _message(role: str, text: str) -> dict[str, Any]:
    part: dict[str, Any] = {"type": "output_text", "text": text, "annotations": []}
    if role != "assistant":
        part = {"type": "input_text", "text": text}
    return {"type": "message", "role": role, "status": "completed", "content": [part]}


def _call(call_id: str, name: str, arguments: str) -> dict[str, Any]:
    return {"type": "function_call", "call_id": call_id, "name": name, "arguments": arguments, "status": "completed"}


def _output(call_id: str, output: str) -> dict[str, Any]:
    return {"type": "function_call_output", "call_id": call_id, "output": output}


def item_body(item: InputItem) -> dict[str, Any]:
    """A client's item as it is stored (the store adds the id). A message with images keeps its parts in order:
    the responses pipeline puts each image's OCR text in its place before storing it."""
    if isinstance(item, InputMessageItem):
        if item.has_images() and isinstance(item.content, list):
            body = _message(item.role, "")
            body["content"] = [
                {"type": "input_text", "text": part.text} if isinstance(part, TextPart) else part.model_dump()
                for part in item.content
            ]
            return body
        return _message(item.role, item.text())
    if isinstance(item, InputFunctionCallItem):
        return _call(item.call_id, item.name, item.arguments)
    assert isinstance(item, InputFunctionCallOutputItem)
    return _output(item.call_id, item.output)


def _arguments_text(arguments: str | dict[str, Any]) -> str:
    return arguments if isinstance(arguments, str) else json.dumps(arguments)


def items_from_messages(messages: list[ChatMessage]) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = []
    for message in messages:
        if message.role == "tool":
            items.append(_output(message.tool_call_id or "", message.text()))
            continue
        if message.content is not None or not message.tool_calls:
            items.append(_message(message.role, message.text()))
        for call in message.tool_calls or []:
            items.append(_call(call.id, call.function.name, _arguments_text(call.function.arguments)))
    return items


def items_from_reply(reply: AssistantMessage) -> list[dict[str, Any]]:
    items = [] if reply.content is None else [_message("assistant", reply.content)]
    for call in reply.tool_calls or []:
        items.append(_call(call.id, call.function.name, call.function.arguments))
    return items


def messages_from_items(items: list[dict[str, Any]]) -> list[ChatMessage]:
    messages: list[ChatMessage] = []
    for item in items:
        kind = item.get("type")
        if kind == "message":
            text = "\n".join(part.get("text", "") for part in item.get("content", []))
            messages.append(ChatMessage(role=item["role"], content=text))
        elif kind == "function_call":
            call = ToolCall(id=item["call_id"], function=FunctionCall(name=item["name"], arguments=item["arguments"]))
            previous = messages[-1] if messages else None
            if previous is not None and previous.role == "assistant":
                previous.tool_calls = [*(previous.tool_calls or []), call]
            else:
                messages.append(ChatMessage(role="assistant", content=None, tool_calls=[call]))
        elif kind == "function_call_output":
            messages.append(ChatMessage(role="tool", content=item["output"], tool_call_id=item["call_id"]))
    return messages
