"""Chat messages (with tool calls and tool results) → the prompt text, through the model's chat template."""

from __future__ import annotations

from typing import Any

from ortserve_common.errors import invalid_request
from ortserve_common.protocol.chat import ChatMessage

from chat_service.engine.protocol import Tokenizer
from chat_service.tools.request import (
    ToolPlan,
    arguments_value,
    assistant_text_with_calls,
    tool_json,
    tool_response_text,
    tool_system_prompt,
)


def check_messages(messages: list[ChatMessage]) -> None:
    for i, message in enumerate(messages):
        if message.content is None and message.role != "assistant":
            raise invalid_request(f"messages[{i}] has no content.", f"messages[{i}].content")
        if message.tool_calls and message.role != "assistant":
            raise invalid_request("Only assistant messages carry tool_calls.", f"messages[{i}].tool_calls")
        if message.role == "tool" and not message.tool_call_id:
            param = f"messages[{i}].tool_call_id"
            raise invalid_request(f"Missing required parameter: '{param}'.", param, "missing_required_parameter")


def render_chat_prompt(
    tokenizer: Tokenizer, messages: list[ChatMessage], plan: ToolPlan, add_generation_prompt: bool = True
) -> str:
    check_messages(messages)
    if tokenizer.template_renders_tools:
        tools = [tool_json(f) for f in plan.functions] if plan.mode != "none" else None
        return tokenizer.apply_chat_template([_native(m) for m in messages], tools, add_generation_prompt)
    rendered = _with_tool_conventions(messages)
    if plan.mode != "none":
        tool_prompt = tool_system_prompt(plan.functions)
        if rendered and rendered[0]["role"] == "system":
            rendered[0]["content"] = f"{rendered[0]['content']}\n\n{tool_prompt}".lstrip()
        else:
            rendered.insert(0, {"role": "system", "content": tool_prompt})
    return tokenizer.apply_chat_template(rendered, add_generation_prompt=add_generation_prompt)


def _role(message: ChatMessage) -> str:
    # Templates know "system"; OpenAI's "developer" role is the same thing for models like these.
    return "system" if message.role == "developer" else message.role


def _with_tool_conventions(messages: list[ChatMessage]) -> list[dict[str, Any]]:
    """For templates that know nothing of tools: calls as `<tool_call>` text, results as user turns."""
    rendered: list[dict[str, Any]] = []
    for message in messages:
        if message.role == "tool":
            text = tool_response_text(message)
            if rendered and rendered[-1].get("tool_results"):
                rendered[-1]["content"] += "\n" + text  # consecutive results share one turn, as Qwen's template does
            else:
                rendered.append({"role": "user", "content": text, "tool_results": True})
        elif message.role == "assistant" and message.tool_calls:
            rendered.append({"role": "assistant", "content": assistant_text_with_calls(message)})
        else:
            rendered.append({"role": _role(message), "content": message.text()})
    return [{"role": m["role"], "content": m["content"]} for m in rendered]


def _native(message: ChatMessage) -> dict[str, Any]:
    """For templates that render tools: Hugging Face's message layout (arguments as objects)."""
    out: dict[str, Any] = {"role": _role(message), "content": message.text()}
    if message.tool_calls:
        out["tool_calls"] = [
            {
                "id": call.id,
                "type": "function",
                "function": {"name": call.function.name, "arguments": arguments_value(call.function.arguments)},
            }
            for call in message.tool_calls
        ]
    if message.tool_call_id:
        out["tool_call_id"] = message.tool_call_id
    return out


class PromptEncoder:
    """Messages → prompt ids through the chat template; the same message objects in the same order are rendered and
    tokenized once (fitting a conversation into the context counts the same candidate prompts again and again)."""

    def __init__(self, tokenizer: Tokenizer, plan: ToolPlan) -> None:
        self._tokenizer = tokenizer
        self._plan = plan
        self._encoded: dict[tuple[int, ...], list[int]] = {}

    def __call__(self, messages: list[ChatMessage]) -> list[int]:
        key = tuple(map(id, messages))
        if key not in self._encoded:
            self._encoded[key] = self._tokenizer.encode(render_chat_prompt(self._tokenizer, messages, self._plan))
        return self._encoded[key]

    def count(self, messages: list[ChatMessage]) -> int:
        return len(self(messages))
