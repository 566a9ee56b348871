"""Registration and heartbeats decide what /v1/models lists; the OpenAI SDK reads the result as-is."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import openai
import pytest
from fastapi.testclient import TestClient
from models_service.main import create_app
from models_service.settings import ModelsSettings
from models_testing import BUNDLED_MANIFEST, SEEDED_KEY, ModelsServer, registration

CHAT_URL = "http://127.0.0.1:18101"
EMBED_URL = "http://127.0.0.1:18102"
SMOLLM = {"id": "smollm2-135m-instruct", "kind": "chat", "context_length": 4096}
MINILM = {"id": "all-minilm-l6-v2", "kind": "embedding", "context_length": 256}
NOT_FOUND = {
    "error": {
        "message": "The model 'nope' does not exist or is not served here.",
        "type": "invalid_request_error",
        "param": "model",
        "code": "model_not_found",
    }
}


def _ids(server: ModelsServer) -> list[str]:
    with server.http() as http:
        return [card["id"] for card in http.get("/v1/models").json()["data"]]


def test_only_models_of_live_instances_are_listed(fresh_registry: ModelsServer) -> None:
    assert _ids(fresh_registry) == []
    with fresh_registry.http() as http:
        answer = http.post("/internal/instances", json=registration(CHAT_URL + "/", [SMOLLM]))
        assert (answer.status_code, answer.json()) == (200, {"status": "registered"})
        http.post("/internal/instances", json=registration(EMBED_URL, [MINILM], service="embeddings"))
        listing = http.get("/v1/models").json()
    assert listing["object"] == "list"
    smollm, minilm = listing["data"]
    # Manifest data wins over the registered data (context 8192, not the 4096 the instance sent).
    assert smollm == {
        "id": "smollm2-135m-instruct",
        "object": "model",
        "created": 1730419200,
        "owned_by": "huggingfacetb",
        "kind": "chat",
        "status": "live",
        "context_length": 8192,
        "service": "chat",
        "aliases": [],
        "defaults": {"temperature": 0.7, "top_p": 1.0},
        "replicas": 1,
        "replica_nodes": [],
    }
    assert (minilm["id"], minilm["kind"], minilm["service"]) == ("all-minilm-l6-v2", "embedding", "embeddings")


class _Clock:
    """The registry's clock, moved on by the test: a TTL passes without waiting for it."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clocked_registry(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[TestClient, _Clock]]:
    """The registry app in-process on a clock of the test's own, over HTTP all the same."""
    for name in [name for name in os.environ if name.startswith("MODELS_")]:
        monkeypatch.delenv(name)  # the developer's own settings must not reach the registry under test
    clock = _Clock()
    settings = ModelsSettings(manifest=BUNDLED_MANIFEST, data_dir=tmp_path / "models-data", api_keys=[SEEDED_KEY])
    with TestClient(create_app(settings, clock=clock)) as http:
        yield http, clock


def test_expired_heartbeat_drops_the_model_and_a_new_one_brings_it_back(
    clocked_registry: tuple[TestClient, _Clock],
) -> None:
    http, clock = clocked_registry

    def ids() -> list[str]:
        return [card["id"] for card in http.get("/v1/models").json()["data"]]

    body = registration(CHAT_URL, [SMOLLM], ttl_s=6.0)
    http.post("/internal/instances", json=body)
    clock.now += 5.99  # just inside the TTL
    assert ids() == ["smollm2-135m-instruct"]
    assert http.get("/internal/instances").json()["data"][0]["last_heartbeat_age_s"] == 5.99
    clock.now += 0.02  # just past it
    assert ids() == []
    assert http.get("/v1/models/smollm2-135m-instruct").status_code == 404
    statuses = {m["id"]: m for m in http.get("/internal/models").json()["data"]}
    assert statuses["smollm2-135m-instruct"]["status"] == "down"
    assert statuses["smollm2-135m-instruct"]["instances"] == []
    (instance,) = http.get("/internal/instances").json()["data"]
    assert instance["url"] == CHAT_URL and instance["live"] is False

    http.post("/internal/instances", json=body)
    assert ids() == ["smollm2-135m-instruct"]


def test_heartbeat_replaces_the_model_list_and_delete_deregisters(fresh_registry: ModelsServer) -> None:
    with fresh_registry.http() as http:
        http.post("/internal/instances", json=registration(CHAT_URL, [SMOLLM]))
        http.post("/internal/instances", json=registration(CHAT_URL, [{"id": "phi-3.5-mini", "kind": "chat"}]))
        assert _ids(fresh_registry) == ["phi-3.5-mini"]
        gone = http.delete("/internal/instances", params={"url": CHAT_URL + "/"})
        assert (gone.status_code, gone.json()) == (200, {"status": "deregistered"})
        assert _ids(fresh_registry) == []
        again = http.delete("/internal/instances", params={"url": CHAT_URL})
        assert again.status_code == 404 and again.json()["error"]["code"] == "not_found"
        bad = http.delete("/internal/instances", params={"url": "ftp://x"})
        assert bad.status_code == 400 and bad.json()["error"]["param"] == "url"


def test_internal_models_shows_every_model_with_its_status_and_instances(fresh_registry: ModelsServer) -> None:
    with fresh_registry.http() as http:
        http.post("/internal/instances", json=registration(CHAT_URL, [SMOLLM, {"id": "extra", "kind": "chat"}]))
        http.post("/internal/instances", json=registration(EMBED_URL, [SMOLLM]))
        statuses = {m["id"]: m for m in http.get("/internal/models").json()["data"]}
    assert list(statuses) == [
        "smollm2-135m-instruct",
        "qwen2.5-coder-0.5b-instruct",
        "all-minilm-l6-v2",
        "multilingual-e5-small",
        "rerank-tiny-random",
        "phi-3.5-mini",
        "extra",
    ]
    assert statuses["smollm2-135m-instruct"]["instances"] == [CHAT_URL, EMBED_URL]
    assert statuses["smollm2-135m-instruct"]["status"] == "live" and statuses["smollm2-135m-instruct"]["in_manifest"]
    assert statuses["rerank-tiny-random"]["status"] == "down" and statuses["rerank-tiny-random"]["instances"] == []
    assert statuses["extra"]["in_manifest"] is False and statuses["extra"]["owned_by"] == "ortserve"


def test_aliases_slashes_and_unknown_ids(shared_registry: ModelsServer) -> None:
    url = "http://127.0.0.1:18103"
    models = [{"id": "phi3.5", "kind": "chat", "context_length": 8192}, {"id": "org/model-x", "kind": "rerank"}]
    with shared_registry.http() as http:
        http.post("/internal/instances", json=registration(url, models))
        # An instance that registers an alias serves the manifest model: it is listed once, by its real id.
        by_alias = http.get("/v1/models/phi3.5").json()
        assert by_alias["id"] == "phi-3.5-mini" and by_alias["aliases"] == ["phi3.5"]
        assert by_alias["context_length"] == 131072
        assert http.get("/v1/models/phi-3.5-mini").json() == by_alias
        assert http.get("/v1/models/org/model-x").json()["id"] == "org/model-x"
        missing = http.get("/v1/models/nope")
        assert (missing.status_code, missing.json()) == (404, NOT_FOUND)
        # In the manifest but served by nobody: not found either.
        assert http.get("/v1/models/rerank-tiny-random").json()["error"]["code"] == "model_not_found"
        http.delete("/internal/instances", params={"url": url})


def test_openai_sdk_lists_and_retrieves_with_the_extra_fields(shared_registry: ModelsServer) -> None:
    url = "http://127.0.0.1:18104"
    models = [{"id": "phi-3.5-mini", "kind": "chat"}, {"id": "org/sdk-model", "kind": "embedding"}]
    with shared_registry.http() as http:
        http.post("/internal/instances", json=registration(url, models))
    client = shared_registry.openai_client()
    listed = {model.id: model for model in client.models.list()}
    assert {"phi-3.5-mini", "org/sdk-model"} <= set(listed)
    phi = client.models.retrieve("phi3.5")
    assert (phi.id, phi.object, phi.owned_by, phi.created) == ("phi-3.5-mini", "model", "microsoft", 1724112000)
    extras = phi.model_dump()
    assert extras["kind"] == "chat" and extras["defaults"] == {"temperature": 0.7, "top_p": 1.0}
    assert client.models.retrieve("org/sdk-model").model_dump()["service"] == "chat"
    with pytest.raises(openai.NotFoundError) as raised:
        client.models.retrieve("nope")
    assert raised.value.body == NOT_FOUND["error"]
    with shared_registry.http() as http:
        http.delete("/internal/instances", params={"url": url})


@pytest.mark.parametrize(
    ("body", "param"),
    [
        (registration("127.0.0.1:8000", []), "url"),
        (registration("http://127.0.0.1:1", [], service="vision"), "service"),
        (registration("http://127.0.0.1:1", [{"id": "m", "kind": "llm"}]), "models[0].kind"),
        (registration("http://127.0.0.1:1", [], ttl_s=0), "ttl_s"),
        ({"service": "chat", "models": []}, "url"),
    ],
)
def test_bad_registrations_are_refused(shared_registry: ModelsServer, body: dict, param: str) -> None:
    with shared_registry.http() as http:
        answer = http.post("/internal/instances", json=body)
    assert answer.status_code == 400
    assert answer.json()["error"]["param"] == param


def test_a_scaled_service_counts_each_live_replica(fresh_registry: ModelsServer) -> None:
    with fresh_registry.http() as http:
        for url in (CHAT_URL, "http://127.0.0.1:18103"):
            http.post("/internal/instances", json=registration(url, [SMOLLM]))
        card = http.get("/v1/models/smollm2-135m-instruct").json()
        assert card["replicas"] == 2 and "instances" not in card  # a count; the addresses stay internal
        http.request("DELETE", "/internal/instances", params={"url": CHAT_URL})
        assert http.get("/v1/models/smollm2-135m-instruct").json()["replicas"] == 1


def test_each_live_replica_names_its_node(fresh_registry: ModelsServer) -> None:
    """A cluster's replicas say where they run (sorted, one entry per replica); a replica that stops beating
    leaves the list with its count, and one that names no node is counted but not listed."""
    replicas = {CHAT_URL: "node-b", "http://127.0.0.1:18103": "node-a", "http://127.0.0.1:18104": "node-b"}
    with fresh_registry.http() as http:
        for url, node in replicas.items():
            http.post("/internal/instances", json={**registration(url, [SMOLLM]), "node": node})
        http.post("/internal/instances", json=registration("http://127.0.0.1:18105", [SMOLLM]))
        card = http.get("/v1/models/smollm2-135m-instruct").json()
        assert (card["replicas"], card["replica_nodes"]) == (4, ["node-a", "node-b", "node-b"])
        views = {view["url"]: view["node"] for view in http.get("/internal/instances").json()["data"]}
        assert views[CHAT_URL] == "node-b" and views["http://127.0.0.1:18105"] is None
        http.request("DELETE", "/internal/instances", params={"url": CHAT_URL})
        card = http.get("/v1/models/smollm2-135m-instruct").json()
    assert (card["replicas"], card["replica_nodes"]) == (3, ["node-a", "node-b"])


def test_a_chat_model_is_live_and_counted_only_by_the_chat_service(fresh_registry: ModelsServer) -> None:
    """The embeddings service serves a chat model's hidden states under the same id: that neither keeps the chat
    model live nor adds a replica to its card."""
    hidden = {"id": "smollm2-135m-instruct", "kind": "embedding", "context_length": 8192}
    with fresh_registry.http() as http:
        http.post("/internal/instances", json=registration(CHAT_URL, [SMOLLM]))
        http.post("/internal/instances", json=registration(EMBED_URL, [MINILM, hidden], service="embeddings"))
        card = http.get("/v1/models/smollm2-135m-instruct").json()
        assert (card["kind"], card["status"], card["replicas"]) == ("chat", "live", 1)
        http.request("DELETE", "/internal/instances", params={"url": CHAT_URL})
        status = {m["id"]: m for m in http.get("/internal/models").json()["data"]}["smollm2-135m-instruct"]
    assert (status["status"], status["replicas"], status["instances"]) == ("down", 0, [])


def test_capabilities_come_from_the_instances_that_serve_the_model(fresh_registry: ModelsServer) -> None:
    """A chat instance with OCR on says `ocr`; the card shows it for a manifest model and for an unlisted one, and
    leaves the field out where no instance said anything."""
    qwen = {"id": "qwen2.5-coder-0.5b-instruct", "kind": "chat", "capabilities": ["ocr"]}
    unlisted = {"id": "my-model", "kind": "chat", "capabilities": ["ocr"]}
    with fresh_registry.http() as http:
        http.post("/internal/instances", json=registration(CHAT_URL, [SMOLLM, qwen, unlisted]))
        cards = {card["id"]: card for card in http.get("/v1/models").json()["data"]}
    assert cards["qwen2.5-coder-0.5b-instruct"]["capabilities"] == ["ocr"]
    assert cards["my-model"]["capabilities"] == ["ocr"]
    assert "capabilities" not in cards["smollm2-135m-instruct"]
