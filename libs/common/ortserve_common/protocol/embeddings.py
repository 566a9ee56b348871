"""/v1/embeddings wire models: OpenAI's fields, plus the extensions clients send in `extra_body`."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field

from ortserve_common.protocol.common import ModelCard, OpenAIModel

InputType = Literal["query", "document", "classification", "clustering", "sts"]
INPUT_TYPES: tuple[InputType, ...] = ("query", "document", "classification", "clustering", "sts")

# One string, several strings, one token-id sequence, or several: the four shapes OpenAI accepts.
EmbeddingInput = str | list[str] | list[int] | list[list[int]]


class EmbeddingRequest(OpenAIModel):
    model: str = Field(min_length=1)
    input: EmbeddingInput
    encoding_format: Literal["float", "base64"] = "float"
    dimensions: int | None = Field(None, ge=1)
    user: str | None = None
    # Extensions (not OpenAI's; the OpenAI SDK sends them through `extra_body`).
    input_type: InputType | None = Field(None, description="Selects the model's prefix for this kind of text.")
    instruction: str | None = Field(None, description="Task instruction, rendered with the model's template.")
    truncate: bool | None = Field(None, description="Cut inputs over the model's limit instead of refusing them.")


class EmbeddingData(BaseModel):
    object: Literal["embedding"] = "embedding"
    index: int
    # float32 values, or their little-endian bytes in base64 (OpenAI's `encoding_format="base64"`).
    embedding: list[float] | str


class EmbeddingUsage(BaseModel):
    prompt_tokens: int
    total_tokens: int


class EmbeddingResponse(BaseModel):
    object: Literal["list"] = "list"
    data: list[EmbeddingData]
    model: str
    usage: EmbeddingUsage


class EmbeddingModelCard(ModelCard):
    """A model card with what an embeddings client needs to know; extra fields the OpenAI SDK keeps as extras."""

    kind: Literal["embedding", "llm-embedding", "rerank"]
    dimensions: int | None = None
    max_input_tokens: int
    endpoints: list[str]
    rerank_method: Literal["cross-encoder", "bi-encoder-cosine"] | None = None
    input_types: list[InputType] = Field(default_factory=list)
    unsupported_reason: str | None = None  # the folder loaded but cannot serve (an LLM without hidden states)


class EmbeddingModelList(BaseModel):
    object: Literal["list"] = "list"
    data: list[EmbeddingModelCard]
