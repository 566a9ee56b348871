"""Multi-model hosting: /admin/models/load and /unload on a running chat service, with real models."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

import httpx
import pytest
from chat_testing import MODEL_ID, PHI3_TINY, ChatServer

ADMIN = "sk-admin-test-Key"


@pytest.fixture(scope="module")
def admin_server(smollm_path):
    server = ChatServer(smollm_path, CHAT_ADMIN_KEY=ADMIN, CHAT_MAX_MODEL_LEN="2048", CHAT_UNLOAD_GRACE_S="600").start()
    yield server
    server.stop()


def _admin(server: ChatServer, path: str, body: dict, key: str | None = ADMIN, timeout: float = 120) -> httpx.Response:
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    return httpx.post(server.base_url + path, json=body, headers=headers, timeout=timeout)


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


@contextmanager
def _long_stream(server: ChatServer, model: str) -> Iterator[httpx.Response]:
    """A stream that cannot end early: end-of-sequence forbidden, 1500 tokens asked (seconds of work on any CPU)."""
    body = {
        "model": model,
        "messages": [{"role": "user", "content": "Tell me a long story."}],
        "max_tokens": 1500,
        "temperature": 0,
        "logit_bias": {"2": -100},  # SmolLM2's <|im_end|>
        "stream": True,
        "stream_options": {"include_usage": True},
    }
    with httpx.stream("POST", server.base_url + "/v1/chat/completions", json=body, timeout=300) as response:
        yield response


def _events(response: httpx.Response):
    for line in response.iter_lines():
        if line.startswith("data: ") and line != "data: [DONE]":
            yield json.loads(line[len("data: ") :])


def _unload_in_background(server: ChatServer, model: str) -> tuple[threading.Thread, list[httpx.Response]]:
    done: list[httpx.Response] = []
    # An unload waits for the running streams up to the server's grace (600 s on admin_server): on a busy machine
    # the 1500-token stream can take minutes, so the call may too.
    thread = threading.Thread(
        target=lambda: done.append(_admin(server, "/admin/models/unload", {"id": model}, timeout=660))
    )
    thread.start()
    return thread, done


def _served(server: ChatServer) -> set[str]:
    return {m["id"] for m in httpx.get(server.base_url + "/v1/models").json()["data"]}


def test_unload_lets_running_streams_finish(admin_server: ChatServer, smollm_path) -> None:
    """Unloading stops new requests for the model at once and waits for the streams already running on it."""
    assert _admin(admin_server, "/admin/models/load", {"id": "smollm-b", "path": str(smollm_path)}).status_code == 200
    with _long_stream(admin_server, "smollm-b") as response:
        events = _events(response)
        assert next(events)["choices"][0]["delta"]["role"] == "assistant"
        thread, unloaded = _unload_in_background(admin_server, "smollm-b")
        for _ in range(600):  # the model leaves the listing as soon as the unload begins
            if "smollm-b" not in _served(admin_server):
                break
            time.sleep(0.1)
        new = httpx.post(
            admin_server.base_url + "/v1/chat/completions",
            json={"model": "smollm-b", "messages": [{"role": "user", "content": "Hi"}]},
        )
        assert new.status_code == 404 and new.json()["error"]["code"] == "model_not_found"
        assert thread.is_alive(), "the unload returned while a 1500-token stream was still running"
        rest = list(events)
    thread.join(timeout=660)
    assert not [e for e in rest if "error" in e], rest[-3:]
    assert [e["choices"][0]["finish_reason"] for e in rest if e["choices"]][-1] == "length"
    assert rest[-1]["usage"]["completion_tokens"] == 1500
    assert unloaded[0].status_code == 200 and "smollm-b" not in {m["id"] for m in unloaded[0].json()["models"]}


@pytest.mark.parametrize("engine", ["batched", "generator"])
def test_unload_ends_streams_past_the_grace_with_an_error(smollm_path, engine: str) -> None:
    server = ChatServer(
        smollm_path, CHAT_ADMIN_KEY=ADMIN, CHAT_MAX_MODEL_LEN="2048", CHAT_UNLOAD_GRACE_S="0.5", CHAT_ENGINE=engine
    )
    server.start()
    try:
        with _long_stream(server, MODEL_ID) as response:
            events = _events(response)
            assert next(events)["choices"][0]["delta"]["role"] == "assistant"
            thread, unloaded = _unload_in_background(server, MODEL_ID)
            rest = list(events)  # ends: the stream is cut half a second into the unload, long before 1500 tokens
        thread.join(timeout=120)
        assert unloaded[0].status_code == 200 and unloaded[0].json()["models"] == []
        error = rest[-1]["error"]
        assert error["code"] == "model_unloaded" and error["type"] == "server_error", error
        assert "unloaded" in error["message"]
        assert sum(1 for e in rest if e.get("choices")) < 1500
    finally:
        server.stop()
