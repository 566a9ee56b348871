"""Registry settings, read from MODELS_* environment variables."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

from ortserve_common.settings import ServiceSettings
from pydantic import Field, SecretStr, field_validator
from pydantic_settings import NoDecode, SettingsConfigDict

# services/models/manifest.yaml; present in a source checkout (and an editable install), not in a wheel.
BUNDLED_MANIFEST = Path(__file__).resolve().parent.parent / "manifest.yaml"


def _bundled_manifest() -> Path | None:
    return BUNDLED_MANIFEST if BUNDLED_MANIFEST.is_file() else None


class ModelsSettings(ServiceSettings):
    model_config = SettingsConfigDict(env_prefix="MODELS_", extra="ignore", validate_default=True)

    port: int = Field(8002, ge=1, le=65535, description="TCP port to listen on.")
    manifest: Path | None = Field(
        default_factory=_bundled_manifest,
        description="YAML or JSON manifest of the known models; defaults to the bundled services/models/manifest.yaml, "
        "an empty value means no manifest (only registered models are listed).",
    )
    data_dir: Path = Field(
        Path("run/models-data"), description="Folder for state that survives restarts (the hashed API keys)."
    )
    api_keys: Annotated[list[str], NoDecode] = Field(
        default_factory=list,
        description="Comma-separated plaintext API keys to seed at start (idempotent; a revoked one stays revoked).",
    )
    admin_key: SecretStr | None = Field(
        None, description="Bearer key for the /admin API; unset disables the admin API (403)."
    )
    forward_timeout_s: float = Field(
        120.0, gt=0, description="Timeout for a load or unload forwarded to an instance (loads take seconds)."
    )
    limits_store_url: str | None = Field(
        None,
        description="Redis URL of the per-key limits counters the services share (redis://host:6379/0), read by "
        "GET /admin/keys/{id}/usage; unset, that route answers 503.",
    )
    limits_store_timeout_s: float = Field(
        0.5, gt=0, description="Longest wait for the limits store per call before it counts as down."
    )
    forget_after_s: float = Field(
        600.0, gt=0, description="An instance down for this long is dropped from /internal views."
    )

    @field_validator("manifest", mode="before")
    @classmethod
    def _empty_manifest(cls, value: Any) -> Any:
        return None if isinstance(value, str) and not value.strip() else value

    @field_validator("api_keys", mode="before")
    @classmethod
    def _split_keys(cls, value: Any) -> Any:
        if isinstance(value, str):
            return [key.strip() for key in value.split(",") if key.strip()]
        return value

    @field_validator("admin_key", mode="before")
    @classmethod
    def _empty_admin_key(cls, value: Any) -> Any:
        return None if isinstance(value, str) and not value.strip() else value
