"""An Anthropic Messages request in the chat pipeline's terms: what it cannot have (400s naming the field), its system
prompt and content blocks as chat messages, its tools and tool_choice as chat's. No HTTP here.
"""

from __future__ import annotations

import json
from typing import Literal

from ortserve_common.errors import OpenAIError, invalid_request
from ortserve_common.protocol.chat import (
    ChatCompletionRequest,
    ChatMessage,
    ContentPart,
    FunctionCall,
    FunctionDefinition,
    ImageUrlContentPart,
    NamedToolChoice,
    TextContentPart,
    ToolCall,
    ToolChoiceFunction,
    ToolDefinition,
)
from ortserve_common.protocol.messages import (
    CountTokensRequest,
    ImageBlock,
    InputMessage,
    MessagesRequest,
    TextBlock,
    ToolResultBlock,
    ToolUseBlock,
)
from pydantic import ValidationError

from chat_service.vision.images import MEDIA_TYPES

AnyRequest = MessagesRequest | CountTokensRequest
_CLIENT_TOOL_TYPES = (None, "custom")
_SERVICE_TIERS = (None, "auto", "standard_only")


def _unsupported(message: str, param: str) -> OpenAIError:
    return invalid_request(message, param, "unsupported_parameter")


def refuse_unsupported(request: AnyRequest) -> None:
    """What Anthropic offers and this server cannot do is a 400 naming the field, never silently ignored."""
    if request.thinking is not None and request.thinking.type != "disabled":
        raise _unsupported("Extended thinking is not supported: the models served here do not reason.", "thinking")
    if request.mcp_servers:
        raise _unsupported("MCP servers are not supported on this server; call the tools yourself.", "mcp_servers")
    if request.container is not None:
        raise _unsupported("Code-execution containers are not supported on this server.", "container")
    if request.output_format is not None or (request.output_config or {}).get("format") is not None:
        message = "Structured outputs are not supported on /v1/messages yet; use response_format on chat completions."
        param = "output_format" if request.output_format is not None else "output_config.format"
        raise _unsupported(message, param)
    if isinstance(request, MessagesRequest) and request.service_tier not in _SERVICE_TIERS:
        raise _unsupported(f"service_tier '{request.service_tier}' is not offered here; use 'auto'.", "service_tier")
    if request.messages[-1].role == "assistant":
        # Anthropic continues a final assistant turn ("prefill"); the chat templates here can only open a new one.
        message = "A final assistant message (prefill) is not supported yet; end with a user message."
        raise _unsupported(message, f"messages[{len(request.messages) - 1}]")


def chat_request(request: AnyRequest) -> ChatCompletionRequest:
    """The chat request the pipeline runs: messages, tools and, for /v1/messages, the sampling fields."""
    tools = chat_tools(request)
    choice = request.tool_choice
    parallel = False if tools and choice is not None and choice.disable_parallel_tool_use else None
    chat = ChatCompletionRequest(
        model=request.model,
        messages=chat_messages(request),
        tools=tools,
        tool_choice=chat_tool_choice(request),
        parallel_tool_calls=parallel,
    )
    if not isinstance(request, MessagesRequest):
        return chat
    update = {
        "max_tokens": request.max_tokens,
        "temperature": request.temperature,
        "top_p": request.top_p,
        "top_k": request.top_k,
        "user": request.metadata.user_id if request.metadata is not None else None,
        "stream": bool(request.stream),
        # Set without chat's validation on purpose: chat takes at most 4 stop strings (OpenAI's limit), Anthropic
        # sets none, and the stop matcher takes any number.
        "stop": [stop for stop in request.stop_sequences or [] if stop] or None,
    }
    return chat.model_copy(update=update)


def system_text(system: str | list[TextBlock] | None) -> str | None:
    if system is None or isinstance(system, str):
        return system or None
    return "\n".join(block.text for block in system) or None


def chat_messages(request: AnyRequest) -> list[ChatMessage]:
    system = system_text(request.system)
    messages = [ChatMessage(role="system", content=system)] if system else []
    for i, message in enumerate(request.messages):
        messages += _chat_turn(message, f"messages[{i}]")
    return messages


def _no_documents(param: str) -> OpenAIError:
    return _unsupported(
        "Documents, and images anywhere but among a user message's own blocks (in a tool result, in an assistant "
        "turn), are not supported on this server: send text, and images as image blocks of a user message (their "
        "text is read by OCR).",
        f"{param}.type",
    )


def _image_part(block: ImageBlock, where: str) -> ImageUrlContentPart:
    """An image block as chat's image_url part (a data URL), which the chat pipeline reads by OCR; errors name the
    block's source."""
    source, param = block.source or {}, f"{where}.source"
    kind = source.get("type")
    if kind == "base64":
        media_type, data = source.get("media_type"), source.get("data")
        if not isinstance(data, str) or not data:
            raise invalid_request("A base64 image source needs its data.", f"{param}.data")
        if media_type not in MEDIA_TYPES.values():
            message = f"Unsupported image media_type {media_type!r}: send image/png, image/jpeg or image/webp."
            raise invalid_request(message, f"{param}.media_type", "unsupported_image_type")
        return ImageUrlContentPart.of(f"data:{media_type};base64,{data}", f"{param}.data")
    if kind == "url" and isinstance(source.get("url"), str):
        return ImageUrlContentPart.of(source["url"], f"{param}.url")
    message = "An image source must be {'type': 'base64', 'media_type', 'data'} (or {'type': 'url', 'url'})."
    raise invalid_request(message, f"{param}.type")


def _chat_turn(message: InputMessage, where: str) -> list[ChatMessage]:
    """One Anthropic message as chat messages: a user turn's tool_result blocks become `tool` messages (before its
    text, where chat templates expect them), an assistant turn's tool_use blocks become its tool_calls."""
    if isinstance(message.content, str):
        return [ChatMessage(role=message.role, content=message.content)]
    texts: list[str] = []
    parts: list[ContentPart] = []  # texts and images, in order (images are read by OCR further on)
    calls: list[ToolCall] = []
    results: list[ChatMessage] = []
    for j, block in enumerate(message.content):
        at = f"{where}.content[{j}]"
        if isinstance(block, TextBlock):
            texts.append(block.text)
            parts.append(TextContentPart(type="text", text=block.text))
        elif isinstance(block, ImageBlock) and message.role == "user":
            parts.append(_image_part(block, at))
        elif isinstance(block, ToolUseBlock):
            if message.role != "assistant":
                raise invalid_request("tool_use blocks belong in assistant messages.", at)
            arguments = json.dumps(block.input, ensure_ascii=False)
            calls.append(ToolCall(id=block.id, function=FunctionCall(name=block.name, arguments=arguments)))
        elif isinstance(block, ToolResultBlock):
            if message.role != "user":
                raise invalid_request("tool_result blocks belong in user messages.", at)
            results.append(ChatMessage(role="tool", tool_call_id=block.tool_use_id, content=_result_text(block, at)))
        elif block.type in ("image", "document"):
            raise _no_documents(at)
        # thinking blocks: a past reply's reasoning, which these models never write; nothing to show them
    if message.role == "assistant":
        content = "".join(texts) or (None if calls else "")
        return [ChatMessage(role="assistant", content=content, tool_calls=calls or None)]
    if len(parts) > len(texts):  # images among the text: the parts as they are
        return [*results, ChatMessage(role="user", content=parts)]
    if texts or not results:
        return [*results, ChatMessage(role="user", content="\n".join(texts))]
    return results


def _result_text(block: ToolResultBlock, where: str) -> str:
    content = block.content
    if content is None:
        text = ""
    elif isinstance(content, str):
        text = content
    else:
        for k, part in enumerate(content):
            if not isinstance(part, TextBlock):
                raise _no_documents(f"{where}.content[{k}]")
        text = "\n".join(part.text for part in content if isinstance(part, TextBlock))
    # The chat layout has no error flag on a tool result: the model learns of the failure from the text alone.
    return f"Error: {text}" if block.is_error else text


def chat_tools(request: AnyRequest) -> list[ToolDefinition] | None:
    """Anthropic's tools ({name, description, input_schema}) as chat's functions; server tools are refused."""
    if not request.tools:
        return None
    tools = []
    for i, tool in enumerate(request.tools):
        if tool.type not in _CLIENT_TOOL_TYPES:
            message = f"Server tool '{tool.type}' is not supported here; only client tools (with input_schema) are."
            raise _unsupported(message, f"tools[{i}].type")
        try:
            function = FunctionDefinition(name=tool.name, description=tool.description, parameters=tool.input_schema)
        except ValidationError as exc:
            message = f"Invalid tools[{i}].name: {exc.errors()[0]['msg']}"
            raise invalid_request(message, f"tools[{i}].name") from None
        tools.append(ToolDefinition(type="function", function=function))
    return tools


def chat_tool_choice(request: AnyRequest) -> Literal["none", "auto", "required"] | NamedToolChoice | None:
    choice = request.tool_choice
    if choice is None:
        return None
    if choice.type == "any":
        return "required"
    if choice.type != "tool":
        return choice.type
    if not choice.name:
        raise invalid_request("tool_choice of type 'tool' needs the tool's name.", "tool_choice.name")
    return NamedToolChoice(type="function", function=ToolChoiceFunction(name=choice.name))
