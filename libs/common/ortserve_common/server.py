"""serve(app, host, port): uvicorn with a graceful drain that every service shares.

On SIGTERM (or Ctrl-C) the service stops accepting connections at once, reports not ready on /ready, runs its drain
hooks (the registry deregistration, so /v1/models stops listing it while its last streams finish), and only then
waits, up to `graceful_timeout_s`, for the requests in flight to end before the lifespan shutdown frees the models.
Plain uvicorn would keep heartbeating to the registry through the whole drain, and deregister only at its end.
"""

from __future__ import annotations

import asyncio
import logging
import socket
from collections.abc import Awaitable, Callable
from typing import TypeVar

import uvicorn
from fastapi import FastAPI

from ortserve_common.settings import ServiceSettings

logger = logging.getLogger(__name__)

DrainHook = Callable[[], Awaitable[object]]
S = TypeVar("S", bound=ServiceSettings)
DRAIN_HOOK_TIMEOUT_S = 3.0


def on_drain(app: FastAPI, hook: DrainHook) -> None:
    """Run `hook` when a drain starts (before the requests in flight end); it may run again in the lifespan's own
    shutdown, so it must be idempotent."""
    if not hasattr(app.state, "drain_hooks"):
        app.state.drain_hooks = []
    app.state.drain_hooks.append(hook)


def is_draining(app: FastAPI) -> bool:
    return bool(getattr(app.state, "draining", False))


class DrainingServer(uvicorn.Server):
    def __init__(self, config: uvicorn.Config, app: FastAPI) -> None:
        super().__init__(config)
        self.app = app

    async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
        self.app.state.draining = True
        for server in self.servers:
            server.close()  # no new connections from here on; uvicorn's own shutdown closes them again (a no-op)
        open_connections = len(self.server_state.connections)
        logger.info("draining: no new connections; %d open, finishing their requests", open_connections)
        for hook in getattr(self.app.state, "drain_hooks", []):
            try:
                await asyncio.wait_for(hook(), DRAIN_HOOK_TIMEOUT_S)
            except Exception:  # a failed hook must not cut the drain short
                logger.exception("drain hook %r failed", hook)
        await super().shutdown(sockets)
        logger.info("drained")


def serve(app: FastAPI, host: str, port: int, graceful_timeout_s: float = 30) -> None:
    # uvicorn annotates the timeout as int but hands it to asyncio.wait_for, which takes fractions of a second too.
    config = uvicorn.Config(
        app,
        host=host,
        port=port,
        log_config=None,
        timeout_graceful_shutdown=graceful_timeout_s,  # type: ignore[arg-type]
    )
    DrainingServer(config, app).run()


def run_service(
    service: str,
    settings_class: type[S],
    precheck: Callable[[S], None],
    create_app: Callable[[S], FastAPI],
    expected_errors: tuple[type[Exception], ...],
) -> int:
    """What every `python -m <service>` does: read the settings, check what the service needs (one clear log line
    and exit status 2 when something is wrong), then serve with the graceful drain."""
    from pydantic import ValidationError  # only the entry point needs it

    from ortserve_common.logs import configure_logging

    try:
        settings = settings_class()
    except ValidationError as exc:
        configure_logging("INFO", service)
        prefix = settings_class.model_config.get("env_prefix", "")
        logger.error("invalid %s* settings: %s", prefix, exc.errors(include_url=False))
        return 2
    configure_logging(settings.log_level, service)
    try:
        precheck(settings)
    except expected_errors as exc:
        logger.error("cannot start: %s", exc)
        return 2
    serve(create_app(settings), settings.host, settings.port, settings.drain_timeout_s)
    return 0
