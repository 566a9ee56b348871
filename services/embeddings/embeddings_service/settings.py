"""Embeddings service settings, read from EMBED_* environment variables."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

from ortserve_common.models_dir import DEFAULT_MODELS_DIR
from ortserve_common.protocol.embeddings import InputType
from ortserve_common.settings import ModelHostSettings
from pydantic import AliasChoices, BaseModel, ConfigDict, Field, field_validator, model_validator
from pydantic_settings import NoDecode, SettingsConfigDict

from embeddings_service.engine.types import ModelKind
from embeddings_service.prefixes import DEFAULT_INSTRUCTION_TEMPLATE, PREFIX_PRESETS

# The default stack's set: two real encoders and the two chat models' hidden states (each chat id on the folder built
# with a hidden_states output). No random-weight model: /v1/rerank ranks by these bi-encoders' cosine.
DEFAULT_MODELS = (
    "all-minilm-l6-v2=all-minilm-l6-v2,multilingual-e5-small=multilingual-e5-small,"
    "smollm2-135m-instruct=smollm2-135m-instruct-hidden,qwen2.5-coder-0.5b-instruct=qwen2.5-coder-0.5b-instruct"
)


class ModelEntry(BaseModel):
    """One served model. Unknown keys are refused so that a typo in EMBED_MODELS fails at start, not in silence."""

    model_config = ConfigDict(extra="forbid")

    id: str = Field(min_length=1, pattern=r"^\S+$", description="The id clients send as `model`.")
    path: Path = Field(description="Model folder; a relative path is taken under EMBED_MODELS_DIR.")
    kind: ModelKind | None = Field(
        None, description="embedding | llm-embedding | rerank; left out, it is read from the folder."
    )
    prefixes: dict[InputType, str] | str | None = Field(
        None,
        description="input_type → prefix table, or the name of a built-in one (ruri-v3, e5); left out, the "
        "folder's own (ortserve_model.json), if any.",
    )
    instruction_template: str = Field(
        DEFAULT_INSTRUCTION_TEMPLATE, description="How `instruction` is put in front of the text; has {instruction}."
    )
    max_length: int | None = Field(
        None, ge=2, description="Cap on tokens per input; defaults to the model's own limit."
    )

    @field_validator("prefixes")
    @classmethod
    def _known_preset(cls, value: dict[InputType, str] | str | None) -> dict[InputType, str] | str | None:
        if isinstance(value, str) and value not in PREFIX_PRESETS:
            raise ValueError(f"unknown prefix preset {value!r}; built-in: {', '.join(sorted(PREFIX_PRESETS))}")
        return value

    @field_validator("instruction_template")
    @classmethod
    def _has_placeholder(cls, value: str) -> str:
        if "{instruction}" not in value:
            raise ValueError("instruction_template must contain {instruction}")
        return value

    def prefix_table(self) -> dict[InputType, str]:
        if isinstance(self.prefixes, str):
            return dict(PREFIX_PRESETS[self.prefixes])
        return dict(self.prefixes or {})


def parse_models(value: Any) -> Any:
    """EMBED_MODELS is a JSON list of entries, or the short form `id=path,id=path` (kind read from the folder)."""
    if not isinstance(value, str):
        return value
    text = value.strip()
    if text.startswith("["):
        return json.loads(text)
    entries = []
    for item in filter(None, (part.strip() for part in text.replace("\n", ",").split(","))):
        model_id, sep, path = item.partition("=")
        if not sep or not model_id.strip() or not path.strip():
            raise ValueError(f"expected id=path, got {item!r}")
        entries.append({"id": model_id.strip(), "path": path.strip()})
    return entries


class EmbedSettings(ModelHostSettings):
    model_config = SettingsConfigDict(env_prefix="EMBED_", extra="ignore", validate_default=True)

    port: int = Field(8001, ge=1, le=65535, description="TCP port to listen on.")
    models_dir: Path = Field(
        DEFAULT_MODELS_DIR,
        validation_alias=AliasChoices("EMBED_MODELS_DIR", "ORTSERVE_MODELS_DIR", "models_dir"),
        description="Folder that relative model paths are taken under (ORTSERVE_MODELS_DIR also sets it).",
    )
    models: Annotated[list[ModelEntry], NoDecode] = Field(
        DEFAULT_MODELS,  # type: ignore[arg-type]  # parsed by the validator below, like the env value
        min_length=1,
        description="Served models: a JSON list of {id, path, kind?, prefixes?, instruction_template?, "
        "max_length?}, or `id=path,id=path`.",
    )
    max_batch_size: int = Field(32, ge=1, description="Most inputs one model run takes (dynamic batching).")
    max_wait_ms: float = Field(
        2.0, ge=0, description="How long a batch waits for more inputs after its first one arrives."
    )
    max_inputs: int = Field(2048, ge=1, description="Most inputs one /v1/embeddings request may carry.")
    max_documents: int = Field(1000, ge=1, description="Most documents one /v1/rerank request may carry.")
    default_truncate: bool = Field(
        False, description="Cut over-long inputs when a request does not say; false refuses them with a 400."
    )
    engine_threads: int | None = Field(
        None,
        ge=1,
        description="ONNX Runtime intra-op threads per model; unset (or empty), the usable cores: the CPUs this "
        "process may run on, capped by its cgroup's CPU quota (a container's --cpus), never the host's count.",
    )
    max_concurrency: int = Field(64, ge=1, description="Requests being served at once; they share the model batches.")
    max_queue: int = Field(256, ge=0, description="Requests allowed to wait for a slot; beyond this → 429.")

    @field_validator("models", mode="before")
    @classmethod
    def _parse_models(cls, value: Any) -> Any:
        return parse_models(value)

    @field_validator("engine_threads", mode="before")
    @classmethod
    def _empty_is_unset(cls, value: Any) -> Any:
        # Compose passes ${EMBED_ENGINE_THREADS:-}: an empty value means "not set", not an invalid number.
        return None if isinstance(value, str) and not value.strip() else value

    @model_validator(mode="after")
    def _resolve_models(self) -> EmbedSettings:
        seen: set[str] = set()
        for entry in self.models:
            if entry.id in seen:
                raise ValueError(f"model id {entry.id!r} is configured twice")
            seen.add(entry.id)
            if not entry.path.is_absolute():
                entry.path = self.models_dir / entry.path
        return self

    def entry_for(self, model_id: str, path: str, kind: str | None) -> ModelEntry:
        """A model the admin API asked for, resolved like the configured ones.

        The registry knows only "embedding"; for an ONNX Runtime GenAI folder that means its hidden states.
        """
        resolved = Path(path) if Path(path).is_absolute() else self.models_dir / path
        if kind == "embedding" and (resolved / "genai_config.json").is_file():
            kind = "llm-embedding"
        return ModelEntry.model_validate({"id": model_id, "path": resolved, "kind": kind})
