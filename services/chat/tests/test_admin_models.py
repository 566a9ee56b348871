"""Multi-model hosting: /admin/models/load and /unload on a running chat service, with real models."""

from __future__ import annotations

import httpx
import pytest
from chat_testing import PHI3_TINY, ChatServer

ADMIN = "sk-admin-test-Key"


@pytest.fixture(scope="module")
def admin_server(smollm_path):
    server = ChatServer(smollm_path, CHAT_ADMIN_KEY=ADMIN, CHAT_MAX_MODEL_LEN="2048").start()
    yield server
    server.stop()


def _admin(server: ChatServer, path: str, body: dict, key: str | None = ADMIN) -> httpx.Response:
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    return httpx.post(server.base_url + path, json=body, headers=headers, timeout=120)


def test_load_second_model_serve_both_then_unload(admin_server: ChatServer) -> None:
    loaded = _admin(admin_server, "/admin/models/load", {"id": "phi3-tiny", "path": str(PHI3_TINY)})
    assert loaded.status_code == 200, loaded.text
    assert {m["id"] for m in loaded.json()["models"]} == {"smollm2-135m-instruct", "phi3-tiny"}
    client = admin_server.client()
    assert {m.id for m in client.models.list().data} == {"smollm2-135m-instruct", "phi3-tiny"}
    tiny = client.chat.completions.create(model="phi3-tiny", messages=[{"role": "user", "content": "Hi"}], max_tokens=3)
    assert tiny.usage.completion_tokens >= 1 and tiny.model == "phi3-tiny"
    small = client.chat.completions.create(
        model="smollm2-135m-instruct",
        messages=[{"role": "user", "content": "What is the capital of France?"}],
        temperature=0,
        max_tokens=24,
    )
    assert "Paris" in small.choices[0].message.content
    assert _admin(admin_server, "/admin/models/load", {"id": "phi3-tiny", "path": str(PHI3_TINY)}).status_code == 409
    unloaded = _admin(admin_server, "/admin/models/unload", {"id": "phi3-tiny"})
    assert unloaded.status_code == 200 and [m["id"] for m in unloaded.json()["models"]] == ["smollm2-135m-instruct"]
    gone = httpx.post(
        admin_server.base_url + "/v1/chat/completions",
        json={"model": "phi3-tiny", "messages": [{"role": "user", "content": "Hi"}]},
    )
    assert gone.status_code == 404 and gone.json()["error"]["code"] == "model_not_found"


def test_admin_refusals(admin_server: ChatServer, chat_server: ChatServer, tmp_path) -> None:
    body = {"id": "x", "path": str(PHI3_TINY)}
    assert _admin(admin_server, "/admin/models/load", body, key=None).status_code == 401
    wrong_case = _admin(admin_server, "/admin/models/load", body, key=ADMIN.swapcase())
    assert wrong_case.status_code == 401 and wrong_case.json()["error"]["type"] == "authentication_error"
    disabled = _admin(chat_server, "/admin/models/load", body)  # the shared server has no admin key
    assert disabled.status_code == 403 and disabled.json()["error"]["code"] == "admin_disabled"
    bad_path = _admin(admin_server, "/admin/models/load", {"id": "x", "path": str(tmp_path / "none")})
    assert bad_path.status_code == 400 and bad_path.json()["error"]["param"] == "path"
    assert str(tmp_path / "none") in bad_path.json()["error"]["message"]
    unknown = _admin(admin_server, "/admin/models/unload", {"id": "never-loaded"})
    assert unknown.status_code == 404
