"""create_app(settings): the embeddings service's FastAPI app; the lifespan loads the models and frees them."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager

from fastapi import FastAPI
from ortserve_common.admin_models import admin_models_router
from ortserve_common.admission import AdmissionController
from ortserve_common.app import create_service_app
from ortserve_common.cpu import log_cpu
from ortserve_common.limits.limiter import key_limiter_for
from ortserve_common.registration import RegistrationClient
from ortserve_common.server import on_drain

from embeddings_service.model_table import EmbeddingModelTable
from embeddings_service.observability import EmbeddingMetrics, EmbeddingTelemetry
from embeddings_service.router import router
from embeddings_service.serving_embeddings import EmbeddingServing
from embeddings_service.serving_rerank import RerankServing
from embeddings_service.settings import EmbedSettings

logger = logging.getLogger(__name__)


def create_app(
    settings: EmbedSettings,
    model_table_factory: Callable[[EmbedSettings], EmbeddingModelTable] = EmbeddingModelTable.load,
) -> FastAPI:
    """`model_table_factory` lets HTTP-layer tests serve fake models; the service itself always loads the real ones."""
    metrics = EmbeddingMetrics()
    key_limiter = key_limiter_for(settings, metrics.registry)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        log_cpu(logger, settings.engine_threads, "EMBED_ENGINE_THREADS")
        models = model_table_factory(settings)
        models.start(on_batch=metrics.observe_batch)
        admission = AdmissionController(settings.max_concurrency, settings.max_queue, settings.queue_timeout_s)
        metrics.track_admission(admission)
        telemetry = EmbeddingTelemetry(metrics)
        app.state.settings = settings
        app.state.models = models
        app.state.model_host = models
        app.state.embedding_serving = EmbeddingServing(models, admission, settings, telemetry)
        app.state.rerank_serving = RerankServing(models, admission, settings, telemetry)
        logger.info("serving %s", ", ".join(f"{m.id} ({m.kind})" for m in models.models.values()))
        registration = RegistrationClient(
            settings.registry_url, "embeddings", settings.public_url(), models.registrations, node=settings.node
        )
        app.state.registration = registration
        await registration.start()
        on_drain(app, registration.stop)  # leave the registry as soon as a drain starts, not at its end
        try:
            yield
        finally:
            app.state.models = None
            await registration.stop()
            await models.close()
            await key_limiter.store.close()

    return create_service_app(
        "ortserve embeddings",
        lifespan,
        [router, admin_models_router],
        is_ready=lambda app: getattr(app.state, "models", None) is not None,
        service_name="ortserve-embeddings",
        metrics=metrics,
        key_limiter=key_limiter,
    )
