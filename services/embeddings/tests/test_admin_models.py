"""Runtime model hosting on the embeddings service: /admin/models/load and /unload, with real models."""

from __future__ import annotations

import httpx
import numpy as np
import pytest
from embeddings_testing import MINILM, MINILM_ID, RERANKER, SMOLLM_HIDDEN, EmbedServer

ADMIN = "sk-admin-embed-Test"


@pytest.fixture(scope="module")
def admin_server(real_models: None):
    server = EmbedServer(models=[{"id": MINILM_ID, "path": str(MINILM)}], EMBED_ADMIN_KEY=ADMIN).start()
    yield server
    server.stop()


def _admin(server: EmbedServer, path: str, body: dict, key: str | None = ADMIN) -> httpx.Response:
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    return httpx.post(server.base_url + path, json=body, headers=headers, timeout=120)


def test_load_embed_and_unload_at_runtime(admin_server: EmbedServer) -> None:
    loaded = _admin(admin_server, "/admin/models/load", {"id": "reranker-2", "path": str(RERANKER)})
    assert loaded.status_code == 200, loaded.text
    assert {"id": "reranker-2", "kind": "rerank"}.items() <= next(
        m for m in loaded.json()["models"] if m["id"] == "reranker-2"
    ).items()
    # The registry only knows "embedding": for an ONNX Runtime GenAI folder that means its hidden states.
    llm = _admin(admin_server, "/admin/models/load", {"id": "llm-emb", "path": str(SMOLLM_HIDDEN), "kind": "embedding"})
    assert llm.status_code == 200, llm.text
    vectors, _ = admin_server.embed("llm-emb", ["hello there"])
    assert vectors.shape == (1, 576) and np.isclose(np.linalg.norm(vectors[0]), 1.0, atol=1e-4)
    ranked = admin_server.post(
        "/v1/rerank", {"model": "reranker-2", "query": "capital of France", "documents": ["Paris", "bananas"]}
    )
    assert ranked.status_code == 200 and len(ranked.json()["results"]) == 2
    ids = {m["id"] for m in httpx.get(admin_server.base_url + "/v1/models").json()["data"]}
    assert ids == {MINILM_ID, "reranker-2", "llm-emb"}
    assert _admin(admin_server, "/admin/models/load", {"id": "llm-emb", "path": str(SMOLLM_HIDDEN)}).status_code == 409
    for model_id in ("reranker-2", "llm-emb"):
        assert _admin(admin_server, "/admin/models/unload", {"id": model_id}).status_code == 200
    gone = admin_server.post("/v1/embeddings", {"model": "llm-emb", "input": "x"})
    assert gone.status_code == 404 and gone.json()["error"]["code"] == "model_not_found"
    still, _ = admin_server.embed(MINILM_ID, ["still here"])  # the configured model is untouched
    assert still.shape == (1, 384)


def test_admin_refusals(admin_server: EmbedServer, tmp_path) -> None:
    body = {"id": "x", "path": str(RERANKER)}
    assert _admin(admin_server, "/admin/models/load", body, key=None).status_code == 401
    assert _admin(admin_server, "/admin/models/load", body, key=ADMIN.lower()).status_code == 401
    bad = _admin(admin_server, "/admin/models/load", {"id": "x", "path": str(tmp_path / "none")})
    assert bad.status_code == 400 and bad.json()["error"]["param"] == "path"
    assert _admin(admin_server, "/admin/models/unload", {"id": "never"}).status_code == 404
