"""Admin wire models a service answers at /admin/models/* (the registry forwards operators' calls here)."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field

from ortserve_common.protocol.common import OpenAIModel


class ModelLoadRequest(OpenAIModel):
    id: str = Field(min_length=1, max_length=256, description="Model id clients will send as `model`.")
    path: str = Field(min_length=1, description="Model folder on this instance's filesystem.")
    kind: str | None = Field(None, description="chat, embedding or rerank; services use their default when omitted.")


class ModelUnloadRequest(OpenAIModel):
    id: str = Field(min_length=1, max_length=256)


class LoadedModels(BaseModel):
    """What the instance serves after the change, in the registry's registration shape."""

    models: list[dict[str, Any]]
