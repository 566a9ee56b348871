"""/v1/prompt-templates wire models: named server-side templates, a system prompt plus default parameters."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, Field, field_validator

from ortserve_common.protocol.common import OpenAIModel
from ortserve_common.protocol.sampling import MAX_STOP_STRINGS, check_stop_sequences

TEMPLATE_NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$"


class TemplateParameters(OpenAIModel):
    """Defaults for a chat request that names the template; whatever the request sets itself wins."""

    temperature: float | None = Field(None, ge=0, le=2)
    top_p: float | None = Field(None, ge=0, le=1)
    max_tokens: int | None = Field(None, ge=1)
    frequency_penalty: float | None = Field(None, ge=-2, le=2)
    presence_penalty: float | None = Field(None, ge=-2, le=2)
    stop: list[str] | None = Field(None, max_length=MAX_STOP_STRINGS)
    seed: int | None = None

    @field_validator("stop")
    @classmethod
    def _no_empty_stop(cls, value: list[str] | None) -> list[str] | None:
        check_stop_sequences(value)
        return value


class PromptTemplateBody(OpenAIModel):
    """What PUT /v1/prompt-templates/{name} replaces: everything but the name."""

    description: str | None = Field(None, max_length=1024)
    system_prompt: str = Field(min_length=1, max_length=100_000)
    parameters: TemplateParameters = Field(default_factory=TemplateParameters)


class PromptTemplateCreateRequest(PromptTemplateBody):
    name: str = Field(pattern=TEMPLATE_NAME_PATTERN)


class PromptTemplate(BaseModel):
    name: str
    object: Literal["prompt_template"] = "prompt_template"
    description: str | None
    system_prompt: str
    parameters: dict[str, Any]
    created_at: int
    updated_at: int


class PromptTemplateList(BaseModel):
    object: Literal["list"] = "list"
    data: list[PromptTemplate]


class PromptTemplateDeleted(BaseModel):
    name: str
    object: Literal["prompt_template.deleted"] = "prompt_template.deleted"
    deleted: bool = True
