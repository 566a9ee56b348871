"""POST /tokenize and /detokenize: vLLM's shape, also answering llama-server's field names."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field

from ortserve_common.protocol.chat import ChatMessage, NamedToolChoice, ToolDefinition
from ortserve_common.protocol.common import OpenAIModel


class TokenizeRequest(OpenAIModel):
    model: str | None = Field(None, min_length=1, description="Defaults to the instance's main model.")
    # Text mode: `prompt` (vLLM) or `content` (llama-server).
    prompt: str | None = None
    content: str | None = None
    # Chat mode: the messages as /v1/chat/completions would render them with the model's template.
    messages: list[ChatMessage] | None = Field(None, min_length=1)
    tools: list[ToolDefinition] | None = None
    tool_choice: Literal["none", "auto", "required"] | NamedToolChoice | None = None
    add_generation_prompt: bool = True
    add_special_tokens: bool | None = Field(
        None,
        description="Unset: the ids generation would see for this text; true/false: with or without the "
        "tokenizer's special tokens (BOS and the like).",
    )
    return_token_strs: bool = False


class TokenizeResponse(BaseModel):
    count: int
    max_model_len: int
    tokens: list[int]
    token_strs: list[str] | None = None


class DetokenizeRequest(OpenAIModel):
    model: str | None = Field(None, min_length=1)
    tokens: list[int]


class DetokenizeResponse(BaseModel):
    prompt: str  # vLLM
    content: str  # llama-server: the same text
