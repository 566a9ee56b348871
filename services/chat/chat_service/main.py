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
from ortserve_common.registration import RegistrationClient
from ortserve_common.server import on_drain

from chat_service.api.conversations import conversations_router
from chat_service.api.inference import router
from chat_service.api.messages import messages_router
from chat_service.api.responses import responses_router
from chat_service.api.templates import templates_router
from chat_service.conversations.serving import ConversationServing
from chat_service.conversations.store.conversations import ConversationStore
from chat_service.conversations.store.database import open_database
from chat_service.conversations.store.responses import ResponseStore
from chat_service.conversations.store.templates import PromptTemplateStore
from chat_service.messages.serving import MessagesServing
from chat_service.models.catalog import ModelCatalog
from chat_service.models.pool import EngineFactory, ModelPool, load_engine
from chat_service.responses.serving import ResponsesServing
from chat_service.serving.chat import ChatServing
from chat_service.serving.chat_context import ChatContext
from chat_service.serving.completions import CompletionServing
from chat_service.serving.observability import ChatMetrics, GenerationTelemetry
from chat_service.serving.templates import PromptTemplateServing
from chat_service.serving.tokenize import TokenizeServing
from chat_service.settings import ChatSettings

logger = logging.getLogger(__name__)


def create_app(settings: ChatSettings, engine_factory: EngineFactory = load_engine) -> FastAPI:
    """`engine_factory` lets HTTP-layer tests run a fake engine; the service itself always loads the real one."""
    metrics = ChatMetrics()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        log_cpu(logger, settings.engine_threads, "CHAT_ENGINE_THREADS")
        database = await to_thread.run_sync(open_database, settings.data_dir, settings.database_url)
        conversations = ConversationServing(ConversationStore(database))
        templates = PromptTemplateServing(PromptTemplateStore(database))
        catalog = ModelCatalog(settings)
        pool = ModelPool(catalog, engine_factory)
        for config in catalog.startup():
            await pool.load(config)
        metrics.track_admission(pool)  # each model admits its own requests; the service-wide gauges sum them
        metrics.track_engines(pool)
        telemetry = GenerationTelemetry(metrics, settings.trace_content)
        app.state.settings = settings
        app.state.pool = pool
        app.state.model_host = pool
        context = ChatContext(conversations, templates, settings.conversation_reserve_tokens)
        chat_serving = ChatServing(pool, settings, telemetry, context=context)
        app.state.chat_serving = chat_serving
        app.state.responses_serving = ResponsesServing(
            chat_serving, ResponseStore(database), conversations, settings.conversation_reserve_tokens
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

    return create_service_app(
        "ortserve chat",
        lifespan,
        [router, admin_models_router, conversations_router, responses_router, messages_router, templates_router],
        is_ready=lambda app: getattr(app.state, "ready", False) and len(app.state.pool) > 0,
        service_name="ortserve-chat",
        metrics=metrics,
    )
