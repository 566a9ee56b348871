"""Per-key limits without a store: the limits model and its header, OpenAI's rate-limit headers, the bounded metric
labels, and the ASGI door on a small app (allow-list, no key, store unset in both failure modes, Anthropic's shape)."""

from __future__ import annotations

import httpx
import pytest
from fastapi import FastAPI
from ortserve_common.limits.headers import ratelimit_headers, reset_duration, retry_after
from ortserve_common.limits.limiter import KeyLimiter, charge_tokens, current_key_request
from ortserve_common.limits.metrics import OTHER_KEYS, KeyMetrics
from ortserve_common.limits.middleware import KeyLimitsMiddleware
from ortserve_common.limits.model import KeyLimits
from ortserve_common.limits.store import Admission, LimitsStore
from prometheus_client import CollectorRegistry
from pydantic import ValidationError


def test_limits_travel_as_compact_json_and_bad_headers_are_no_limits() -> None:
    limits = KeyLimits(requests_per_minute=5, models=["a", "b"], priority="batch")
    assert limits.to_header() == '{"requests_per_minute":5,"models":["a","b"],"priority":"batch"}'
    assert KeyLimits.from_header(limits.to_header()) == limits
    assert KeyLimits.from_header("") is None and KeyLimits.from_header("{not json") is None
    assert KeyLimits.from_header("{}") is None
    assert limits.counted and not KeyLimits(models=["a"], priority="batch").counted
    with pytest.raises(ValidationError):
        KeyLimits.model_validate({"requests_per_minute": True})
    with pytest.raises(ValidationError):
        KeyLimits.model_validate({"models": ['a"b']})


def test_reset_durations_are_written_as_openai_writes_them() -> None:
    assert [reset_duration(s) for s in (0.02, 1, 17.5, 60, 86399)] == ["20ms", "1s", "17.5s", "1m0s", "1439m59s"]
    assert [retry_after(s) for s in (0.1, 1, 17.2)] == ["1", "1", "18"]


def test_headers_name_only_the_limits_a_key_has() -> None:
    admission = Admission(None, 3, 120, 500, 1, 17.5, 1000.0)
    both = ratelimit_headers(KeyLimits(requests_per_minute=10, tokens_per_minute=100), admission)
    assert both == {
        "x-ratelimit-limit-requests": "10",
        "x-ratelimit-remaining-requests": "7",
        "x-ratelimit-reset-requests": "17.5s",
        "x-ratelimit-limit-tokens": "100",
        "x-ratelimit-remaining-tokens": "0",  # over by a stream's last step: never negative
        "x-ratelimit-reset-tokens": "17.5s",
    }
    assert ratelimit_headers(KeyLimits(tokens_per_day=9), admission) == {}


def test_metric_labels_are_bounded() -> None:
    metrics = KeyMetrics(CollectorRegistry(), max_keys=2)
    assert [metrics.label(k) for k in ("a", "b", "c", "a")] == ["a", "b", OTHER_KEYS, "a"]


def _app(fail_open: bool) -> tuple[FastAPI, KeyLimiter]:
    app = FastAPI()
    seen: list[object] = []

    @app.post("/v1/embeddings")
    async def embeddings() -> dict:
        seen.append(current_key_request.get())
        await charge_tokens(3, "prompt")
        return {"ok": True}

    @app.post("/v1/messages")
    async def messages() -> dict:
        return {"ok": True}

    limiter = KeyLimiter(LimitsStore(None), fail_open, KeyMetrics(CollectorRegistry()))
    app.add_middleware(KeyLimitsMiddleware, limiter=limiter)
    app.state.seen = seen
    return app, limiter


async def _post(app: FastAPI, path: str, limits: KeyLimits | None, model: str = "m") -> httpx.Response:
    headers = {"X-Ortserve-Api-Key-Id": "key_1"}
    if limits is not None:
        headers["X-Ortserve-Key-Limits"] = limits.to_header()
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as client:
        return await client.post(path, json={"model": model, "input": "x"}, headers=headers)


async def test_the_allow_list_is_checked_on_the_body_model_without_a_store() -> None:
    app, limiter = _app(fail_open=True)
    assert (await _post(app, "/v1/embeddings", KeyLimits(models=["m"]))).status_code == 200
    refused = await _post(app, "/v1/embeddings", KeyLimits(models=["m"]), model="other")
    assert refused.status_code == 403
    assert refused.json()["error"]["code"] == "model_not_allowed" and "'other'" in refused.json()["error"]["message"]
    anthropic = await _post(app, "/v1/messages", KeyLimits(models=["m"]), model="other")
    assert anthropic.json() == {
        "type": "error",
        "error": {"type": "permission_error", "message": "This API key may not use the model 'other'."},
    }
    assert limiter.metrics.refusals.labels("key_1", "model")._value.get() == 2
    assert limiter.metrics.tokens.labels("key_1", "prompt")._value.get() == 3  # tokens per key, limited or not


async def test_a_store_that_is_unset_fails_open_or_closed() -> None:
    open_app, _ = _app(fail_open=True)
    served = await _post(open_app, "/v1/embeddings", KeyLimits(requests_per_minute=1))
    assert served.status_code == 200 and "x-ratelimit-limit-requests" not in served.headers
    closed_app, _ = _app(fail_open=False)
    refused = await _post(closed_app, "/v1/embeddings", KeyLimits(requests_per_minute=1))
    assert refused.status_code == 503 and refused.headers["retry-after"] == "5"
    assert refused.json()["error"]["code"] == "limits_unavailable"
    unlimited = await _post(closed_app, "/v1/embeddings", None)  # a key without limits needs no store
    assert unlimited.status_code == 200
