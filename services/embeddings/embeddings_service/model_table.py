"""The served models by id: each id's engine, batcher and prefix policy (several ids may share one engine)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from ortserve_common.cpu import engine_threads
from ortserve_common.errors import OpenAIError, invalid_request, model_not_found
from ortserve_common.protocol.admin import ModelLoadRequest
from ortserve_common.protocol.embeddings import EmbeddingModelCard
from pydantic import ValidationError

from embeddings_service.batcher import EmbeddingBatcher
from embeddings_service.engine.loader import LoadedModel, ModelLoader
from embeddings_service.engine.tokenizer import ModelTokenizer
from embeddings_service.engine.types import EngineLoadError, ModelKind
from embeddings_service.prefixes import PrefixPolicy
from embeddings_service.settings import EmbedSettings, ModelEntry

logger = logging.getLogger(__name__)


@dataclass
class ServedModel:
    id: str
    loaded: LoadedModel
    batcher: EmbeddingBatcher
    prefixes: PrefixPolicy

    @property
    def kind(self) -> ModelKind:
        return self.loaded.kind

    @property
    def tokenizer(self) -> ModelTokenizer:
        return self.loaded.tokenizer

    @property
    def max_length(self) -> int:
        return self.loaded.max_length

    @property
    def dimensions(self) -> int | None:
        return self.loaded.dimensions

    def card(self) -> EmbeddingModelCard:
        if self.kind == "rerank":
            endpoints, method = ["/v1/rerank"], "cross-encoder"
        else:
            endpoints, method = ["/v1/embeddings", "/v1/rerank"], "bi-encoder-cosine"
        if self.loaded.unsupported_reason:
            endpoints = []
        return EmbeddingModelCard(
            id=self.id,
            kind=self.kind,
            dimensions=self.dimensions,
            max_input_tokens=self.max_length,
            endpoints=endpoints,
            rerank_method=method,
            input_types=sorted(t for t, prefix in self.prefixes.table.items() if prefix),
            unsupported_reason=self.loaded.unsupported_reason,
        )


class EmbeddingModelTable:
    def __init__(self, settings: EmbedSettings, loader: ModelLoader) -> None:
        self.models: dict[str, ServedModel] = {}
        self._settings = settings
        self._loader = loader
        self._batchers: dict[int, EmbeddingBatcher] = {}  # by id() of the loaded engine they drive
        self._started = False
        self._lock = asyncio.Lock()
        self._on_batch: Callable[[str, int, float], None] | None = None

    @classmethod
    def load(cls, settings: EmbedSettings, loader: ModelLoader | None = None) -> EmbeddingModelTable:
        """Load every configured model (blocking; the lifespan runs it before the port opens)."""
        registry = cls(settings, loader or ModelLoader(engine_threads(settings.engine_threads)))
        try:
            for entry in settings.models:
                registry._serve(entry, registry._loader.load(entry.path, entry.kind, entry.max_length))
        except BaseException:
            registry._loader.close()
            raise
        return registry

    def _serve(self, entry: ModelEntry, loaded: LoadedModel) -> ServedModel:
        """Serve a loaded engine under an id (on the event loop: a new batcher starts its task there)."""
        batcher = self._batchers.get(id(loaded))
        if batcher is None:
            batcher = EmbeddingBatcher(
                entry.id, loaded.model, self._settings.max_batch_size, self._settings.max_wait_ms / 1000
            )
            self._batchers[id(loaded)] = batcher
            batcher.on_batch = self._on_batch
            if self._started:
                batcher.start()
        # The entry's own table wins; left out, the folder's (e5 names its query: / passage: prefixes itself).
        table = entry.prefix_table() if entry.prefixes is not None else dict(loaded.prefixes)
        policy = PrefixPolicy(table, entry.instruction_template)
        served = self.models[entry.id] = ServedModel(entry.id, loaded, batcher, policy)
        logger.info(
            "loaded %s (%s) from %s: max %d tokens, %s dimensions%s",
            entry.id,
            loaded.kind,
            entry.path,
            loaded.max_length,
            loaded.dimensions,
            f"; unusable: {loaded.unsupported_reason}" if loaded.unsupported_reason else "",
        )
        return served

    async def add(self, entry: ModelEntry) -> ServedModel:
        """Load one more model at runtime (the admin API), off the event loop."""
        async with self._lock:
            if entry.id in self.models:
                raise OpenAIError(409, f"Model '{entry.id}' is already loaded.", param="id", code="model_exists")
            try:
                loaded = await asyncio.to_thread(self._loader.load, entry.path, entry.kind, entry.max_length)
            except EngineLoadError as exc:
                raise OpenAIError(400, str(exc), param="path", code="model_load_failed") from exc
            return self._serve(entry, loaded)

    # The admin API (ortserve_common.admin_models) ----------------------------------------------------------------
    async def load_model(self, request: ModelLoadRequest) -> None:
        try:
            entry = self._settings.entry_for(request.id, request.path, request.kind)
        except ValidationError as exc:
            raise invalid_request(f"Cannot serve this model: {exc.errors()[0]['msg']}", "kind") from exc
        await self.add(entry)

    async def unload_model(self, model_id: str, announce: Callable[[], Awaitable[object]]) -> None:
        await self.remove(model_id, announce)

    async def remove(self, model_id: str, announce: Callable[[], Awaitable[object]] | None = None) -> None:
        """Stop serving an id (and `announce` it); its engine and batcher go too unless another id shares them."""
        async with self._lock:
            served = self.models.pop(model_id, None)
            if served is None:
                raise model_not_found(model_id)
            shared = any(other.loaded is served.loaded for other in self.models.values())
            batcher = None if shared else self._batchers.pop(id(served.loaded))
        if announce is not None:
            await announce()
        if batcher is None:
            return
        await batcher.close()  # finishes the batches already queued
        self._loader.release(served.loaded)
        logger.info("unloaded %s", model_id)

    def start(self, on_batch: Callable[[str, int, float], None] | None = None) -> None:
        """Start the batchers; `on_batch` is told of every model run, by these and by models loaded later."""
        self._started = True
        self._on_batch = on_batch
        for batcher in self._batchers.values():
            batcher.on_batch = on_batch
            batcher.start()

    async def close(self) -> None:
        for batcher in self._batchers.values():
            await batcher.close()
        self._loader.close()

    def get(self, model_id: str) -> ServedModel:
        model = self.models.get(model_id)
        if model is None:
            raise model_not_found(model_id)
        return model

    def cards(self) -> list[EmbeddingModelCard]:
        return [model.card() for model in self.models.values()]

    def registrations(self) -> list[dict[str, Any]]:
        """What the model registry is told this instance serves (it knows embedding and rerank kinds)."""
        return [
            {"id": m.id, "kind": "rerank" if m.kind == "rerank" else "embedding", "context_length": m.max_length}
            for m in self.models.values()
            if not m.loaded.unsupported_reason
        ]
