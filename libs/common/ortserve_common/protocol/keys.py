"""API key administration wire models; a secret appears only in the answer that creates it."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field

from ortserve_common.protocol.common import OpenAIModel


class CreateKeyRequest(OpenAIModel):
    name: str = Field(min_length=1, max_length=200, description="What the key is for; shown in listings.")


class CreatedKey(BaseModel):
    id: str
    name: str
    key: str = Field(description="The secret; it is stored hashed and never shown again.")
    created: int


class KeyInfo(BaseModel):
    id: str
    name: str
    created: int
    revoked: bool
    prefix: str = Field(description="The secret's first characters, enough to tell keys apart.")


class KeyList(BaseModel):
    object: Literal["list"] = "list"
    data: list[KeyInfo]


class RevokedKey(BaseModel):
    id: str
    revoked: Literal[True] = True
