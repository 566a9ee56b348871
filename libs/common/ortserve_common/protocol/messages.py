"""/v1/messages wire models: Anthropic's Messages API request, as far as this server can honour it.

Replies and stream events are plain dicts built field by field as the `anthropic` package's `types` parse them (see
chat_service/messages/blocks.py and events.py). Image blocks are read by OCR in the chat pipeline; blocks this server
cannot use yet (documents) and Anthropic's server tools are declared, so that the serving layer refuses them with a
400 that names them instead of a validation error that only says the block does not fit.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import Field

from ortserve_common.protocol.common import OpenAIModel

__all__ = [
    "ANTHROPIC_ERROR_SCHEMA",
    "CountTokensRequest",
    "ImageBlock",
    "InputMessage",
    "MessagesRequest",
    "TextBlock",
    "ToolChoice",
    "ToolResultBlock",
    "ToolUseBlock",
]


# Every refusal on /v1/messages, as the OpenAPI schema documents it (Anthropic's SDKs read no other shape).
ANTHROPIC_ERROR_SCHEMA = {
    "title": "AnthropicErrorResponse",
    "type": "object",
    "required": ["type", "error"],
    "additionalProperties": False,
    "properties": {
        "type": {"const": "error"},
        "error": {
            "type": "object",
            "required": ["type", "message"],
            "additionalProperties": False,
            "properties": {"type": {"type": "string"}, "message": {"type": "string"}},
        },
    },
}


class TextBlock(OpenAIModel):
    type: Literal["text"]
    text: str
    # cache_control and citations are accepted and change nothing: the prefix cache needs no breakpoints.
    cache_control: dict[str, Any] | None = None


class ImageBlock(OpenAIModel):
    type: Literal["image"]
    source: dict[str, Any] | None = None


class DocumentBlock(OpenAIModel):
    type: Literal["document"]
    source: dict[str, Any] | None = None


class ToolUseBlock(OpenAIModel):
    type: Literal["tool_use"]
    id: str = Field(min_length=1)
    name: str = Field(min_length=1)
    input: dict[str, Any]
    cache_control: dict[str, Any] | None = None


class ToolResultBlock(OpenAIModel):
    type: Literal["tool_result"]
    tool_use_id: str = Field(min_length=1)
    content: str | list[TextBlock | ImageBlock | DocumentBlock] | None = None
    is_error: bool | None = None
    cache_control: dict[str, Any] | None = None


class ThinkingBlock(OpenAIModel):
    """A past reply's reasoning, as clients send it back; the models here never write one, so it is left out."""

    type: Literal["thinking", "redacted_thinking"]


ContentBlock = Annotated[
    TextBlock | ImageBlock | DocumentBlock | ToolUseBlock | ToolResultBlock | ThinkingBlock,
    Field(discriminator="type"),
]


class InputMessage(OpenAIModel):
    role: Literal["user", "assistant"]
    content: str | list[ContentBlock]


class Tool(OpenAIModel):
    """A client tool; a server tool (`type` such as "web_search_20250305") is refused by the serving layer."""

    name: str = Field(min_length=1)
    type: str | None = None
    description: str | None = None
    input_schema: dict[str, Any] | None = None
    cache_control: dict[str, Any] | None = None


class ToolChoice(OpenAIModel):
    type: Literal["auto", "any", "tool", "none"]
    name: str | None = None
    disable_parallel_tool_use: bool | None = None


class Metadata(OpenAIModel):
    user_id: str | None = None


class ThinkingConfig(OpenAIModel):
    type: Literal["enabled", "disabled", "adaptive"]
    budget_tokens: int | None = None


class _Prompt(OpenAIModel):
    """What both /v1/messages and /v1/messages/count_tokens describe: the prompt the model sees."""

    model: str = Field(min_length=1)
    messages: list[InputMessage] = Field(min_length=1)
    system: str | list[TextBlock] | None = None
    tools: list[Tool] | None = None
    tool_choice: ToolChoice | None = None
    thinking: ThinkingConfig | None = None
    # Anthropic's hosted features: refused by the serving layer when they ask for anything.
    mcp_servers: list[dict[str, Any]] | None = None
    container: str | dict[str, Any] | None = None
    # Structured outputs (output_config.format, or the older output_format): refused until mapped onto guidance;
    # output_config.effort is a hint about reasoning depth, which these models have no knob for.
    output_config: dict[str, Any] | None = None
    output_format: dict[str, Any] | None = None


class MessagesRequest(_Prompt):
    max_tokens: int = Field(ge=1)
    stop_sequences: list[str] | None = None
    # Anthropic's ranges; left out, the model's defaults apply (as in chat), not Anthropic's temperature 1.
    temperature: float | None = Field(None, ge=0, le=1)
    top_p: float | None = Field(None, ge=0, le=1)
    top_k: int | None = Field(None, ge=0)
    metadata: Metadata | None = None
    stream: bool | None = False
    service_tier: str | None = None


class CountTokensRequest(_Prompt):
    pass
