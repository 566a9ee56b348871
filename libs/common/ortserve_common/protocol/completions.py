"""/v1/completions wire models."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field, field_validator

from ortserve_common.protocol.common import UsageInfo
from ortserve_common.protocol.sampling import SamplingRequest

MAX_PROMPTS = 32
MAX_LOGPROBS = 20


class CompletionRequest(SamplingRequest):
    prompt: str | list[str] = Field(description="One prompt, or several giving one choice each.")

    @field_validator("prompt")
    @classmethod
    def _prompt_count(cls, value: str | list[str]) -> str | list[str]:
        if isinstance(value, list) and not 1 <= len(value) <= MAX_PROMPTS:
            raise ValueError(f"give between 1 and {MAX_PROMPTS} prompts")
        return value

    echo: bool | None = False
    suffix: str | None = None
    logprobs: int | None = Field(None, ge=0, le=MAX_LOGPROBS)

    def prompts(self) -> list[str]:
        return [self.prompt] if isinstance(self.prompt, str) else list(self.prompt)


class CompletionLogprobs(BaseModel):
    """The legacy completions layout: parallel lists, one entry per token."""

    tokens: list[str] = []
    token_logprobs: list[float] = []
    top_logprobs: list[dict[str, float]] = []
    text_offset: list[int] = []


class CompletionChoice(BaseModel):
    index: int
    text: str
    logprobs: CompletionLogprobs | None = None
    finish_reason: Literal["stop", "length"] | None


class CompletionResponse(BaseModel):
    id: str
    object: Literal["text_completion"] = "text_completion"
    created: int
    model: str
    choices: list[CompletionChoice]
    usage: UsageInfo
    system_fingerprint: str | None = None


class CompletionChunk(BaseModel):
    id: str
    object: Literal["text_completion"] = "text_completion"
    created: int
    model: str
    choices: list[CompletionChoice]
    usage: UsageInfo | None = None
    system_fingerprint: str | None = None
