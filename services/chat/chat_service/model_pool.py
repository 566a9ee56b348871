"""The models this chat service hosts, by id: loaded at startup, and loaded or unloaded at runtime by the admin API."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from ortserve_common.errors import OpenAIError, invalid_request, model_not_found
from ortserve_common.protocol.admin import ModelLoadRequest
from ortserve_common.protocol.common import ModelCard

from chat_service.engine.continuous import ContinuousBatchingEngine
from chat_service.engine.ort_genai import OrtGenAIEngine
from chat_service.engine.protocol import ChatEngine
from chat_service.engine.types import EngineLoadError
from chat_service.settings import ChatSettings

logger = logging.getLogger(__name__)

EngineFactory = Callable[[Path, ChatSettings], ChatEngine]


def load_engine(path: Path, settings: ChatSettings) -> ChatEngine:
    engine = OrtGenAIEngine(path, settings.engine_threads, settings.max_model_len, settings.max_concurrency)
    if settings.engine == "generator":
        return engine
    try:
        return ContinuousBatchingEngine(
            engine,
            settings.engine_threads,
            settings.max_batch_size,
            settings.batch_wait_ms,
            prefix_cache_bytes=settings.prefix_cache_mb * 2**20,
            prefix_block_tokens=settings.prefix_block_tokens,
            prefills_per_step=settings.max_prefills_per_step,
            refill_wait_ms=settings.refill_wait_ms,
            capped=settings.max_model_len is not None,
        )
    except EngineLoadError as exc:
        logger.warning("continuous batching unavailable, one generator per request instead: %s", exc)
        return engine


class ModelPool:
    def __init__(self, settings: ChatSettings, factory: EngineFactory = load_engine) -> None:
        self._settings = settings
        self._factory = factory
        self._engines: dict[str, ChatEngine] = {}
        self._lock = asyncio.Lock()

    def get(self, model_id: str) -> ChatEngine:
        engine = self._engines.get(model_id)
        if engine is None:
            raise model_not_found(model_id)
        return engine

    def __len__(self) -> int:
        return len(self._engines)

    def cards(self) -> list[ModelCard]:
        return [ModelCard(id=model_id) for model_id in self._engines]

    def registrations(self) -> list[dict[str, Any]]:
        """What the registry is told this instance serves."""
        return [
            {"id": model_id, "kind": "chat", "context_length": engine.context_length}
            for model_id, engine in self._engines.items()
        ]

    async def load(self, model_id: str, path: Path) -> None:
        async with self._lock:
            if model_id in self._engines:
                raise OpenAIError(409, f"Model '{model_id}' is already loaded.", param="id", code="model_exists")
            try:
                # Loading reads hundreds of MB: keep the event loop (and the other models' streams) going meanwhile.
                engine = await asyncio.to_thread(self._factory, path, self._settings)
            except EngineLoadError as exc:
                raise OpenAIError(400, str(exc), param="path", code="model_load_failed") from exc
            self._engines[model_id] = engine
        logger.info("loaded %s from %s (context %d tokens)", model_id, path, engine.context_length)

    # The admin API (ortserve_common.admin_models) ----------------------------------------------------------------
    async def load_model(self, request: ModelLoadRequest) -> None:
        if request.kind not in (None, "chat"):
            raise invalid_request(f"This chat service hosts chat models, not {request.kind!r}.", "kind")
        await self.load(request.id, Path(request.path))

    async def unload_model(self, model_id: str, announce: Callable[[], Awaitable[object]]) -> None:
        engine = await self.remove(model_id)
        await announce()  # the registry stops routing the model here before its streams are waited for
        await self.retire(model_id, engine)

    async def remove(self, model_id: str) -> ChatEngine:
        """Stop serving the model at once (new requests for it get 404) and hand back its engine for `retire`."""
        async with self._lock:
            engine = self._engines.pop(model_id, None)
        if engine is None:
            raise model_not_found(model_id)
        return engine

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
        for model_id in list(self._engines):
            await self.retire(model_id, await self.remove(model_id), grace_s=0)
