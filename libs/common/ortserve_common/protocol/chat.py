"""/v1/chat/completions wire models."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PrivateAttr,
    SerializationInfo,
    SerializerFunctionWrapHandler,
    model_serializer,
)

from ortserve_common.protocol.common import OpenAIModel, UsageInfo
from ortserve_common.protocol.conversations import ConversationReference
from ortserve_common.protocol.sampling import SamplingRequest

MAX_TOP_LOGPROBS = 20


class TextContentPart(OpenAIModel):
    type: Literal["text"]
    text: str


class ImageUrl(OpenAIModel):
    url: str  # a data URL (data:image/png;base64,...) or, where the server allows fetching, an http(s) URL
    detail: Literal["auto", "low", "high"] | None = None  # accepted; OCR reads the image at one resolution


class ImageUrlContentPart(OpenAIModel):
    """An image in a user message. The models served here read text only: the serving layer replaces the image with
    the text an OCR model reads in it (chat_service/vision/)."""

    type: Literal["image_url"]
    image_url: ImageUrl
    # Where the image came from in the client's own request (responses' or Anthropic's layout), for error messages;
    # None means messages[i].content[j].image_url.url of a chat request. Private: no client sets it.
    _param: str | None = PrivateAttr(None)

    @classmethod
    def of(cls, url: str, param: str) -> ImageUrlContentPart:
        part = cls(type="image_url", image_url=ImageUrl(url=url))
        part._param = param
        return part

    @property
    def param(self) -> str | None:
        return self._param


# Content part types of OpenAI's API that the models served here cannot take, by what they carry.
_MEDIA_PARTS = {
    "input_image": "images as 'input_image' parts (chat takes 'image_url' parts)",
    "input_audio": "audio",
    "audio": "audio",
    "file": "files",
    "input_file": "files",
    "video_url": "video",
}


def text_or_image_part(part: Any) -> Any:
    """Refuse, in words, a content part this server cannot read, rather than with a schema error."""
    kind = part.get("type") if isinstance(part, dict) else None
    if isinstance(kind, str) and kind not in ("text", "image_url"):
        if kind in _MEDIA_PARTS:
            raise ValueError(
                f"this model does not accept {_MEDIA_PARTS[kind]} ('{kind}' content parts); send 'text' parts, "
                "or images as 'image_url' parts (their text is read by OCR)"
            )
        raise ValueError(f"unknown content part type '{kind}'; the supported types are 'text' and 'image_url'")
    return part


ContentPart = Annotated[
    Annotated[TextContentPart | ImageUrlContentPart, Field(discriminator="type")],
    BeforeValidator(text_or_image_part),
]


class FunctionCall(OpenAIModel):
    name: str
    # OpenAI sends a JSON string; some clients send the object itself.
    arguments: str | dict[str, Any]


class ToolCall(OpenAIModel):
    id: str
    type: Literal["function"] = "function"
    function: FunctionCall


class ChatMessage(OpenAIModel):
    role: Literal["system", "developer", "user", "assistant", "tool"]
    content: str | list[ContentPart] | None = None
    name: str | None = None
    tool_calls: list[ToolCall] | None = None  # assistant turns that called tools
    tool_call_id: str | None = None  # tool turns: the call this result answers

    def text(self) -> str:
        if self.content is None:
            return ""
        if isinstance(self.content, str):
            return self.content
        # Images have no text until the serving layer has read them (chat_service/vision/), which it does first.
        return "\n".join(part.text for part in self.content if isinstance(part, TextContentPart))

    def images(self) -> list[ImageUrlContentPart]:
        if not isinstance(self.content, list):
            return []
        return [part for part in self.content if isinstance(part, ImageUrlContentPart)]


class FunctionDefinition(OpenAIModel):
    name: str = Field(pattern=r"^[A-Za-z0-9_-]{1,64}$")
    description: str | None = None
    parameters: dict[str, Any] | None = None
    strict: bool | None = None


class ToolDefinition(OpenAIModel):
    type: Literal["function"]
    function: FunctionDefinition


class ToolChoiceFunction(OpenAIModel):
    name: str


class NamedToolChoice(OpenAIModel):
    type: Literal["function"]
    function: ToolChoiceFunction


class JsonSchemaFormat(OpenAIModel):
    model_config = ConfigDict(extra="ignore", populate_by_name=True)

    name: str = Field(pattern=r"^[A-Za-z0-9_-]{1,64}$")
    description: str | None = None
    # `schema` would shadow a BaseModel attribute; the wire name stays "schema".
    json_schema: dict[str, Any] | None = Field(None, alias="schema")
    strict: bool | None = None


class ResponseFormat(OpenAIModel):
    type: Literal["text", "json_object", "json_schema"]
    json_schema: JsonSchemaFormat | None = None


class ChatCompletionRequest(SamplingRequest):
    messages: list[ChatMessage] = Field(min_length=1)
    max_completion_tokens: int | None = Field(None, ge=1)
    logprobs: bool | None = False
    top_logprobs: int | None = Field(None, ge=0, le=MAX_TOP_LOGPROBS)
    tools: list[ToolDefinition] | None = None
    tool_choice: Literal["none", "auto", "required"] | NamedToolChoice | None = None
    parallel_tool_calls: bool | None = None
    response_format: ResponseFormat | None = None
    # Extensions: a stored conversation whose history goes before `messages` and which the reply is appended to
    # (OpenAI's Responses API takes the same field), and a server-side prompt template by name.
    conversation: str | ConversationReference | None = None
    prompt_template: str | None = Field(None, min_length=1)

    def conversation_id(self) -> str | None:
        return self.conversation.id if isinstance(self.conversation, ConversationReference) else self.conversation


class _OmitNone(BaseModel):
    """Leave out fields that are None, as OpenAI does in messages and stream deltas."""

    @model_serializer(mode="wrap")
    def _omit_none(self, handler: SerializerFunctionWrapHandler, info: SerializationInfo) -> dict[str, Any]:
        return {key: value for key, value in handler(self).items() if value is not None}


class ResponseFunctionCall(BaseModel):
    name: str
    arguments: str  # JSON text


class ResponseToolCall(BaseModel):
    id: str
    type: Literal["function"] = "function"
    function: ResponseFunctionCall


class AssistantMessage(BaseModel):
    role: Literal["assistant"] = "assistant"
    content: str | None = None
    tool_calls: list[ResponseToolCall] | None = None

    @model_serializer(mode="wrap")
    def _omit_none(self, handler: SerializerFunctionWrapHandler, info: SerializationInfo) -> dict[str, Any]:
        # content stays, even when null (a message that only calls tools), as OpenAI sends it.
        data = handler(self)
        return {key: value for key, value in data.items() if value is not None or key == "content"}


class TopLogprob(BaseModel):
    token: str
    logprob: float
    bytes: list[int] | None


class TokenLogprob(TopLogprob):
    top_logprobs: list[TopLogprob]


class ChoiceLogprobs(BaseModel):
    content: list[TokenLogprob] | None
    refusal: list[TokenLogprob] | None = None


ChatFinishReason = Literal["stop", "length", "tool_calls"]


class ChatCompletionChoice(BaseModel):
    index: int
    message: AssistantMessage
    logprobs: ChoiceLogprobs | None = None
    finish_reason: ChatFinishReason | None


class ChatCompletionResponse(BaseModel):
    id: str
    object: Literal["chat.completion"] = "chat.completion"
    created: int
    model: str
    choices: list[ChatCompletionChoice]
    usage: UsageInfo
    system_fingerprint: str | None = None


class DeltaFunctionCall(_OmitNone):
    name: str | None = None
    arguments: str | None = None


class DeltaToolCall(_OmitNone):
    """OpenAI's streamed call: the first delta has index, id, type and name; later ones argument fragments."""

    index: int
    id: str | None = None
    type: Literal["function"] | None = None
    function: DeltaFunctionCall | None = None


class DeltaMessage(_OmitNone):
    role: Literal["assistant"] | None = None
    content: str | None = None
    tool_calls: list[DeltaToolCall] | None = None


class ChatCompletionChunkChoice(BaseModel):
    index: int
    delta: DeltaMessage
    logprobs: ChoiceLogprobs | None = None
    finish_reason: ChatFinishReason | None = None


class ChatCompletionChunk(BaseModel):
    id: str
    object: Literal["chat.completion.chunk"] = "chat.completion.chunk"
    created: int
    model: str
    choices: list[ChatCompletionChunkChoice]
    usage: UsageInfo | None = None
    system_fingerprint: str | None = None
