"""A Responses request in the chat pipeline's terms: what it cannot have (400s naming the field), its input as stored
items, its tools and tool_choice as chat's, and its text.format as guidance. No HTTP here."""

from __future__ import annotations

import json
from typing import Any, Literal

from ortserve_common.errors import OpenAIError, invalid_request
from ortserve_common.protocol.chat import FunctionDefinition, NamedToolChoice, ToolChoiceFunction, ToolDefinition
from ortserve_common.protocol.conversations import InputMessageItem
from ortserve_common.protocol.responses import InputCompactionItem, ResponseInputItem, ResponsesRequest
from pydantic import ValidationError

from chat_service.conversations.items import item_body
from chat_service.engine.types import GuidanceSpec
from chat_service.responses.items import with_ids
from chat_service.serving.guided import ANY_JSON_OBJECT
from chat_service.tools.request import ToolPlan

_SERVICE_TIERS = (None, "auto", "default")


def _unsupported(message: str, param: str) -> OpenAIError:
    return invalid_request(message, param, "unsupported_parameter")


def refuse_unsupported(request: ResponsesRequest) -> None:
    """What OpenAI offers and this server cannot do is a 400 naming the field, never silently ignored."""
    if request.background:
        raise _unsupported("Background mode is not supported on this server; leave background unset.", "background")
    if request.reasoning is not None and any(v is not None for v in request.reasoning.values()):
        raise _unsupported("Reasoning options are not supported: the models served here do not reason.", "reasoning")
    if request.include:
        raise _unsupported(f"include is not supported on this server (got {request.include}).", "include")
    if request.prompt is not None:
        raise _unsupported("Stored OpenAI prompts are not supported; send the input itself.", "prompt")
    if request.top_logprobs:
        raise _unsupported("Logprobs are not supported on /v1/responses; use /v1/chat/completions.", "top_logprobs")
    if request.max_tool_calls is not None:
        raise _unsupported("max_tool_calls is not supported on this server.", "max_tool_calls")
    if request.service_tier not in _SERVICE_TIERS:
        raise _unsupported(f"service_tier '{request.service_tier}' is not offered here; use 'auto'.", "service_tier")
    if request.text is not None and request.text.verbosity not in (None, "medium"):
        raise _unsupported("text.verbosity is not supported on this server.", "text.verbosity")
    if request.previous_response_id is not None and request.conversation is not None:
        raise invalid_request(
            "Mutually exclusive parameters: give either 'previous_response_id' or 'conversation', not both.",
            "conversation",
        )
    if isinstance(request.input, list) and not request.input:
        raise invalid_request("input must hold at least one item.", "input")


def input_items(given: str | list[ResponseInputItem] | None) -> list[dict[str, Any]]:
    """A request's input as stored items (with ids), as /input_items lists them. A compaction item stays one item
    here (with its encrypted_content); the serving layer puts the turns it stands for in its place."""
    items = given or []
    if isinstance(items, str):
        items = [InputMessageItem(role="user", content=items)]
    bodies = []
    for item in items:
        if isinstance(item, InputCompactionItem):
            bodies.append({"type": "compaction", "encrypted_content": item.encrypted_content})
            continue
        body = item_body(item)
        if isinstance(item, InputMessageItem) and item.phase is not None:
            body["phase"] = item.phase
        bodies.append(body)
    return with_ids(bodies)


def check_tool_outputs(context: list[dict[str, Any]], inputs: list[dict[str, Any]]) -> None:
    """A tool output answers a call made earlier in the chain or in this input, as OpenAI requires: an output
    for no call is a 400, not a tool message the model sees out of nowhere."""
    call_ids = {item["call_id"] for item in [*context, *inputs] if item.get("type") == "function_call"}
    for i, item in enumerate(inputs):
        if item.get("type") == "function_call_output" and item["call_id"] not in call_ids:
            raise invalid_request(
                f"No tool call found for function call output with call_id '{item['call_id']}'.",
                f"input[{i}].call_id",
                "tool_call_not_found",
            )


def chat_tools(request: ResponsesRequest) -> list[ToolDefinition] | None:
    """Responses' flat function tools ({type, name, parameters}) as chat's ({type, function: {...}})."""
    if not request.tools:
        return None
    tools = []
    for i, tool in enumerate(request.tools):
        kind = tool.get("type")
        if kind != "function":
            message = f"Tool type '{kind}' is not supported here; only function tools are."
            raise _unsupported(message, f"tools[{i}].type")
        fields = {key: tool[key] for key in ("name", "description", "parameters", "strict") if key in tool}
        try:
            function = FunctionDefinition.model_validate(fields)
        except ValidationError as exc:
            error = exc.errors()[0]
            where = ".".join(str(part) for part in error["loc"])
            raise invalid_request(f"Invalid tools[{i}].{where}: {error['msg']}", f"tools[{i}].{where}") from None
        tools.append(ToolDefinition(type="function", function=function))
    return tools


def chat_tool_choice(request: ResponsesRequest) -> Literal["none", "auto", "required"] | NamedToolChoice | None:
    choice = request.tool_choice
    if choice is None or isinstance(choice, str):
        return choice
    if choice.get("type") == "function" and isinstance(choice.get("name"), str):
        return NamedToolChoice(type="function", function=ToolChoiceFunction(name=choice["name"]))
    raise _unsupported(
        "tool_choice must be 'none', 'auto', 'required' or {'type': 'function', 'name': ...}.", "tool_choice"
    )


def guidance_candidates(request: ResponsesRequest, plan: ToolPlan) -> list[tuple[GuidanceSpec, str]]:
    """A forced tool call decides the whole reply; otherwise text.format, if it asks for JSON."""
    if plan.guidance is not None:
        return [(plan.guidance, "tool_choice")]
    text_format = request.text.format if request.text is not None else None
    if text_format is None or text_format.type == "text":
        return []
    if text_format.type == "json_object":
        return [(GuidanceSpec("json_schema", json.dumps(ANY_JSON_OBJECT)), "text.format")]
    if text_format.json_schema is None:
        raise invalid_request("Missing required parameter: 'text.format.schema'.", "text.format.schema")
    if text_format.name is None:
        raise invalid_request("Missing required parameter: 'text.format.name'.", "text.format.name")
    return [(GuidanceSpec("json_schema", json.dumps(text_format.json_schema)), "text.format.schema")]
