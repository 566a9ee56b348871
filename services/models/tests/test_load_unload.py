"""Runtime load and unload: forwarded with the admin key to the live instances concerned, and reflected at once."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from models_testing import ADMIN_KEY, FakeInstance, ModelsServer, free_port, registration

AUTH = f"Bearer {ADMIN_KEY}"


@pytest.fixture
def instances() -> Iterator[list[FakeInstance]]:
    started: list[FakeInstance] = []
    yield started
    for instance in started:
        instance.stop()


def _start(instances: list[FakeInstance], **kwargs) -> FakeInstance:
    instance = FakeInstance(**kwargs).start()
    instances.append(instance)
    return instance


def _register(server: ModelsServer, instance: FakeInstance, service: str = "chat") -> None:
    with server.http() as http:
        http.post("/internal/instances", json=registration(instance.url, instance.models, service=service))


def test_load_goes_to_every_live_instance_of_the_service(
    fresh_registry: ModelsServer, instances: list[FakeInstance]
) -> None:
    chat_a, chat_b = _start(instances), _start(instances)
    embed = _start(instances, models=[{"id": "all-minilm-l6-v2", "kind": "embedding"}])
    for instance in (chat_a, chat_b):
        _register(fresh_registry, instance)
    _register(fresh_registry, embed, "embeddings")
    with fresh_registry.http(ADMIN_KEY) as admin:
        answer = admin.post("/admin/models/load", json={"id": "phi3.5", "path": "/models/phi"})
        assert answer.status_code == 200
        result = answer.json()
        assert result["id"] == "phi-3.5-mini"
        assert sorted(o["url"] for o in result["instances"]) == sorted([chat_a.url, chat_b.url])
        assert all(
            o["status_code"] == 200 and o["body"]["models"][0]["id"] == "phi-3.5-mini" for o in result["instances"]
        )
        # The alias is resolved and the kind comes from the manifest; the admin key goes along.
        for instance in (chat_a, chat_b):
            assert instance.calls == [("load", {"id": "phi-3.5-mini", "path": "/models/phi", "kind": "chat"}, AUTH)]
        assert embed.calls == []
        # Listed right away, without waiting for a heartbeat (the fake instances never send one).
        card = admin.get("/v1/models/phi-3.5-mini").json()
        assert card["status"] == "live" and card["context_length"] == 131072
        statuses = {m["id"]: m for m in admin.get("/internal/models").json()["data"]}
        assert sorted(statuses["phi-3.5-mini"]["instances"]) == sorted([chat_a.url, chat_b.url])

        new = admin.post(
            "/admin/models/load", json={"id": "my/reranker", "path": "/m/r", "kind": "rerank", "service": "embeddings"}
        )
        assert new.status_code == 200 and [o["url"] for o in new.json()["instances"]] == [embed.url]
        assert embed.calls[-1] == ("load", {"id": "my/reranker", "path": "/m/r", "kind": "rerank"}, AUTH)
        assert admin.get("/v1/models/my/reranker").json()["kind"] == "rerank"


def test_unload_goes_only_to_the_instances_serving_the_model(
    fresh_registry: ModelsServer, instances: list[FakeInstance]
) -> None:
    serving = _start(instances, models=[{"id": "smollm2-135m-instruct", "kind": "chat"}])
    idle = _start(instances)
    _register(fresh_registry, serving)
    _register(fresh_registry, idle)
    with fresh_registry.http(ADMIN_KEY) as admin:
        answer = admin.post("/admin/models/unload", json={"id": "smollm2-135m-instruct"})
        assert answer.status_code == 200
        assert [o["url"] for o in answer.json()["instances"]] == [serving.url]
        assert serving.calls == [("unload", {"id": "smollm2-135m-instruct"}, AUTH)] and idle.calls == []
        assert admin.get("/v1/models/smollm2-135m-instruct").status_code == 404
        again = admin.post("/admin/models/unload", json={"id": "smollm2-135m-instruct"})
        assert again.status_code == 404 and again.json()["error"]["code"] == "model_not_found"


def test_no_live_instance_of_the_service(fresh_registry: ModelsServer) -> None:
    with fresh_registry.http(ADMIN_KEY) as admin:
        answer = admin.post("/admin/models/load", json={"id": "all-minilm-l6-v2", "path": "/m"})
    assert answer.status_code == 409
    error = answer.json()["error"]
    assert error["code"] == "no_live_instance" and "embeddings" in error["message"]


def test_partial_and_total_refusals(fresh_registry: ModelsServer, instances: list[FakeInstance]) -> None:
    good = _start(instances)
    refusing = _start(instances, status_code=400)
    _register(fresh_registry, good)
    _register(fresh_registry, refusing)
    unreachable = f"http://127.0.0.1:{free_port()}"
    with fresh_registry.http(ADMIN_KEY) as admin:
        admin.post("/internal/instances", json=registration(unreachable, []))
        partial = admin.post("/admin/models/load", json={"id": "m1", "path": "/m1"})
        assert partial.status_code == 200
        outcomes = {o["url"]: o for o in partial.json()["instances"]}
        assert outcomes[good.url]["status_code"] == 200
        assert outcomes[refusing.url] == {
            "url": refusing.url,
            "status_code": 400,
            "body": {"error": {"message": "cannot load that"}},
        }
        assert outcomes[unreachable]["status_code"] is None
        assert "unreachable" in outcomes[unreachable]["body"]["error"]["message"]
        # Registered without a kind the manifest could give: the instance decides (here it assumes chat).
        assert good.calls[0][1] == {"id": "m1", "path": "/m1", "kind": None}

        good.status_code = 500
        total = admin.post("/admin/models/load", json={"id": "m2", "path": "/m2"})
        assert total.status_code == 502
        error = total.json()["error"]
        assert (error["type"], error["code"]) == ("server_error", "upstream_error")
        assert "cannot load that" in error["message"] and "unreachable" in error["message"]
        assert admin.get("/v1/models/m2").status_code == 404


def test_load_request_validation(shared_registry: ModelsServer) -> None:
    with shared_registry.http(ADMIN_KEY) as admin:
        missing_path = admin.post("/admin/models/load", json={"id": "m"})
        bad_service = admin.post("/admin/models/load", json={"id": "m", "path": "/m", "service": "vision"})
    assert missing_path.status_code == 400 and missing_path.json()["error"]["param"] == "path"
    assert bad_service.status_code == 400 and bad_service.json()["error"]["param"] == "service"
