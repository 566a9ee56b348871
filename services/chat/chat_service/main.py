"""create_app(settings): the chat service's FastAPI app; the lifespan loads the engine and frees it."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager

from fastapi import FastAPI
from ortserve_common.admission import AdmissionController
from ortserve_common.app import create_service_app

from chat_service.engine.ort_genai import OrtGenAIEngine
from chat_service.router import router
from chat_service.serving_chat import ChatServing
from chat_service.serving_completions import CompletionServing
from chat_service.settings import ChatSettings

logger = logging.getLogger(__name__)


def load_engine(settings: ChatSettings) -> OrtGenAIEngine:
    return OrtGenAIEngine(
        settings.model_path, settings.engine_threads, settings.max_model_len, settings.max_concurrency
    )


def create_app(
    settings: ChatSettings, engine_factory: Callable[[ChatSettings], OrtGenAIEngine] = load_engine
) -> FastAPI:
    """`engine_factory` lets HTTP-layer tests run a fake engine; the service itself always loads the real one."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        engine = engine_factory(settings)
        logger.info(
            "loaded %s from %s (context %d tokens)", settings.model_id, settings.model_path, engine.context_length
        )
        admission = AdmissionController(settings.max_concurrency, settings.max_queue, settings.queue_timeout_s)
        app.state.settings = settings
        app.state.engine = engine
        app.state.admission = admission
        app.state.chat_serving = ChatServing(engine, admission, settings)
        app.state.completion_serving = CompletionServing(engine, admission, settings)
        try:
            yield
        finally:
            engine.close()
            app.state.engine = None

    return create_service_app(
        "ortserve chat",
        lifespan,
        [router],
        is_ready=lambda app: getattr(app.state, "engine", None) is not None,
    )
