"""Wire pieces shared by several endpoints."""

from __future__ import annotations

import time
import uuid
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, SerializerFunctionWrapHandler, model_serializer


class OpenAIModel(BaseModel):
    # Unknown fields are ignored, as vLLM does; fields we know but cannot honour are refused by the serving layer.
    # Strict types, as OpenAI's API: "0.5" is not a number and "true" is not a boolean (lax pydantic would convert
    # them); an integer is still a valid float.
    model_config = ConfigDict(extra="ignore", strict=True)


class StreamOptions(OpenAIModel):
    include_usage: bool = False


class PromptTokensDetails(BaseModel):
    cached_tokens: int = 0  # prompt tokens whose KV came from the prefix cache instead of being computed


class UsageInfo(BaseModel):
    prompt_tokens: int = 0
    completion_tokens: int = 0
    total_tokens: int = 0
    prompt_tokens_details: PromptTokensDetails | None = None

    @classmethod
    def counted(cls, prompt: int, completion: int, cached: int = 0) -> UsageInfo:
        return cls(
            prompt_tokens=prompt,
            completion_tokens=completion,
            total_tokens=prompt + completion,
            prompt_tokens_details=PromptTokensDetails(cached_tokens=cached),
        )


class ModelCard(BaseModel):
    id: str
    object: Literal["model"] = "model"
    created: int = Field(default_factory=lambda: int(time.time()))
    owned_by: str = "ortserve"
    # An extension, as the registry's fields are (the OpenAI SDK keeps it as an attribute it does not declare).
    engine: str | None = Field(None, description="The chat engine serving the model: batched or generator.")
    capabilities: list[str] | None = Field(
        None,
        description="What the model can do beyond text, as its service serves it: 'ocr' means images are accepted "
        "and only the text in them, read by an OCR model, reaches the model (it does not see the picture).",
    )

    @model_serializer(mode="wrap")
    def _without_unknown_engine(self, handler: SerializerFunctionWrapHandler) -> dict[str, Any]:
        # Left out where no engine is known (embeddings, a registry card of an instance that did not say), so
        # cards carry no field that says nothing.
        data: dict[str, Any] = handler(self)
        for field in ("engine", "capabilities"):
            if data.get(field) is None:
                data.pop(field, None)
        return data


class ModelList(BaseModel):
    object: Literal["list"] = "list"
    data: list[ModelCard]


def new_id(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex}"


def now() -> int:
    return int(time.time())
