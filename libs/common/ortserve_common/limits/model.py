"""A key's limits: what the admin API accepts, what the registry hands nginx in its key-check answer, and what the
services read back from the headers nginx sets (never from the client: nginx overwrites any copy a client sends)."""

from __future__ import annotations

import json
from typing import Annotated, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SerializerFunctionWrapHandler,
    StringConstraints,
    ValidationError,
    model_serializer,
)

Priority = Literal["interactive", "batch"]
DEFAULT_PRIORITY: Priority = "interactive"

# Headers from the registry's key check to nginx, and from nginx to every upstream.
KEY_ID_HEADER = "X-Ortserve-Api-Key-Id"
KEY_LIMITS_HEADER = "X-Ortserve-Key-Limits"
KEY_PRIORITY_HEADER = "X-Ortserve-Key-Priority"

# Model ids and aliases travel in a header: printable ASCII without spaces or quotes keeps the JSON header-safe.
ModelName = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9._:/@+-]{1,200}$")]


class KeyLimits(BaseModel):
    """Every field is optional: a limit left out does not apply. Unknown fields are refused, so a misspelt limit is
    an error instead of no limit; types are strict, as on the rest of the API."""

    model_config = ConfigDict(extra="forbid", strict=True)

    requests_per_minute: int | None = Field(None, ge=1, le=10_000_000, description="Requests per clock minute.")
    tokens_per_minute: int | None = Field(
        None, ge=1, le=10_000_000_000, description="Prompt plus completion tokens per clock minute."
    )
    max_concurrent_requests: int | None = Field(None, ge=1, le=100_000, description="Requests in flight at once.")
    tokens_per_day: int | None = Field(
        None, ge=1, le=10_000_000_000_000, description="Prompt plus completion tokens per UTC day (the budget)."
    )
    models: list[ModelName] | None = Field(
        None,
        min_length=1,
        max_length=100,
        description="The model ids or aliases the key may use; left out, any model.",
    )
    priority: Priority | None = Field(None, description="interactive (the default) or batch.")

    @model_serializer(mode="wrap")
    def _without_unset_limits(self, handler: SerializerFunctionWrapHandler) -> dict[str, object]:
        """A limit that does not apply is left out of every answer, not shown as null."""
        return {key: value for key, value in handler(self).items() if value is not None}

    def is_empty(self) -> bool:
        return not self.model_dump(exclude_none=True)

    def to_header(self) -> str:
        return json.dumps(self.model_dump(exclude_none=True), separators=(",", ":"), ensure_ascii=True)

    @classmethod
    def from_header(cls, value: str | None) -> KeyLimits | None:
        """None when the header is absent, empty, or unreadable (a service reached without the proxy)."""
        if not value:
            return None
        try:
            limits = cls.model_validate_json(value)
        except ValidationError:
            return None
        return None if limits.is_empty() else limits

    @property
    def counted(self) -> bool:
        """Whether requests of this key need the shared counter store (an allow-list or priority alone does not)."""
        return any(
            v is not None
            for v in (
                self.requests_per_minute,
                self.tokens_per_minute,
                self.max_concurrent_requests,
                self.tokens_per_day,
            )
        )
