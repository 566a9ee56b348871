"""What this chat service serves, model by model: its folder, its other names, its engine settings and the sampling
defaults for requests that leave a parameter out.

The models come from CHAT_MODEL_PATH (one model, the service's settings as they are) or from CHAT_MODELS_FILE, a
file in the registry manifest's schema, so that one entry describes a model for the registry and for this service.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from ortserve_common.model_manifest import Manifest, ManifestEntry, ManifestError, load_manifest
from pydantic import BaseModel

from chat_service.settings import ChatSettings

logger = logging.getLogger(__name__)

RequestT = TypeVar("RequestT", bound=BaseModel)

# Request fields that a model's defaults fill in. max_tokens is not one: the default is capped by the context, while
# a max_tokens that the request gives itself and that does not fit is refused (see BaseServing.resolve_max_tokens).
FILLED_FIELDS = (
    "temperature",
    "top_p",
    "top_k",
    "min_p",
    "repetition_penalty",
    "frequency_penalty",
    "presence_penalty",
    "stop",
)


@dataclass(frozen=True)
class ModelConfig:
    id: str
    path: Path
    settings: ChatSettings  # the service's settings with this model's engine settings and context in their place
    aliases: tuple[str, ...] = ()
    defaults: Mapping[str, Any] = field(default_factory=dict)  # request field → value, for FILLED_FIELDS
    max_tokens: int = 1024  # when the request gives none (capped by the context)

    @property
    def names(self) -> tuple[str, ...]:
        return (self.id, *self.aliases)

    def fill(self, request: RequestT) -> RequestT:
        """The request as this model serves it: `model` is the model's id (asked by an alias, the response names
        the model, as OpenAI's does) and the model's defaults stand wherever the request gives no value."""
        fields = type(request).model_fields
        update: dict[str, Any] = {
            name: value for name, value in self.defaults.items() if name in fields and getattr(request, name) is None
        }
        update["model"] = self.id
        return request.model_copy(update=update)


class ModelCatalog:
    """The models to serve at start, and how a model loaded at runtime (/admin/models/load) is configured: as its
    models-file entry says when the file has one for it, else with the service's settings."""

    def __init__(self, settings: ChatSettings) -> None:
        self.settings = settings
        self.manifest: Manifest | None = load_manifest(settings.models_file) if settings.models_file else None

    def startup(self) -> list[ModelConfig]:
        if self.manifest is None:
            assert self.settings.model_path is not None  # the settings require one or the other
            return [self._config(self.settings.model_id, self.settings.model_path)]
        return [self._from_entry(entry, self._entry_path(entry)) for entry in self._chosen_entries()]

    def for_load(self, model_id: str, path: str) -> ModelConfig:
        entry = self.manifest.entry(model_id) if self.manifest is not None else None
        if entry is not None and entry.kind == "chat":
            return self._from_entry(entry, self._resolve(path))
        return self._config(model_id, self._resolve(path))

    # Internals -----------------------------------------------------------------------------------------------------
    def _chosen_entries(self) -> list[ManifestEntry]:
        assert self.manifest is not None
        source = f"models file {self.settings.models_file}"
        chat = [entry for entry in self.manifest.models if entry.kind == "chat"]
        if not self.settings.models:
            served = [entry for entry in chat if entry.path is not None]
            if not served:
                raise ManifestError(f"{source} has no chat model with a path: nothing to serve")
            return served
        chosen: list[ManifestEntry] = []
        for name in self.settings.models:
            entry = self.manifest.entry(name)
            if entry is None:
                known = ", ".join(e.id for e in chat) or "none"
                raise ManifestError(
                    f"CHAT_MODELS names {name!r}, which {source} does not list (its chat models: {known})"
                )
            if entry.kind != "chat":
                raise ManifestError(f"CHAT_MODELS names {name!r}, of kind {entry.kind!r} in {source}, not chat")
            if entry in chosen:
                raise ManifestError(f"CHAT_MODELS names model {entry.id!r} twice")
            chosen.append(entry)
        return chosen

    def _entry_path(self, entry: ManifestEntry) -> Path:
        if entry.path is None:
            raise ManifestError(
                f"model {entry.id!r} in models file {self.settings.models_file} has no path (its folder, relative "
                f"to CHAT_MODELS_DIR {self.settings.models_dir})"
            )
        return self._resolve(entry.path)

    def _resolve(self, path: str | Path) -> Path:
        path = Path(path)
        return path if path.is_absolute() else self.settings.models_dir / path

    def _config(self, model_id: str, path: Path) -> ModelConfig:
        settings = self.settings
        defaults = {"temperature": settings.default_temperature, "top_p": settings.default_top_p}
        return ModelConfig(model_id, path, settings, defaults=defaults, max_tokens=settings.default_max_tokens)

    def _from_entry(self, entry: ManifestEntry, path: Path) -> ModelConfig:
        engine = entry.engine.model_dump(exclude_none=True) if entry.engine is not None else {}
        update = {
            "max_batch_size": engine.get("max_batch_size"),
            "engine_threads": engine.get("threads"),
            "prefix_cache_mb": engine.get("prefix_cache_mb"),
            "max_model_len": entry.context_length,
        }
        settings = self.settings.model_copy(update={k: v for k, v in update.items() if v is not None})
        base = self._config(entry.id, path)
        given = entry.defaults.model_dump(exclude_none=True)
        return ModelConfig(
            entry.id,
            path,
            settings,
            tuple(entry.aliases),
            {**base.defaults, **{name: given[name] for name in FILLED_FIELDS if name in given}},
            given.get("max_tokens", base.max_tokens),
        )
