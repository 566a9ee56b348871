"""API key administration wire models; a secret appears only in the answer that creates it."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field

from ortserve_common.limits.model import KeyLimits
from ortserve_common.protocol.common import OpenAIModel


class CreateKeyRequest(OpenAIModel):
    name: str = Field(min_length=1, max_length=200, description="What the key is for; shown in listings.")
    limits: KeyLimits | None = Field(None, description="Per-key limits; left out, the key is unlimited.")


class UpdateKeyRequest(OpenAIModel):
    """PATCH: a field left out is kept; `limits` replaces the key's limits whole, and null removes them."""

    name: str | None = Field(None, min_length=1, max_length=200, description="A new name.")
    limits: KeyLimits | None = Field(None, description="The key's new limits, whole; null removes every limit.")


class CreatedKey(BaseModel):
    id: str
    name: str
    key: str = Field(description="The secret; it is stored hashed and never shown again.")
    created: int
    limits: KeyLimits | None = None


class KeyInfo(BaseModel):
    id: str
    name: str
    created: int
    revoked: bool
    prefix: str = Field(description="The secret's first characters, enough to tell keys apart.")
    limits: KeyLimits | None = None


class KeyList(BaseModel):
    object: Literal["list"] = "list"
    data: list[KeyInfo]


class RevokedKey(BaseModel):
    id: str
    revoked: Literal[True] = True


class WindowUsage(BaseModel):
    requests: int
    tokens: int = Field(description="Prompt plus completion tokens.")
    resets_in_s: float = Field(description="Seconds until this window's counters start again from zero.")


class KeyUsage(BaseModel):
    """A key's counters as every replica shares them (the limits store); zero for a key nothing has counted yet."""

    object: Literal["key.usage"] = "key.usage"
    id: str
    limits: KeyLimits | None
    minute: WindowUsage = Field(description="This clock minute.")
    day: WindowUsage = Field(description="This UTC day.")
    in_flight: int = Field(description="Requests of this key being served now.")
    refusals: dict[str, int] = Field(
        description="Refusals since the store started, by reason: requests, tokens, concurrency, quota, model."
    )
