"""The served models by id: each id's engine, batcher and prefix policy (several ids may share one engine)."""

from __future__ import annotations

import logging
from dataclasses import dataclass

from ortserve_common.errors import model_not_found
from ortserve_common.protocol.embeddings import EmbeddingModelCard

from embeddings_service.batcher import EmbeddingBatcher
from embeddings_service.engine.loader import LoadedModel, ModelLoader
from embeddings_service.engine.tokenizer import ModelTokenizer
from embeddings_service.engine.types import ModelKind
from embeddings_service.prefixes import PrefixPolicy
from embeddings_service.settings import EmbedSettings

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


class ModelRegistry:
    def __init__(self, models: dict[str, ServedModel], loader: ModelLoader, batchers: list[EmbeddingBatcher]) -> None:
        self.models = models
        self._loader = loader
        self._batchers = batchers

    @classmethod
    def load(cls, settings: EmbedSettings) -> ModelRegistry:
        """Load every configured model (blocking; the lifespan runs it before the port opens)."""
        loader = ModelLoader(settings.engine_threads)
        batchers: dict[int, EmbeddingBatcher] = {}
        models: dict[str, ServedModel] = {}
        try:
            for entry in settings.models:
                loaded = loader.load(entry.path, entry.kind, entry.max_length)
                if id(loaded) not in batchers:
                    batchers[id(loaded)] = EmbeddingBatcher(
                        entry.id, loaded.model, settings.max_batch_size, settings.max_wait_ms / 1000
                    )
                policy = PrefixPolicy(entry.prefix_table(), entry.instruction_template)
                models[entry.id] = ServedModel(entry.id, loaded, batchers[id(loaded)], policy)
                logger.info(
                    "loaded %s (%s) from %s: max %d tokens, %s dimensions%s",
                    entry.id,
                    loaded.kind,
                    entry.path,
                    loaded.max_length,
                    loaded.dimensions,
                    f"; unusable: {loaded.unsupported_reason}" if loaded.unsupported_reason else "",
                )
        except BaseException:
            loader.close()
            raise
        return cls(models, loader, list(batchers.values()))

    def start(self) -> None:
        for batcher in self._batchers:
            batcher.start()

    async def close(self) -> None:
        for batcher in self._batchers:
            await batcher.close()
        self._loader.close()

    def get(self, model_id: str) -> ServedModel:
        model = self.models.get(model_id)
        if model is None:
            raise model_not_found(model_id)
        return model

    def cards(self) -> list[EmbeddingModelCard]:
        return [model.card() for model in self.models.values()]
