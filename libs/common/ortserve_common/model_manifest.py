"""The manifest: the models this deployment knows about, with their metadata and default sampling parameters.

One file describes a model for everyone: the registry lists its id, aliases, context and defaults; the chat service,
given the same file (CHAT_MODELS_FILE), serves the chat entries that name a folder, with their engine settings, and
applies their aliases and defaults to requests.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from ortserve_common.protocol.registry import ModelKind, ServiceName
from ortserve_common.protocol.sampling import check_stop_sequences

# Which service runs each kind; a manifest that says otherwise is a mistake worth stopping on.
SERVICE_OF_KIND: dict[str, ServiceName] = {"chat": "chat", "embedding": "embeddings", "rerank": "embeddings"}


class ManifestError(Exception):
    """The manifest cannot be read or is invalid; the message names the file and the offending entry."""


class SamplingDefaults(BaseModel):
    """Per-model defaults for requests that leave a parameter out (mbase's model description carries the same)."""

    # Forbid unknown names: a misspelt default would otherwise be dropped without anyone noticing.
    model_config = ConfigDict(extra="forbid")

    # The ranges a request's own fields have (ortserve_common.protocol.sampling.SamplingRequest).
    temperature: float | None = Field(None, ge=0, le=2)
    top_p: float | None = Field(None, ge=0, le=1)
    top_k: int | None = Field(None, ge=-1)
    min_p: float | None = Field(None, ge=0, le=1)
    repetition_penalty: float | None = Field(None, gt=0, le=10)
    max_tokens: int | None = Field(None, ge=1)
    frequency_penalty: float | None = Field(None, ge=-2, le=2)
    presence_penalty: float | None = Field(None, ge=-2, le=2)
    stop: list[str] | None = Field(None, max_length=4)

    @model_validator(mode="after")
    def _no_empty_stop(self) -> SamplingDefaults:
        check_stop_sequences(self.stop)
        return self


class ChatEngineSettings(BaseModel):
    """How the chat service runs one model; each one left out takes the service's CHAT_* setting of that name."""

    model_config = ConfigDict(extra="forbid")

    max_batch_size: int | None = Field(None, ge=1, le=256, description="KV slots: rows decoded together.")
    threads: int | None = Field(
        None, ge=1, description="ONNX Runtime intra-op threads; left out, CHAT_ENGINE_THREADS, or the usable cores."
    )
    prefix_cache_mb: int | None = Field(None, ge=0, description="Memory for cached prompt-prefix KV; 0 is off.")


class ManifestEntry(BaseModel):
    model_config = ConfigDict(extra="forbid")

    id: str = Field(min_length=1, max_length=256)
    aliases: list[str] = Field(default_factory=list)
    kind: ModelKind
    service: ServiceName | None = Field(None, description="Defaults to the service that runs this kind.")
    context_length: int | None = Field(
        None, ge=1, description="The context clients get; the chat service caps the model there (max_model_len)."
    )
    owned_by: str = "ortserve"
    created: int | None = Field(None, ge=0, description="Unix time; defaults to when the manifest was loaded.")
    defaults: SamplingDefaults = Field(default_factory=SamplingDefaults)
    path: str | None = Field(
        None,
        min_length=1,
        description="The model folder, relative to the serving service's models folder (or absolute); the chat "
        "service serves the chat entries that have one.",
    )
    engine: ChatEngineSettings | None = Field(None, description="Chat engine settings for this model (chat only).")

    @model_validator(mode="after")
    def _service_matches_kind(self) -> ManifestEntry:
        expected = SERVICE_OF_KIND[self.kind]
        if self.service is None:
            self.service = expected
        elif self.service != expected:
            raise ValueError(f"kind {self.kind!r} is served by {expected!r}, not {self.service!r}")
        if self.engine is not None and self.kind != "chat":
            raise ValueError(f"engine settings are for chat models, not kind {self.kind!r}")
        return self

    def defaults_dict(self) -> dict[str, Any]:
        return self.defaults.model_dump(exclude_none=True)


class Manifest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    models: list[ManifestEntry] = Field(default_factory=list)

    @model_validator(mode="after")
    def _unique_names(self) -> Manifest:
        owner: dict[str, str] = {}
        for entry in self.models:
            for name in [entry.id, *entry.aliases]:
                if name in owner:
                    raise ValueError(f"name {name!r} of model {entry.id!r} is already used by model {owner[name]!r}")
                owner[name] = entry.id
        return self

    def entry(self, id_or_alias: str) -> ManifestEntry | None:
        for entry in self.models:
            if id_or_alias == entry.id or id_or_alias in entry.aliases:
                return entry
        return None


def parse_manifest(data: Any, source: str, loaded_at: int | None = None) -> Manifest:
    """`data` is `{"models": [...]}` or a bare list of entries; `created` left out becomes `loaded_at`."""
    if isinstance(data, list):
        data = {"models": data}
    if data is None:
        data = {}
    try:
        manifest = Manifest.model_validate(data)
    except ValidationError as exc:
        raise ManifestError(f"invalid manifest {source}: {_describe(exc, data)}") from None
    stamp = int(time.time()) if loaded_at is None else loaded_at
    for entry in manifest.models:
        if entry.created is None:
            entry.created = stamp
    return manifest


def load_manifest(path: Path | None) -> Manifest:
    """Read a YAML or JSON manifest (JSON is YAML, but .json files get JSON's clearer error messages)."""
    if path is None:
        return Manifest()
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ManifestError(f"cannot read manifest {path}: {exc.strerror or exc}") from None
    try:
        data = json.loads(text) if path.suffix.lower() == ".json" else yaml.safe_load(text)
    except (json.JSONDecodeError, yaml.YAMLError) as exc:
        language = "JSON" if path.suffix.lower() == ".json" else "YAML"
        raise ManifestError(f"manifest {path} is not valid {language}: {exc}") from None
    return parse_manifest(data, str(path))


def _describe(exc: ValidationError, data: Any) -> str:
    """Name the entry by its id, not only by its index: `models[2] (id 'x').context_length: ...`."""
    problems = []
    for error in exc.errors(include_url=False)[:5]:
        loc = list(error["loc"])
        where = ""
        if len(loc) >= 2 and loc[0] == "models" and isinstance(loc[1], int):
            entries = data.get("models") if isinstance(data, dict) else None
            entry = entries[loc[1]] if isinstance(entries, list) and loc[1] < len(entries) else None
            entry_id = entry.get("id") if isinstance(entry, dict) else None
            where = f"models[{loc[1]}]" + (f" (id {entry_id!r})" if entry_id else "")
            loc = loc[2:]
        field = ".".join(str(part) for part in loc)
        where = ".".join(part for part in (where, field) if part) or "top level"
        problems.append(f"{where}: {error['msg'].removeprefix('Value error, ')}")
    return "; ".join(problems)
