"""Per-key limits at a service's door: one request's admission (model allow-list, requests and tokens per minute,
requests in flight, the daily token budget), its tokens charged as they are produced, and its release.

The services count, not nginx: its key check is cached and has no body, so it can neither count every request nor
see the model or the tokens. nginx hands each request's key id and limits over in headers from the key check.
"""

from __future__ import annotations

import contextvars
import logging
import time
import uuid
from dataclasses import dataclass, field

from prometheus_client import CollectorRegistry

from ortserve_common.errors import OpenAIError
from ortserve_common.limits.headers import ratelimit_headers, retry_after
from ortserve_common.limits.metrics import KeyMetrics
from ortserve_common.limits.model import KeyLimits
from ortserve_common.limits.store import Admission, LimitsStore, StoreUnavailable
from ortserve_common.settings import ModelHostSettings

logger = logging.getLogger(__name__)

# After a failed store call, skip the store this long: with fail-open, an outage must not cost every request a timeout.
STORE_RETRY_S = 1.0
_STORE_RETRY_AFTER_S = 5


@dataclass
class KeyRequest:
    """One request of a known key: what it was admitted with, and the headers every answer to it carries."""

    limiter: KeyLimiter
    key_id: str
    limits: KeyLimits | None
    request_id: str = field(default_factory=lambda: uuid.uuid4().hex)
    counted: bool = False  # holds an in-flight entry in the store
    headers: dict[str, str] = field(default_factory=dict)

    async def charge(self, tokens: int, kind: str) -> None:
        """Count tokens as produced; a stream past the daily budget ends here, so it overruns by one step at most."""
        await self.limiter.charge(self, tokens, kind)

    async def release(self) -> None:
        if self.counted:
            self.counted = False
            await self.limiter.store.release(self.key_id, self.request_id)


current_key_request: contextvars.ContextVar[KeyRequest | None] = contextvars.ContextVar(
    "current_key_request", default=None
)


async def charge_tokens(tokens: int, kind: str) -> None:
    """What the serving code calls as it produces tokens; a no-op for requests without a key (no proxy)."""
    request = current_key_request.get()
    if request is not None:
        await request.charge(tokens, kind)


def model_not_allowed(model: str) -> OpenAIError:
    return OpenAIError(
        403,
        f"This API key may not use the model '{model}'.",
        "permission_error",
        "model",
        "model_not_allowed",
    )


def quota_exceeded(limit: int, reset_s: float) -> OpenAIError:
    return OpenAIError(
        429,
        f"This API key has used its daily budget of {limit} tokens; it renews at 00:00 UTC.",
        "insufficient_quota",
        None,
        "insufficient_quota",
        {"Retry-After": retry_after(reset_s)},
    )


class KeyLimiter:
    def __init__(self, store: LimitsStore, fail_open: bool, metrics: KeyMetrics) -> None:
        self.store = store
        self.fail_open = fail_open
        self.metrics = metrics
        self._skip_store_until = 0.0

    async def admit(self, key_id: str, limits: KeyLimits | None, model: str | None) -> KeyRequest:
        """The request's KeyRequest, or an OpenAIError (403, 429, 503) carrying the rate-limit headers."""
        request = KeyRequest(self, key_id, limits)
        if limits is None:
            return request
        if limits.models is not None and model is not None and model not in limits.models:
            self.metrics.refused(key_id, "model")
            await self._best_effort_refusal(key_id, "model")
            raise model_not_allowed(model)
        if not limits.counted:
            return request
        try:
            admission = await self._admit(key_id, limits, request.request_id)
        except StoreUnavailable as exc:
            self._store_failed(exc)
            if self.fail_open:
                return request
            self.metrics.refused(key_id, "store_unavailable")
            raise self._unavailable() from None
        request.headers = ratelimit_headers(limits, admission)
        if admission.refused is not None:
            self.metrics.refused(key_id, admission.refused)
            error = self._refusal(limits, admission)
            error.headers.update(request.headers)
            raise error
        request.counted = True
        return request

    async def charge(self, request: KeyRequest, tokens: int, kind: str) -> None:
        self.metrics.used(request.key_id, kind, tokens)
        limits = request.limits
        if limits is None or not limits.counted or tokens <= 0 or not request.counted:
            return
        try:
            if time.monotonic() < self._skip_store_until:
                raise StoreUnavailable("skipped after a recent failure")
            _, today = await self.store.charge(request.key_id, tokens)
        except StoreUnavailable as exc:
            self._store_failed(exc)
            if self.fail_open:
                return
            raise self._unavailable() from None
        if limits.tokens_per_day is not None and today > limits.tokens_per_day:
            self.metrics.refused(request.key_id, "quota")
            await self._best_effort_refusal(request.key_id, "quota")
            raise quota_exceeded(limits.tokens_per_day, _seconds_to_utc_midnight())

    async def _admit(self, key_id: str, limits: KeyLimits, request_id: str) -> Admission:
        if time.monotonic() < self._skip_store_until:
            raise StoreUnavailable("skipped after a recent failure")
        return await self.store.admit(key_id, limits, request_id)

    async def _best_effort_refusal(self, key_id: str, reason: str) -> None:
        try:
            await self.store.count_refusal(key_id, reason)
        except StoreUnavailable as exc:
            self._store_failed(exc)

    def _store_failed(self, exc: StoreUnavailable) -> None:
        self.metrics.store_errors.inc()
        now = time.monotonic()
        if now >= self._skip_store_until:  # one warning per retry period, not one per request
            logger.warning(
                "per-key limits store unavailable (%s); failing %s", exc, "open" if self.fail_open else "closed"
            )
        self._skip_store_until = now + STORE_RETRY_S

    @staticmethod
    def _unavailable() -> OpenAIError:
        return OpenAIError(
            503,
            "The per-key limits store is unavailable, and this service refuses limited keys meanwhile; retry shortly.",
            "server_error",
            None,
            "limits_unavailable",
            {"Retry-After": str(_STORE_RETRY_AFTER_S)},
        )

    @staticmethod
    def _refusal(limits: KeyLimits, admission: Admission) -> OpenAIError:
        reason = admission.refused
        if reason == "quota":
            assert limits.tokens_per_day is not None
            return quota_exceeded(limits.tokens_per_day, admission.day_reset_s)
        wait = {"Retry-After": retry_after(admission.minute_reset_s)}
        if reason == "requests":
            message = f"Rate limit reached: {limits.requests_per_minute} requests per minute for this API key."
            return OpenAIError(429, message, "requests", None, "rate_limit_exceeded", wait)
        if reason == "tokens":
            message = f"Rate limit reached: {limits.tokens_per_minute} tokens per minute for this API key."
            return OpenAIError(429, message, "tokens", None, "rate_limit_exceeded", wait)
        message = (
            f"Too many requests in flight: this API key may run {limits.max_concurrent_requests} at once; "
            "retry when one has finished."
        )
        return OpenAIError(429, message, "requests", None, "rate_limit_exceeded", {"Retry-After": "1"})


def _seconds_to_utc_midnight() -> float:
    return 86400 - time.time() % 86400


def key_limiter_for(settings: ModelHostSettings, registry: CollectorRegistry) -> KeyLimiter:
    """A service's limiter from its settings, its per-key series in the service's metrics registry. The store
    connects on first use; the lifespan closes it (`limiter.store.close()`)."""
    store = LimitsStore(settings.limits_store_url, settings.limits_store_timeout_s)
    return KeyLimiter(store, settings.limits_fail_open, KeyMetrics(registry, settings.limits_metric_keys))
