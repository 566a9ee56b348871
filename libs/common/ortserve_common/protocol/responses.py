"""/v1/responses wire models: OpenAI's Responses API request, as far as this server can honour it.

The response objects and stream events are plain dicts built field by field to match the `openai` package's
`types/responses` models (see chat_service/responses/items.py); only the request needs validating here. Fields that
OpenAI defines but this server cannot honour (built-in tools, background mode, reasoning, images) are declared so
that the serving layer can refuse them with a 400 naming the field, instead of ignoring them.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import ConfigDict, Discriminator, Field, Tag, field_validator

from ortserve_common.protocol.common import OpenAIModel
from ortserve_common.protocol.conversations import (
    MAX_PAGE,
    ConversationReference,
    InputFunctionCallItem,
    InputFunctionCallOutputItem,
    InputMessageItem,
    _check_metadata,
)

__all__ = [
    "MAX_PAGE",
    "CompactRequest",
    "InputCompactionItem",
    "ResponseInputItem",
    "ResponsesRequest",
    "ResponseTextConfig",
    "ResponseTextFormat",
]


class InputCompactionItem(OpenAIModel):
    """What /v1/responses/compact returned, sent back as input: it stands for the turns it compacted."""

    type: Literal["compaction"]
    id: str | None = None
    encrypted_content: str = Field(min_length=1)


def _item_type(value: Any) -> str:
    # As conversations' items, plus compaction; a message may leave out its type. Tags bracketed so that an error
    # names the field (input[0].role), not the branch.
    kind = value.get("type", "message") if isinstance(value, dict) else getattr(value, "type", "message")
    return f"[{kind}]"


ResponseInputItem = Annotated[
    Annotated[InputMessageItem, Tag("[message]")]
    | Annotated[InputFunctionCallItem, Tag("[function_call]")]
    | Annotated[InputFunctionCallOutputItem, Tag("[function_call_output]")]
    | Annotated[InputCompactionItem, Tag("[compaction]")],
    Discriminator(
        _item_type,
        custom_error_type="invalid_item_type",
        custom_error_message="type must be message, function_call, function_call_output or compaction",
    ),
]


class ResponseTextFormat(OpenAIModel):
    model_config = ConfigDict(extra="ignore", strict=True, populate_by_name=True)

    type: Literal["text", "json_object", "json_schema"]
    name: str | None = Field(None, pattern=r"^[A-Za-z0-9_-]{1,64}$")
    description: str | None = None
    json_schema: dict[str, Any] | None = Field(None, alias="schema")
    strict: bool | None = None


class ResponseTextConfig(OpenAIModel):
    format: ResponseTextFormat | None = None
    verbosity: Literal["low", "medium", "high"] | None = None


class ResponsesRequest(OpenAIModel):
    model: str = Field(min_length=1)
    input: str | list[ResponseInputItem]
    instructions: str | None = None
    max_output_tokens: int | None = Field(None, ge=1)
    temperature: float | None = Field(None, ge=0, le=2)
    top_p: float | None = Field(None, ge=0, le=1)
    # The sampler extensions chat completions take (see SamplingRequest), with the same ranges.
    top_k: int | None = Field(None, ge=-1)
    min_p: float | None = Field(None, ge=0, le=1)
    repetition_penalty: float | None = Field(None, gt=0, le=10)
    frequency_penalty: float | None = Field(None, ge=-2, le=2)
    presence_penalty: float | None = Field(None, ge=-2, le=2)
    user: str | None = None
    metadata: dict[str, str] | None = None
    text: ResponseTextConfig | None = None
    # Tools and tool_choice are checked in the serving layer: a built-in tool type is a 400 naming tools[i].type.
    tools: list[dict[str, Any]] | None = None
    tool_choice: Literal["none", "auto", "required"] | dict[str, Any] | None = None
    parallel_tool_calls: bool | None = None
    stream: bool | None = False
    store: bool | None = True
    previous_response_id: str | None = Field(None, min_length=1)
    conversation: str | ConversationReference | None = None
    truncation: Literal["disabled", "auto"] | None = None
    # Known to OpenAI, refused here unless they ask for nothing (see chat_service.responses.serving.refuse_unsupported).
    background: bool | None = None
    reasoning: dict[str, Any] | None = None
    include: list[str] | None = None
    prompt: dict[str, Any] | None = None
    top_logprobs: int | None = None
    max_tool_calls: int | None = None
    service_tier: str | None = None
    # Hints that change nothing about the result here; accepted as OpenAI accepts them.
    prompt_cache_key: str | None = None
    safety_identifier: str | None = None
    stream_options: dict[str, Any] | None = None

    _metadata = field_validator("metadata")(_check_metadata)

    def conversation_id(self) -> str | None:
        return self.conversation.id if isinstance(self.conversation, ConversationReference) else self.conversation


class CompactRequest(OpenAIModel):
    """POST /v1/responses/compact: the turns to compact are a previous response's chain, then `input`."""

    model: str = Field(min_length=1)
    input: str | list[ResponseInputItem] | None = None
    previous_response_id: str | None = Field(None, min_length=1)
    instructions: str | None = None
    prompt_cache_key: str | None = Field(None, max_length=64)
