"""Per-key limits in the registry: the admin API (create, patch, list, validation), the key check's answer to nginx
(id, priority, limits with every alias of an allowed model), and the usage counters read back from Redis."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from models_testing import ADMIN_KEY, ModelsServer
from ortserve_common.limits.limiter import KeyLimiter
from ortserve_common.limits.metrics import KeyMetrics
from ortserve_common.limits.model import KeyLimits
from ortserve_common.limits.store import LimitsStore
from ortserve_testing.redis_server import TemporaryRedis
from prometheus_client import CollectorRegistry

LIMITS = {
    "requests_per_minute": 60,
    "tokens_per_minute": 5000,
    "max_concurrent_requests": 2,
    "tokens_per_day": 100000,
    "models": ["qwen2.5-coder"],
    "priority": "batch",
}


@pytest.fixture
def redis_server() -> Iterator[TemporaryRedis]:
    server = TemporaryRedis()
    if server.url is None:
        pytest.skip(server.reason)
    yield server.start()
    server.cleanup()


def test_limits_are_created_listed_patched_and_removed(shared_registry: ModelsServer) -> None:
    with shared_registry.http(ADMIN_KEY) as admin:
        created = admin.post("/admin/keys", json={"name": "limited", "limits": LIMITS})
        assert created.status_code == 201 and created.json()["limits"] == LIMITS
        key_id, secret = created.json()["id"], created.json()["key"]
        listed = {k["id"]: k for k in admin.get("/admin/keys").json()["data"]}
        assert listed[key_id]["limits"] == LIMITS

        patched = admin.patch(f"/admin/keys/{key_id}", json={"limits": {"requests_per_minute": 5}})
        assert patched.status_code == 200 and patched.json()["limits"] == {"requests_per_minute": 5}
        assert patched.json()["name"] == "limited"  # a field left out is kept
        renamed = admin.patch(f"/admin/keys/{key_id}", json={"name": "renamed"})
        assert renamed.json()["limits"] == {"requests_per_minute": 5}
        removed = admin.patch(f"/admin/keys/{key_id}", json={"limits": None})
        assert removed.json()["limits"] is None and removed.json()["name"] == "renamed"
        assert admin.patch("/admin/keys/key_nope", json={"name": "x"}).status_code == 404
    with shared_registry.http(secret) as client:
        checked = client.get("/internal/auth")
    assert checked.status_code == 204 and "x-ortserve-key-limits" not in checked.headers
    assert checked.headers["x-ortserve-key-priority"] == "interactive"  # no priority: interactive


@pytest.mark.parametrize(
    "limits",
    [
        {"requests_per_minute": 0},
        {"requests_per_minute": "10"},
        {"requests_per_minute": 1.5},
        {"tokens_per_day": -1},
        {"models": []},
        {"models": ["has space"]},
        {"priority": "urgent"},
        {"request_per_minute": 10},  # misspelt: refused, not ignored
        ["requests_per_minute"],
    ],
)
def test_invalid_limits_are_refused_in_openai_shape(shared_registry: ModelsServer, limits: object) -> None:
    with shared_registry.http(ADMIN_KEY) as admin:
        created = admin.post("/admin/keys", json={"name": "bad", "limits": limits})
        key_id = admin.post("/admin/keys", json={"name": "ok"}).json()["id"]
        patched = admin.patch(f"/admin/keys/{key_id}", json={"limits": limits})
    for response in (created, patched):
        assert response.status_code == 400, response.text
        error = response.json()["error"]
        assert error["type"] == "invalid_request_error" and error["param"].startswith("limits")


def test_the_key_check_tells_nginx_the_limits_with_every_alias(shared_registry: ModelsServer) -> None:
    with shared_registry.http(ADMIN_KEY) as admin:
        secret = admin.post("/admin/keys", json={"name": "aliases", "limits": LIMITS}).json()["key"]
    with shared_registry.http(secret) as client:
        checked = client.post("/internal/auth")
    assert checked.headers["x-ortserve-key-priority"] == "batch"
    sent = json.loads(checked.headers["x-ortserve-key-limits"])
    assert sent["models"] == ["qwen2.5-coder", "qwen2.5-coder-0.5b-instruct"]
    assert sent["requests_per_minute"] == 60 and sent["priority"] == "batch"


def test_limits_survive_a_restart(tmp_path: Path) -> None:
    server = ModelsServer(tmp_path).start()
    try:
        with server.http(ADMIN_KEY) as admin:
            key_id = admin.post("/admin/keys", json={"name": "kept", "limits": {"tokens_per_day": 7}}).json()["id"]
    finally:
        server.stop()
    server = ModelsServer(tmp_path).start()
    try:
        with server.http(ADMIN_KEY) as admin:
            listed = {k["id"]: k for k in admin.get("/admin/keys").json()["data"]}
    finally:
        server.stop()
    assert listed[key_id]["limits"] == {"tokens_per_day": 7}


async def test_usage_reads_the_counters_every_service_writes(tmp_path: Path, redis_server: TemporaryRedis) -> None:
    server = ModelsServer(tmp_path, MODELS_LIMITS_STORE_URL=redis_server.url or "").start()
    try:
        with server.http(ADMIN_KEY) as admin:
            key_id = admin.post("/admin/keys", json={"name": "used", "limits": LIMITS}).json()["id"]
            fresh = admin.get(f"/admin/keys/{key_id}/usage").json()
            assert fresh["minute"]["requests"] == 0 and fresh["day"]["tokens"] == 0 and fresh["refusals"] == {}
            # What a service does for one request: admit it, charge its tokens, and a refusal for another model.
            limiter = KeyLimiter(LimitsStore(redis_server.url), True, KeyMetrics(CollectorRegistry()))
            request = await limiter.admit(key_id, KeyLimits.model_validate(LIMITS), "qwen2.5-coder")
            await request.charge(12, "prompt")
            with pytest.raises(Exception, match="may not use the model 'other'"):
                await limiter.admit(key_id, KeyLimits.model_validate(LIMITS), "other")
            during = admin.get(f"/admin/keys/{key_id}/usage").json()
            await request.release()
            after = admin.get(f"/admin/keys/{key_id}/usage").json()
            await limiter.store.close()
            assert admin.get("/admin/keys/key_nope/usage").status_code == 404
            redis_server.stop()
            down = admin.get(f"/admin/keys/{key_id}/usage")
    finally:
        server.stop()
    assert during["minute"] == {"requests": 1, "tokens": 12, "resets_in_s": during["minute"]["resets_in_s"]}
    assert during["day"]["tokens"] == 12 and during["in_flight"] == 1 and during["refusals"] == {"model": 1}
    assert during["limits"] == LIMITS and 0 < during["minute"]["resets_in_s"] <= 60
    assert after["in_flight"] == 0
    assert down.status_code == 503 and down.json()["error"]["code"] == "limits_unavailable"


def test_usage_without_a_store_is_503(shared_registry: ModelsServer) -> None:
    with shared_registry.http(ADMIN_KEY) as admin:
        key_id = admin.post("/admin/keys", json={"name": "nostore"}).json()["id"]
        response = admin.get(f"/admin/keys/{key_id}/usage")
    assert response.status_code == 503 and response.json()["error"]["code"] == "limits_unavailable"
