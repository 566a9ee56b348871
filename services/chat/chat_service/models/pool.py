"""The models this chat service hosts, by id and alias: loaded at startup, and loaded or unloaded at runtime by the
admin API. Each has its own engine (its own KV slots, context and threads) and its own sampling defaults."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ortserve_common.admission import AdmissionController
from ortserve_common.cpu import engine_threads
from ortserve_common.errors import OpenAIError, invalid_request, model_not_found
from ortserve_common.protocol.admin import ModelLoadRequest
from ortserve_common.protocol.common import ModelCard

from chat_service.engine.batched.engine import BatchedEngine
from chat_service.engine.config import EngineConfig
from chat_service.engine.generator import GeneratorEngine
from chat_service.engine.model_folder import ModelFolder
from chat_service.engine.protocol import ChatEngine
from chat_service.engine.types import EngineLoadError
from chat_service.models.catalog import ModelCatalog, ModelConfig
from chat_service.settings import ChatSettings

logger = logging.getLogger(__name__)

EngineFactory = Callable[[Path, ChatSettings], ChatEngine]


def load_engine(path: Path, settings: ChatSettings) -> ChatEngine:
    """`settings` are the model's own (ModelConfig.settings): its engine, slots, context and threads. The batched
    engine refuses a graph it cannot run (EngineLoadError naming the file and what does not fit) before it reads any
    weights; only CHAT_ENGINE=auto then serves the model on the generator engine, and says so."""
    config = EngineConfig.from_settings(settings)
    folder = ModelFolder(path, config.max_model_len)  # a folder that is not a model folder stops here
    if config.engine == "generator":
        return GeneratorEngine(folder, config)
    try:
        return BatchedEngine(folder, config)
    except EngineLoadError as exc:
        if config.engine != "auto":
            raise
        logger.warning("%s; CHAT_ENGINE=auto serves it on the generator engine", exc)
        return GeneratorEngine(folder, config)


@dataclass(frozen=True)
class ServedModel:
    config: ModelConfig
    engine: ChatEngine
    admission: AdmissionController  # this model's requests running and queued (its own slots)

    @property
    def id(self) -> str:
        return self.config.id


class ModelPool:
    def __init__(
        self, catalog: ModelCatalog, factory: EngineFactory = load_engine, capabilities: list[str] | None = None
    ) -> None:
        self._catalog = catalog
        self.capabilities = capabilities  # what every model here takes beyond text (["ocr"]: images), for the cards
        self._settings = catalog.settings
        self._factory = factory
        self._models: dict[str, ServedModel] = {}
        self._names: dict[str, str] = {}  # id or alias → id
        self._lock = asyncio.Lock()

    def model(self, name: str) -> ServedModel:
        """The model served under `name`, its id or an alias; 404 model_not_found if none."""
        model_id = self._names.get(name)
        if model_id is None:
            raise model_not_found(name)
        return self._models[model_id]

    def first(self) -> ServedModel:
        """The model that requests naming none are for (/tokenize): the first one loaded and still served."""
        if not self._models:
            raise model_not_found("")
        return next(iter(self._models.values()))

    def __len__(self) -> int:
        return len(self._models)

    def models(self) -> list[ServedModel]:
        return list(self._models.values())

    def cards(self) -> list[ModelCard]:
        return [self.card(model.id) for model in self._models.values()]

    def card(self, name: str) -> ModelCard:
        model = self.model(name)  # asked by an alias, the card names the model
        return ModelCard(id=model.id, engine=model.engine.name, capabilities=self.capabilities)

    # Service-wide admission counts (the ortserve_requests_running/waiting gauges): every model's, summed.
    @property
    def running(self) -> int:
        return sum(model.admission.running for model in self.models())

    @property
    def waiting(self) -> int:
        return sum(model.admission.waiting for model in self.models())

    def registrations(self) -> list[dict[str, Any]]:
        """What the registry is told this instance serves (by id: the registry knows aliases from its manifest)."""
        return [
            {
                "id": model_id,
                "kind": "chat",
                "context_length": model.engine.context_length,
                "engine": model.engine.name,
                "capabilities": self.capabilities,
            }
            for model_id, model in self._models.items()
        ]

    async def load(self, config: ModelConfig) -> None:
        async with self._lock:
            taken = next((name for name in config.names if name in self._names), None)
            if taken is not None:
                owner = self._names[taken]
                message = (
                    f"Model '{config.id}' is already loaded."
                    if owner == config.id
                    else f"Model '{config.id}' cannot be loaded: '{taken}' already names loaded model '{owner}'."
                )
                raise OpenAIError(409, message, param="id", code="model_exists")
            try:
                # Loading reads hundreds of MB: keep the event loop (and the other models' streams) going meanwhile.
                engine = await asyncio.to_thread(self._factory, config.path, config.settings)
            except EngineLoadError as exc:
                raise OpenAIError(400, str(exc), param="path", code="model_load_failed") from exc
            settings = config.settings
            admission = AdmissionController(
                settings.max_concurrency,
                settings.max_queue,
                settings.queue_timeout_s,
                settings.interactive_reserved_slots,
            )
            self._models[config.id] = ServedModel(config, engine, admission)
            self._names.update(dict.fromkeys(config.names, config.id))
        batched = engine.name == "batched"
        logger.info(
            "loaded %s%s from %s: %s engine, context %d tokens, %d %s, %d threads, %d requests at once, defaults %s",
            config.id,
            f" (aliases {', '.join(config.aliases)})" if config.aliases else "",
            config.path,
            engine.name,
            engine.context_length,
            settings.max_batch_size if batched else settings.max_concurrency,
            "KV slots" if batched else "workers",
            engine_threads(settings.engine_threads),
            settings.max_concurrency,
            {**config.defaults, "max_tokens": config.max_tokens},
        )

    # The admin API (ortserve_common.admin_models) ----------------------------------------------------------------
    async def load_model(self, request: ModelLoadRequest) -> None:
        if request.kind not in (None, "chat"):
            raise invalid_request(f"This chat service hosts chat models, not {request.kind!r}.", "kind")
        await self.load(self._catalog.for_load(request.id, request.path))

    async def unload_model(self, model_id: str, announce: Callable[[], Awaitable[object]]) -> None:
        engine = await self.remove(model_id)
        await announce()  # the registry stops routing the model here before its streams are waited for
        await self.retire(model_id, engine)

    async def remove(self, name: str) -> ChatEngine:
        """Stop serving the model at once (new requests for it get 404) and hand back its engine for `retire`."""
        async with self._lock:
            model = self.model(name)
            del self._models[model.id]
            for alias in model.config.names:
                del self._names[alias]
        return model.engine

    async def retire(self, model_id: str, engine: ChatEngine, grace_s: float | None = None) -> None:
        """Give the generations running on a removed engine `grace_s` (the setting unload_grace_s by default) to
        finish, then close it: those still running end with a model_unloaded error."""
        grace_s = self._settings.unload_grace_s if grace_s is None else grace_s
        if not await engine.in_flight.wait_idle(grace_s):
            logger.warning(
                "unloading %s: %d generation(s) still running after %.1f s are ended",
                model_id,
                engine.in_flight.count,
                grace_s,
            )
        await asyncio.to_thread(engine.close)
        logger.info("unloaded %s", model_id)

    async def close(self) -> None:
        # At shutdown the server has already drained its streams: nothing is left to wait for.
        for model_id in list(self._models):
            await self.retire(model_id, await self.remove(model_id), grace_s=0)
