"""The shared counters behind per-key limits, in Redis, so that every replica of every service counts against the
same numbers: requests and tokens per clock minute and per UTC day, requests in flight, and refusals by reason.

Each operation is one Lua script, so a check and its increment are atomic across replicas, and the windows follow
Redis's clock (`TIME`), not each replica's. Keys expire on their own: a minute window after 2 minutes, a day after 2
days; an in-flight entry a replica never released (it crashed) is dropped after `stale_after_s`.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import redis.asyncio as aioredis
from redis.exceptions import RedisError

from ortserve_common.limits.model import KeyLimits

logger = logging.getLogger(__name__)

KEY_PREFIX = "ortserve:limits:"
REFUSAL_REASONS = ("requests", "tokens", "concurrency", "quota", "model")

_WINDOWS = """
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
local base = KEYS[1]
local minute = base .. ':m:' .. math.floor(now / 60)
local day = base .. ':d:' .. math.floor(now / 86400)
local inflight = base .. ':inflight'
"""

# ARGV: requests/minute, tokens/minute, tokens/day, concurrent (0 = no limit), request id, stale_after_s.
_ADMIT = (
    _WINDOWS
    + """
local rpm, tpm, tpd, conc = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3]), tonumber(ARGV[4])
local stale = tonumber(ARGV[6])
redis.call('ZREMRANGEBYSCORE', inflight, '-inf', now - stale)
local requests = tonumber(redis.call('HGET', minute, 'requests') or '0')
local tokens = tonumber(redis.call('HGET', minute, 'tokens') or '0')
local today = tonumber(redis.call('HGET', day, 'tokens') or '0')
local running = redis.call('ZCARD', inflight)
local refused = ''
if tpd > 0 and today >= tpd then refused = 'quota'
elseif rpm > 0 and requests >= rpm then refused = 'requests'
elseif tpm > 0 and tokens >= tpm then refused = 'tokens'
elseif conc > 0 and running >= conc then refused = 'concurrency'
end
if refused ~= '' then
  redis.call('HINCRBY', base .. ':refusals', refused, 1)
else
  requests = redis.call('HINCRBY', minute, 'requests', 1)
  redis.call('EXPIRE', minute, 120)
  redis.call('HINCRBY', day, 'requests', 1)
  redis.call('EXPIRE', day, 172800)
  redis.call('ZADD', inflight, now, ARGV[5])
  redis.call('EXPIRE', inflight, math.ceil(stale))
  running = running + 1
end
return {refused, requests, tokens, today, running, tostring(60 - now % 60), tostring(86400 - now % 86400)}
"""
)

# ARGV: tokens to add.
_CHARGE = (
    _WINDOWS
    + """
local n = tonumber(ARGV[1])
local tokens = redis.call('HINCRBY', minute, 'tokens', n)
redis.call('EXPIRE', minute, 120)
local today = redis.call('HINCRBY', day, 'tokens', n)
redis.call('EXPIRE', day, 172800)
return {tokens, today}
"""
)

# ARGV: one refusal reason.
_REFUSED = """
redis.call('HINCRBY', KEYS[1] .. ':refusals', ARGV[1], 1)
return 1
"""

_USAGE = (
    _WINDOWS
    + """
return {
  tonumber(redis.call('HGET', minute, 'requests') or '0'),
  tonumber(redis.call('HGET', minute, 'tokens') or '0'),
  tonumber(redis.call('HGET', day, 'requests') or '0'),
  tonumber(redis.call('HGET', day, 'tokens') or '0'),
  redis.call('ZCOUNT', inflight, now - tonumber(ARGV[1]), '+inf'),
  redis.call('HGETALL', base .. ':refusals'),
  tostring(60 - now % 60),
  tostring(86400 - now % 86400),
}
"""
)


class StoreUnavailable(Exception):
    """The counter store did not answer (down, unreachable, too slow) or none is configured."""


@dataclass(frozen=True)
class Admission:
    """The counters as one request's check left them; `refused` names the limit that refused it, or is None."""

    refused: str | None
    requests_this_minute: int
    tokens_this_minute: int
    tokens_today: int
    in_flight: int
    minute_reset_s: float
    day_reset_s: float


@dataclass(frozen=True)
class Usage:
    requests_this_minute: int
    tokens_this_minute: int
    requests_today: int
    tokens_today: int
    in_flight: int
    refusals: dict[str, int]
    minute_reset_s: float
    day_reset_s: float


class LimitsStore:
    """One Redis connection pool per process; `url` None means no store (every call raises StoreUnavailable)."""

    def __init__(self, url: str | None, timeout_s: float = 0.5, stale_after_s: float = 3600.0) -> None:
        self.url = url
        self.stale_after_s = stale_after_s
        self._redis: aioredis.Redis | None = None
        if url:
            # Short timeouts: a store that hangs must cost a request a fraction of a second, not its whole budget.
            self._redis = aioredis.Redis.from_url(
                url, socket_timeout=timeout_s, socket_connect_timeout=timeout_s, retry_on_timeout=False
            )
        self._admit = self._script(_ADMIT)
        self._charge = self._script(_CHARGE)
        self._refused = self._script(_REFUSED)
        self._usage = self._script(_USAGE)

    def _script(self, source: str) -> object | None:
        return self._redis.register_script(source) if self._redis is not None else None

    async def _run(self, script: object | None, key_id: str, *args: object) -> list[object]:
        if script is None:
            raise StoreUnavailable("no counter store is configured")
        try:
            return await script(keys=[KEY_PREFIX + key_id], args=list(args))  # type: ignore[operator]
        except (RedisError, OSError) as exc:
            raise StoreUnavailable(f"counter store {self.url}: {exc}") from exc

    async def admit(self, key_id: str, limits: KeyLimits, request_id: str) -> Admission:
        reply = await self._run(
            self._admit,
            key_id,
            limits.requests_per_minute or 0,
            limits.tokens_per_minute or 0,
            limits.tokens_per_day or 0,
            limits.max_concurrent_requests or 0,
            request_id,
            self.stale_after_s,
        )
        refused = _text(reply[0])
        return Admission(
            refused=refused or None,
            requests_this_minute=int(reply[1]),  # type: ignore[call-overload]
            tokens_this_minute=int(reply[2]),  # type: ignore[call-overload]
            tokens_today=int(reply[3]),  # type: ignore[call-overload]
            in_flight=int(reply[4]),  # type: ignore[call-overload]
            minute_reset_s=float(_text(reply[5])),
            day_reset_s=float(_text(reply[6])),
        )

    async def charge(self, key_id: str, tokens: int) -> tuple[int, int]:
        """Add tokens to this minute's and today's counts; returns both totals after the addition."""
        reply = await self._run(self._charge, key_id, tokens)
        return int(reply[0]), int(reply[1])  # type: ignore[call-overload]

    async def release(self, key_id: str, request_id: str) -> None:
        if self._redis is None:
            return
        try:
            await self._redis.zrem(KEY_PREFIX + key_id + ":inflight", request_id)
        except (RedisError, OSError) as exc:
            # The entry then ages out after stale_after_s; the slot is not lost for good.
            logger.warning("could not release an in-flight entry of key %s: %s", key_id, exc)

    async def count_refusal(self, key_id: str, reason: str) -> None:
        """A refusal decided outside the store (a model the key may not use)."""
        await self._run(self._refused, key_id, reason)

    async def usage(self, key_id: str) -> Usage:
        reply = await self._run(self._usage, key_id, self.stale_after_s)
        pairs = [_text(item) for item in reply[5]]  # type: ignore[attr-defined]
        return Usage(
            requests_this_minute=int(reply[0]),  # type: ignore[call-overload]
            tokens_this_minute=int(reply[1]),  # type: ignore[call-overload]
            requests_today=int(reply[2]),  # type: ignore[call-overload]
            tokens_today=int(reply[3]),  # type: ignore[call-overload]
            in_flight=int(reply[4]),  # type: ignore[call-overload]
            refusals={pairs[i]: int(pairs[i + 1]) for i in range(0, len(pairs), 2)},
            minute_reset_s=float(_text(reply[6])),
            day_reset_s=float(_text(reply[7])),
        )

    async def close(self) -> None:
        if self._redis is not None:
            await self._redis.aclose()


def _text(value: object) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)
