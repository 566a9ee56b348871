"""Tools on the request side: which choice applies, the tool prompt, and the grammar that forces a call.

SmolLM2's and Phi-3's chat templates ignore `tools`, so for such templates the server writes the tools into the
system prompt itself (Qwen/Hermes style: a `<tools>` list and the `<tool_call>` reply convention that
parser.py reads), renders past calls in the same convention and tool results as `<tool_response>` user turns.
A template that does render tools gets them, and the messages, as they are.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any, Literal

from ortserve_common.errors import invalid_request
from ortserve_common.protocol.chat import ChatMessage, FunctionDefinition, NamedToolChoice, ToolDefinition

from chat_service.engine.guidance import GuidanceError, check_guidance
from chat_service.engine.types import GuidanceSpec
from chat_service.engine.vocabulary import Vocabulary
from chat_service.tools.parser import TOOL_CALL_CLOSE, TOOL_CALL_OPEN

EMPTY_PARAMETERS: dict[str, Any] = {"type": "object", "properties": {}}

TOOL_PROMPT = """# Tools

You may call one or more functions to assist with the user query.

You are provided with function signatures within <tools></tools> XML tags:
<tools>
{tools}
</tools>

For each function call, return a json object with function name and arguments within <tool_call></tool_call> XML tags:
<tool_call>
{{"name": <function-name>, "arguments": <args-json-object>}}
</tool_call>"""


@dataclass(frozen=True)
class ToolPlan:
    """`forced`: the reply must be a call (tool_choice required or a named function), enforced by `guidance`."""

    mode: Literal["none", "auto", "forced"]
    functions: list[FunctionDefinition] = field(default_factory=list)
    guidance: GuidanceSpec | None = None
    parallel: bool = True  # parallel_tool_calls: false keeps the reply's first call only, as OpenAI's API does

    @property
    def names(self) -> set[str]:
        return {f.name for f in self.functions}

    @property
    def parses_calls(self) -> bool:
        return self.mode != "none"


def plan_tools(
    tools: list[ToolDefinition] | None,
    tool_choice: Literal["none", "auto", "required"] | NamedToolChoice | None,
    vocabulary: Vocabulary | None,
    parallel_tool_calls: bool | None = None,
) -> ToolPlan:
    """Validate tools and tool_choice (400s naming the field) and decide how the reply is generated and read."""
    if not tools:
        if tool_choice not in (None, "none"):
            raise invalid_request("tool_choice is only allowed when tools are given.", "tool_choice")
        if parallel_tool_calls is not None:
            raise invalid_request("parallel_tool_calls is only allowed when tools are given.", "parallel_tool_calls")
        return ToolPlan("none")
    parallel = parallel_tool_calls is not False
    functions = [tool.function for tool in tools]
    seen: set[str] = set()
    for i, function in enumerate(functions):
        if function.name in seen:
            raise invalid_request(f"Two tools are named '{function.name}'.", f"tools[{i}].function.name")
        seen.add(function.name)
    if tool_choice in (None, "auto", "none"):
        for i, function in enumerate(functions):
            _check_parameters(function, i, vocabulary)
        return ToolPlan("none" if tool_choice == "none" else "auto", functions, parallel=parallel)
    if tool_choice == "required":
        forced = functions
    else:
        assert isinstance(tool_choice, NamedToolChoice)
        forced = [f for f in functions if f.name == tool_choice.function.name]
        if not forced:
            raise invalid_request(
                f"tool_choice names '{tool_choice.function.name}', which is not among the tools.", "tool_choice"
            )
        for i, function in enumerate(functions):
            if function not in forced:
                _check_parameters(function, i, vocabulary)
    # The forced call's grammar holds the parameters' schemas: it is compiled (once) when the request's guidance
    # is resolved, and only if that fails are the schemas checked one by one, to name the one at fault.
    forced_call = GuidanceSpec("json_schema", json.dumps(forced_call_schema(forced)))
    return ToolPlan("forced", functions, forced_call, parallel=parallel)


def blame_parameters(functions: list[FunctionDefinition], vocabulary: Vocabulary | None) -> None:
    """Raise the 400 that names the tool whose parameters are not a usable schema, if one is."""
    for i, function in enumerate(functions):
        _check_parameters(function, i, vocabulary)


def forced_call_schema(functions: list[FunctionDefinition]) -> dict[str, Any]:
    """`{"name": <one of them>, "arguments": <its parameters>}`, written name first so it streams as it comes."""
    variants = [
        {
            "type": "object",
            "properties": {"name": {"const": f.name}, "arguments": f.parameters or EMPTY_PARAMETERS},
            "required": ["name", "arguments"],
            "additionalProperties": False,
        }
        for f in functions
    ]
    return variants[0] if len(variants) == 1 else {"anyOf": variants}


def _check_parameters(function: FunctionDefinition, index: int, vocabulary: Vocabulary | None) -> None:
    if function.parameters is None:
        return
    try:
        check_guidance(GuidanceSpec("json_schema", json.dumps(function.parameters)), vocabulary)
    except GuidanceError as exc:
        raise invalid_request(
            f"The parameters of tool '{function.name}' are not a usable JSON schema: {exc}",
            f"tools[{index}].function.parameters",
        ) from exc


# Rendering the conversation ---------------------------------------------------------------------------------------
def tool_system_prompt(functions: list[FunctionDefinition]) -> str:
    lines = [json.dumps(tool_json(f), ensure_ascii=False) for f in functions]
    return TOOL_PROMPT.format(tools="\n".join(lines))


def tool_json(function: FunctionDefinition) -> dict[str, Any]:
    body: dict[str, Any] = {"name": function.name}
    if function.description:
        body["description"] = function.description
    body["parameters"] = function.parameters or EMPTY_PARAMETERS
    return {"type": "function", "function": body}


def arguments_value(arguments: str | dict[str, Any]) -> Any:
    """A past call's arguments as JSON (OpenAI sends a string); text that is not JSON stays a string."""
    if isinstance(arguments, dict):
        return arguments
    try:
        return json.loads(arguments)
    except ValueError:
        return arguments


def assistant_text_with_calls(message: ChatMessage) -> str:
    """A past assistant turn that called tools, written the way the model is asked to call them."""
    parts = [message.text()] if message.text() else []
    for call in message.tool_calls or []:
        body = {"name": call.function.name, "arguments": arguments_value(call.function.arguments)}
        parts.append(f"{TOOL_CALL_OPEN}\n{json.dumps(body, ensure_ascii=False)}\n{TOOL_CALL_CLOSE}")
    return "\n".join(parts)


def tool_response_text(message: ChatMessage) -> str:
    return f"<tool_response>\n{message.text()}\n</tool_response>"
