"""create_app(settings): the registry's FastAPI app; the lifespan reads the manifest and the keys, and opens the
HTTP client that forwards loads and unloads."""

from __future__ import annotations

import logging
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager

import httpx
from fastapi import FastAPI
from ortserve_common.app import create_service_app
from ortserve_common.limits.store import LimitsStore
from ortserve_common.model_manifest import load_manifest
from ortserve_common.telemetry import trace_httpx

from models_service import admin_router, internal_router, router
from models_service.keys import KeyStore
from models_service.load_forwarding import LoadForwarder
from models_service.registry import ModelRegistry
from models_service.settings import ModelsSettings

logger = logging.getLogger(__name__)


def create_app(settings: ModelsSettings, clock: Callable[[], float] = time.monotonic) -> FastAPI:
    """`clock` is the registry's (heartbeat ages and TTLs): a test passes its own to move time on without waiting."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        manifest = load_manifest(settings.manifest)
        key_store = KeyStore(settings.data_dir)
        key_store.seed(settings.api_keys)
        registry = ModelRegistry(manifest, forget_after_s=settings.forget_after_s, clock=clock)
        admin_key = settings.admin_key.get_secret_value() if settings.admin_key else None
        # trust_env=False: instances are reached directly inside the stack, never through an outbound proxy.
        limits_store = LimitsStore(settings.limits_store_url, settings.limits_store_timeout_s)
        async with httpx.AsyncClient(timeout=settings.forward_timeout_s, trust_env=False) as client:
            trace_httpx(client)  # forwarded loads join the admin request's trace
            app.state.settings = settings
            app.state.registry = registry
            app.state.key_store = key_store
            app.state.load_forwarder = LoadForwarder(registry, client, admin_key)
            app.state.limits_store = limits_store
            logger.info(
                "registry up: manifest %s (%d models), %d API keys in %s, admin API %s",
                settings.manifest,
                len(manifest.models),
                len(key_store.records()),
                key_store.path,
                "enabled" if admin_key else "disabled",
            )
            try:
                yield
            finally:
                app.state.registry = None
                await limits_store.close()

    return create_service_app(
        "ortserve models",
        lifespan,
        [router.router, internal_router.router, admin_router.router],
        is_ready=lambda app: getattr(app.state, "registry", None) is not None,
        service_name="ortserve-models",
    )
