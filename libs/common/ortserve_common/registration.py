"""RegistrationClient: a service announces itself and its models to the model registry, and keeps doing so.

Registration is repeated every `interval_s` as the heartbeat; the registry counts the instance as down once
`ttl_s` passes without one. A registry that is down or refuses the request never stops the service: the failure
is logged and the next beat tries again.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from typing import Any

import httpx

from ortserve_common.protocol.registry import InstanceRegistration
from ortserve_common.telemetry import trace_httpx

logger = logging.getLogger(__name__)

INSTANCES_PATH = "/internal/instances"
DEREGISTER_TIMEOUT_S = 2.0
REPEAT_WARNING_S = 60.0


class RegistrationClient:
    def __init__(
        self,
        registry_url: str | None,
        service: str,
        advertise_url: str,
        models: Callable[[], list[dict[str, Any]]],
        interval_s: float = 2.0,
        ttl_s: float = 6.0,
        node: str | None = None,
    ) -> None:
        if interval_s <= 0 or ttl_s <= interval_s:
            raise ValueError(f"need 0 < interval_s < ttl_s (got interval_s={interval_s}, ttl_s={ttl_s})")
        self.registry_url = registry_url.rstrip("/") if registry_url else None
        self.service = service
        self.advertise_url = advertise_url.rstrip("/")
        self.models = models
        self.interval_s = interval_s
        self.ttl_s = ttl_s
        self.node = node
        self.registered = False
        self._client: httpx.AsyncClient | None = None
        self._task: asyncio.Task[None] | None = None
        self._failing = False
        self._last_warning = float("-inf")

    async def start(self) -> None:
        """Register once now, then heartbeat in the background; returns at once whether or not that worked."""
        if self.registry_url is None:
            logger.info("no registry configured; %s at %s is not registered", self.service, self.advertise_url)
            return
        # A beat slower than the interval is as good as lost; trust_env=False keeps stack traffic off proxies.
        self._client = httpx.AsyncClient(timeout=max(1.0, self.interval_s), trust_env=False)
        trace_httpx(self._client)  # a beat sent while serving a request (an admin load) joins its trace
        logging.getLogger("httpx").addFilter(self._drop_heartbeat_request_lines)
        await self.heartbeat()
        self._task = asyncio.create_task(self._beat_forever(), name=f"registry-heartbeat-{self.service}")

    async def heartbeat(self) -> bool:
        """Send one registration now (also useful right after the model list changed); True if it was accepted."""
        if self._client is None or self.registry_url is None:
            return False
        try:
            registration: dict[str, Any] = {"service": self.service, "url": self.advertise_url, "ttl_s": self.ttl_s}
            registration |= {"models": self.models(), "node": self.node}
            body = InstanceRegistration.model_validate(registration).model_dump(mode="json")
            response = await self._client.post(self.registry_url + INSTANCES_PATH, json=body)
            if response.status_code != 200:
                raise RuntimeError(f"registry answered {response.status_code}: {response.text[:300]}")
        except Exception as exc:  # any failure, ours or the registry's, must leave the service running
            self._report_failure(exc)
            return False
        if self._failing or not self.registered:
            logger.info("registered %s at %s with %s", self.service, self.advertise_url, self.registry_url)
        self._failing = False
        self.registered = True
        return True

    async def stop(self) -> None:
        """Stop the heartbeat and deregister, best effort: the registry forgets us within ttl_s anyway."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        if self._client is None or self.registry_url is None:
            return
        try:
            await self._client.delete(
                self.registry_url + INSTANCES_PATH, params={"url": self.advertise_url}, timeout=DEREGISTER_TIMEOUT_S
            )
            logger.info("deregistered %s at %s", self.service, self.advertise_url)
        except httpx.HTTPError as exc:
            logger.warning("could not deregister %s from %s: %r", self.advertise_url, self.registry_url, exc)
        finally:
            self.registered = False
            await self._client.aclose()
            self._client = None
            logging.getLogger("httpx").removeFilter(self._drop_heartbeat_request_lines)

    async def _beat_forever(self) -> None:
        while True:
            await asyncio.sleep(self.interval_s)
            await self.heartbeat()

    def _drop_heartbeat_request_lines(self, record: logging.LogRecord) -> bool:
        """httpx logs every request at INFO: one line per beat would drown the service's own log (failures are
        reported by `_report_failure`)."""
        args = record.args if isinstance(record.args, tuple) else ()
        return not (len(args) >= 2 and str(args[1]).startswith(f"{self.registry_url}{INSTANCES_PATH}"))

    def _report_failure(self, exc: Exception) -> None:
        # WARNING when it starts failing and once a minute while it goes on, so an outage does not flood the log.
        now = time.monotonic()
        level = logging.WARNING if not self._failing or now - self._last_warning >= REPEAT_WARNING_S else logging.DEBUG
        if level == logging.WARNING:
            self._last_warning = now
        logger.log(
            level, "registration of %s with %s failed (retrying): %r", self.advertise_url, self.registry_url, exc
        )
        self._failing = True
        self.registered = False
