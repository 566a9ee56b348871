"""create_app(settings): the embeddings service's FastAPI app; the lifespan loads the models and frees them."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager

from fastapi import FastAPI
from ortserve_common.admission import AdmissionController
from ortserve_common.app import create_service_app
from ortserve_common.registration import RegistryClient
from ortserve_common.server import on_drain

from embeddings_service.admin_router import admin_router
from embeddings_service.observability import EmbeddingMetrics, EmbeddingTelemetry
from embeddings_service.registry import ModelRegistry
from embeddings_service.router import router
from embeddings_service.serving_embeddings import EmbeddingServing
from embeddings_service.serving_rerank import RerankServing
from embeddings_service.settings import EmbedSettings

logger = logging.getLogger(__name__)


def create_app(
    settings: EmbedSettings, registry_factory: Callable[[EmbedSettings], ModelRegistry] = ModelRegistry.load
) -> FastAPI:
    """`registry_factory` lets HTTP-layer tests serve fake models; the service itself always loads the real ones."""
    metrics = EmbeddingMetrics()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        registry = registry_factory(settings)
        registry.start(on_batch=metrics.observe_batch)
        admission = AdmissionController(settings.max_concurrency, settings.max_queue, settings.queue_timeout_s)
        metrics.track_admission(admission)
        telemetry = EmbeddingTelemetry(metrics)
        app.state.settings = settings
        app.state.registry = registry
        app.state.embedding_serving = EmbeddingServing(registry, admission, settings, telemetry)
        app.state.rerank_serving = RerankServing(registry, admission, settings, telemetry)
        logger.info("serving %s", ", ".join(f"{m.id} ({m.kind})" for m in registry.models.values()))
        registry_client = RegistryClient(
            settings.registry_url, "embeddings", settings.public_url(), registry.registrations
        )
        app.state.registry_client = registry_client
        await registry_client.start()
        on_drain(app, registry_client.stop)  # leave the registry as soon as a drain starts, not at its end
        try:
            yield
        finally:
            app.state.registry = None
            await registry_client.stop()
            await registry.close()

    return create_service_app(
        "ortserve embeddings",
        lifespan,
        [router, admin_router],
        is_ready=lambda app: getattr(app.state, "registry", None) is not None,
        service_name="ortserve-embeddings",
        metrics=metrics,
    )
