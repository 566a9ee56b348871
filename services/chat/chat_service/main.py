"""create_app(settings): the chat service's FastAPI app; the lifespan loads the models and frees them."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from anyio import to_thread
from fastapi import FastAPI
from ortserve_common.admin_models import admin_models_router
from ortserve_common.app import create_service_app
from ortserve_common.cpu import log_cpu
from ortserve_common.limits.limiter import key_limiter_for
from ortserve_common.malloc import tune_malloc
from ortserve_common.registration import RegistrationClient
from ortserve_common.server import on_drain

from chat_service.api.conversations import conversations_router
from chat_service.api.inference import router
from chat_service.api.messages import anthropic_error, messages_router
from chat_service.api.responses import responses_router
from chat_service.api.templates import templates_router
from chat_service.conversations.serving import ConversationServing
from chat_service.conversations.store.conversations import ConversationStore
from chat_service.conversations.store.database import open_database
from chat_service.conversations.store.responses import ResponseStore
from chat_service.conversations.store.templates import PromptTemplateStore
from chat_service.engine.config import EngineConfig
from chat_service.messages.serving import MessagesServing
from chat_service.models.catalog import ModelCatalog
from chat_service.models.pool import EngineFactory, ModelPool, load_engine
from chat_service.responses.compaction import CompactionServing
from chat_service.responses.serving import ResponsesServing
from chat_service.serving.chat import ChatServing
from chat_service.serving.chat_context import ChatContext
from chat_service.serving.completions import CompletionServing
from chat_service.serving.generation_telemetry import GenerationTelemetry
from chat_service.serving.observability import ChatMetrics
from chat_service.serving.templates import PromptTemplateServing
from chat_service.serving.tokenize import TokenizeServing
from chat_service.settings import ChatSettings
from chat_service.vision.images import ImageLimits
from chat_service.vision.ocr import RapidOcrReader
from chat_service.vision.reading import ImageReading

logger = logging.getLogger(__name__)


def image_reading(settings: ChatSettings) -> ImageReading:
    reader = None
    if settings.ocr != "off":
        reader = RapidOcrReader(settings.ocr_threads, settings.ocr_max_side, settings.ocr_min_score)
    limits = ImageLimits(
        settings.image_max_bytes, settings.image_max_pixels, settings.image_fetch_remote, settings.image_fetch_timeout_s
    )
    return ImageReading(reader, limits, settings.images_per_request, settings.ocr_max_concurrent)


def create_app(settings: ChatSettings, engine_factory: EngineFactory = load_engine) -> FastAPI:
    """`engine_factory` lets HTTP-layer tests run a fake engine; the service itself always loads the real one."""
    metrics = ChatMetrics()
    key_limiter = key_limiter_for(settings, metrics.registry)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        log_cpu(logger, settings.engine_threads, "CHAT_ENGINE_THREADS")
        spinning = EngineConfig.from_settings(settings).spinning  # what every model's session gets
        logger.info(
            "onnxruntime intra-op threads wait for work (CHAT_ENGINE_SPIN, CHAT_ENGINE_SPIN_US, "
            "CHAT_ENGINE_DYNAMIC_BLOCK_BASE): %s",
            spinning.describe(),
            extra={"engine_spin": spinning.config_entries()},
        )
        # Before the models load: the thresholds govern the allocations that follow.
        malloc = tune_malloc(
            settings.malloc_mmap_threshold_kb, settings.malloc_trim_threshold_kb, logger, settings.malloc_arena_max
        )
        logger.info(
            "glibc malloc thresholds and arenas (CHAT_MALLOC_MMAP_THRESHOLD_KB, CHAT_MALLOC_TRIM_THRESHOLD_KB, "
            "CHAT_MALLOC_ARENA_MAX): %s",
            malloc or "glibc's own",
            extra={"malloc": malloc},
        )
        database = await to_thread.run_sync(open_database, settings.data_dir, settings.database_url)
        conversations = ConversationServing(ConversationStore(database))
        templates = PromptTemplateServing(PromptTemplateStore(database))
        images = image_reading(settings)
        if settings.ocr == "startup" and images.reader is not None:
            await to_thread.run_sync(images.reader.load)
        catalog = ModelCatalog(settings)
        pool = ModelPool(catalog, engine_factory, images.capabilities or None)
        for config in catalog.startup():
            await pool.load(config)
        metrics.track_admission(pool)  # each model admits its own requests; the service-wide gauges sum them
        metrics.track_engines(pool)
        telemetry = GenerationTelemetry(metrics, settings.trace_content)
        app.state.settings = settings
        app.state.pool = pool
        app.state.model_host = pool
        context = ChatContext(conversations, templates, settings.conversation_reserve_tokens)
        chat_serving = ChatServing(pool, settings, telemetry, context=context, images=images)
        app.state.chat_serving = chat_serving
        responses = ResponsesServing(
            chat_serving, ResponseStore(database), conversations, settings.conversation_reserve_tokens
        )
        app.state.responses_serving = responses
        app.state.compaction_serving = CompactionServing(
            responses, settings.compact_keep_tokens, settings.compact_summary_tokens
        )
        app.state.messages_serving = MessagesServing(chat_serving)
        app.state.conversation_serving = conversations
        app.state.template_serving = templates
        app.state.completion_serving = CompletionServing(pool, settings, telemetry)
        app.state.tokenize_serving = TokenizeServing(pool)
        registration = RegistrationClient(
            settings.registry_url, "chat", settings.public_url(), pool.registrations, node=settings.node
        )
        app.state.registration = registration
        await registration.start()
        on_drain(app, registration.stop)  # leave the registry as soon as a drain starts, not at its end
        app.state.ready = True
        try:
            yield
        finally:
            app.state.ready = False
            await registration.stop()
            await pool.close()
            database.dispose()
            await key_limiter.store.close()

    return create_service_app(
        "ortserve chat",
        lifespan,
        [router, admin_models_router, conversations_router, responses_router, messages_router, templates_router],
        is_ready=lambda app: getattr(app.state, "ready", False) and len(app.state.pool) > 0,
        service_name="ortserve-chat",
        metrics=metrics,
        key_limiter=key_limiter,
        error_renderers={"/v1/messages": anthropic_error},
    )
