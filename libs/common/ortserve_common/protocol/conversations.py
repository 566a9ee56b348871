"""/v1/conversations wire models, in the shape of OpenAI's Conversations API (the SDK's `client.conversations`).

A conversation holds items: messages (user, assistant, system, developer), the assistant's function calls and the
tools' outputs, as the Responses API names them. A chat completion that names a conversation reads them as history
and appends its own messages and reply.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, Discriminator, Field, Tag, field_validator

from ortserve_common.protocol.common import OpenAIModel

MAX_ITEMS_PER_REQUEST = 20  # OpenAI's limit on items added in one call
MAX_METADATA_KEYS = 16
MAX_PAGE = 100

MessageRole = Literal["user", "assistant", "system", "developer"]


class TextPart(OpenAIModel):
    type: Literal["input_text", "output_text", "text"]
    text: str


class ImagePart(OpenAIModel):
    """An image in a Responses input message: the chat service reads its text by OCR before the item is stored."""

    type: Literal["input_image"]
    image_url: str | None = None  # a data URL (or, where the server allows fetching, an http(s) URL)
    file_id: str | None = None  # refused: this server keeps no files
    detail: Literal["auto", "low", "high"] | None = None


class InputMessageItem(OpenAIModel):
    """A message as clients send it: content is a string or a list of text (and image) parts."""

    type: Literal["message"] = "message"
    role: MessageRole
    content: str | list[Annotated[TextPart | ImagePart, Field(discriminator="type")]]
    # Open Responses labels assistant messages as commentary or the final answer; kept with the item and echoed.
    phase: Literal["commentary", "final_answer"] | None = None

    def text(self) -> str:
        if isinstance(self.content, str):
            return self.content
        return "\n".join(p.text for p in self.content if isinstance(p, TextPart))

    def has_images(self) -> bool:
        return not isinstance(self.content, str) and any(isinstance(p, ImagePart) for p in self.content)


class InputFunctionCallItem(OpenAIModel):
    type: Literal["function_call"]
    call_id: str = Field(min_length=1)
    name: str = Field(min_length=1)
    arguments: str


class InputFunctionCallOutputItem(OpenAIModel):
    type: Literal["function_call_output"]
    call_id: str = Field(min_length=1)
    output: str


def _item_type(value: Any) -> str:
    # A message may leave out its type, as OpenAI's "easy" input message does. The tags are bracketed, as pydantic's
    # own branch labels are, so that an error names the field (items[0].role), not the branch.
    kind = value.get("type", "message") if isinstance(value, dict) else getattr(value, "type", "message")
    return f"[{kind}]"


InputItem = Annotated[
    Annotated[InputMessageItem, Tag("[message]")]
    | Annotated[InputFunctionCallItem, Tag("[function_call]")]
    | Annotated[InputFunctionCallOutputItem, Tag("[function_call_output]")],
    Discriminator(
        _item_type,
        custom_error_type="invalid_item_type",
        custom_error_message="type must be message, function_call or function_call_output",
    ),
]


def _check_metadata(value: dict[str, str] | None) -> dict[str, str] | None:
    if value is None:
        return value
    if len(value) > MAX_METADATA_KEYS:
        raise ValueError(f"metadata holds at most {MAX_METADATA_KEYS} keys")
    for key, text in value.items():
        if len(key) > 64 or len(text) > 512:
            raise ValueError("metadata keys are at most 64 characters and values at most 512")
    return value


class ConversationCreateRequest(OpenAIModel):
    items: list[InputItem] | None = Field(None, max_length=MAX_ITEMS_PER_REQUEST)
    metadata: dict[str, str] | None = None

    _metadata = field_validator("metadata")(_check_metadata)


class ConversationUpdateRequest(OpenAIModel):
    metadata: dict[str, str]

    _metadata = field_validator("metadata")(_check_metadata)


class ItemsCreateRequest(OpenAIModel):
    items: list[InputItem] = Field(min_length=1, max_length=MAX_ITEMS_PER_REQUEST)


class Conversation(BaseModel):
    id: str
    object: Literal["conversation"] = "conversation"
    created_at: int
    metadata: dict[str, str]


class ConversationDeleted(BaseModel):
    id: str
    object: Literal["conversation.deleted"] = "conversation.deleted"
    deleted: bool = True


class ConversationList(BaseModel):
    object: Literal["list"] = "list"
    data: list[Conversation]
    first_id: str | None
    last_id: str | None
    has_more: bool


class ConversationItemList(BaseModel):
    """Items as stored: the input item's fields plus `id` (and `status` for messages and calls)."""

    object: Literal["list"] = "list"
    data: list[dict[str, Any]]
    first_id: str | None
    last_id: str | None
    has_more: bool


class ConversationReference(OpenAIModel):
    id: str = Field(min_length=1)
