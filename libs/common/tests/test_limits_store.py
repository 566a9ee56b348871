"""Per-key limits on a real Redis: the counters, the refusals in the order they apply, tokens charged as produced,
two limiters (two replicas) sharing one count, and both failure modes with the store stopped."""

from __future__ import annotations

import pytest
from ortserve_common.errors import OpenAIError
from ortserve_common.limits.limiter import KeyLimiter
from ortserve_common.limits.metrics import KeyMetrics
from ortserve_common.limits.model import KeyLimits
from ortserve_common.limits.store import LimitsStore
from ortserve_testing.redis_server import TemporaryRedis
from prometheus_client import CollectorRegistry


def _limiter(url: str | None, fail_open: bool = True) -> KeyLimiter:
    return KeyLimiter(LimitsStore(url, timeout_s=0.5), fail_open, KeyMetrics(CollectorRegistry()))


def _sample(limiter: KeyLimiter, name: str, **labels: str) -> float:
    for metric in (limiter.metrics.refusals, limiter.metrics.tokens, limiter.metrics.store_errors):
        for family in metric.collect():
            for sample in family.samples:
                if sample.name == name and all(sample.labels.get(k) == v for k, v in labels.items()):
                    return sample.value
    return 0.0


async def test_requests_per_minute_is_shared_by_every_replica(redis_server: TemporaryRedis) -> None:
    replicas = [_limiter(redis_server.url), _limiter(redis_server.url)]
    limits = KeyLimits(requests_per_minute=3)
    admitted = []
    for i in range(3):
        request = await replicas[i % 2].admit("key_rpm", limits, None)
        admitted.append(request)
        assert request.headers["x-ratelimit-limit-requests"] == "3"
        assert request.headers["x-ratelimit-remaining-requests"] == str(2 - i)
    with pytest.raises(OpenAIError) as refused:
        await replicas[1].admit("key_rpm", limits, None)
    error = refused.value
    assert (error.status, error.type, error.code) == (429, "requests", "rate_limit_exceeded")
    assert 1 <= int(error.headers["Retry-After"]) <= 60
    assert error.headers["x-ratelimit-remaining-requests"] == "0"
    for request in admitted:
        await request.release()
    usage = await replicas[0].store.usage("key_rpm")
    assert (usage.requests_this_minute, usage.in_flight, usage.refusals) == (3, 0, {"requests": 1})
    assert _sample(replicas[1], "ortserve_key_refusals_total", key_id="key_rpm", reason="requests") == 1


async def test_concurrency_counts_requests_in_flight_until_released(redis_server: TemporaryRedis) -> None:
    limiter = _limiter(redis_server.url)
    limits = KeyLimits(max_concurrent_requests=1)
    first = await limiter.admit("key_conc", limits, None)
    with pytest.raises(OpenAIError) as refused:
        await limiter.admit("key_conc", limits, None)
    assert (refused.value.status, refused.value.code) == (429, "rate_limit_exceeded")
    assert refused.value.headers["Retry-After"] == "1"
    await first.release()
    second = await limiter.admit("key_conc", limits, None)
    assert (await limiter.store.usage("key_conc")).in_flight == 1
    await second.release()


async def test_tokens_per_minute_refuses_the_next_request_once_spent(redis_server: TemporaryRedis) -> None:
    limiter = _limiter(redis_server.url)
    limits = KeyLimits(tokens_per_minute=10)
    request = await limiter.admit("key_tpm", limits, None)
    assert request.headers["x-ratelimit-remaining-tokens"] == "10"
    await request.charge(4, "prompt")
    await request.charge(6, "completion")  # a minute's limit never cuts a request short
    await request.release()
    with pytest.raises(OpenAIError) as refused:
        await limiter.admit("key_tpm", limits, None)
    assert (refused.value.type, refused.value.code) == ("tokens", "rate_limit_exceeded")
    assert refused.value.headers["x-ratelimit-remaining-tokens"] == "0"
    assert _sample(limiter, "ortserve_key_tokens_total", key_id="key_tpm", kind="completion") == 6


async def test_the_daily_budget_stops_a_generation_one_token_past_it(redis_server: TemporaryRedis) -> None:
    limiter = _limiter(redis_server.url)
    limits = KeyLimits(tokens_per_day=5)
    request = await limiter.admit("key_day", limits, None)
    await request.charge(3, "prompt")
    await request.charge(1, "completion")
    await request.charge(1, "completion")  # exactly the budget: still allowed
    with pytest.raises(OpenAIError) as stopped:
        await request.charge(1, "completion")
    assert (stopped.value.status, stopped.value.type, stopped.value.code) == (
        429,
        "insufficient_quota",
        "insufficient_quota",
    )
    await request.release()
    with pytest.raises(OpenAIError) as refused:
        await limiter.admit("key_day", limits, None)
    assert refused.value.code == "insufficient_quota"
    usage = await limiter.store.usage("key_day")
    assert usage.tokens_today == 6 and usage.refusals == {"quota": 2}


async def test_a_model_outside_the_allow_list_is_refused_with_its_name(redis_server: TemporaryRedis) -> None:
    limiter = _limiter(redis_server.url)
    limits = KeyLimits(models=["smollm2-135m-instruct"], requests_per_minute=100)
    allowed = await limiter.admit("key_models", limits, "smollm2-135m-instruct")
    await allowed.release()
    with pytest.raises(OpenAIError) as refused:
        await limiter.admit("key_models", limits, "qwen2.5-coder")
    assert refused.value.status == 403 and "'qwen2.5-coder'" in refused.value.message
    assert (await limiter.store.usage("key_models")).refusals == {"model": 1}


async def test_store_stopped_fails_open_or_closed_as_configured(redis_server: TemporaryRedis) -> None:
    limits = KeyLimits(requests_per_minute=1)
    open_limiter = _limiter(redis_server.url, fail_open=True)
    closed_limiter = _limiter(redis_server.url, fail_open=False)
    await (await open_limiter.admit("key_down", limits, None)).release()
    redis_server.stop()
    for _ in range(3):  # over the limit of 1, but uncounted while the store is away
        request = await open_limiter.admit("key_down", limits, None)
        assert request.headers == {}
        await request.charge(5, "completion")
        await request.release()
    assert _sample(open_limiter, "ortserve_key_limits_store_errors_total") >= 1
    with pytest.raises(OpenAIError) as refused:
        await closed_limiter.admit("key_down", limits, None)
    assert (refused.value.status, refused.value.code) == (503, "limits_unavailable")
    assert refused.value.headers["Retry-After"] == "5"


async def test_no_store_configured_is_a_store_that_is_down() -> None:
    limits = KeyLimits(tokens_per_day=1)
    assert (await _limiter(None, fail_open=True).admit("k", limits, None)).headers == {}
    with pytest.raises(OpenAIError) as refused:
        await _limiter(None, fail_open=False).admit("k", limits, None)
    assert refused.value.status == 503
