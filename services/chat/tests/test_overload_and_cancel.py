"""Bounded concurrency and queue (429/503 with Retry-After), client disconnects, and a responsive event loop."""

from __future__ import annotations

import threading
import time

import httpx
import pytest
from chat_testing import ChatServer

MODEL_ID = "smollm2-135m-instruct"
# Greedy counting on this model runs past 1,500 tokens without an end of sequence (checked against the plain
# engine), so the stream reliably holds its slot for the whole test.
LONG = {"model": MODEL_ID, "prompt": "1, 2, 3, 4, 5, 6, 7, 8,", "max_tokens": 1500, "temperature": 0, "stream": True}
PATH = "/v1/completions"


@pytest.fixture(scope="module")
def tight_server(smollm_path):
    """One generation at a time, one waiting place, a three-second queue timeout."""
    server = ChatServer(smollm_path, CHAT_MAX_CONCURRENCY="1", CHAT_MAX_QUEUE="1", CHAT_QUEUE_TIMEOUT_S="3").start()
    yield server
    server.stop()


def _open_stream(server: ChatServer, client: httpx.Client):
    """Start a long stream and read until the first content arrives: it now holds the only slot."""
    response = client.send(client.build_request("POST", server.base_url + PATH, json=LONG), stream=True)
    assert response.status_code == 200
    # Keep the line iterator referenced: dropping a half-read httpx iterator closes the connection.
    response.lines = response.iter_lines()
    for line in response.lines:
        if '"text":"' in line and '"text":""' not in line:
            break
    return response


def _wait_until_accepting(server: ChatServer, timeout_s: float = 5.0) -> float:
    body = {**LONG, "stream": False, "max_tokens": 1}
    start = time.monotonic()
    while time.monotonic() - start < timeout_s:
        response = httpx.post(server.base_url + PATH, json=body, timeout=30)
        if response.status_code == 200:
            return time.monotonic() - start
        time.sleep(0.05)
    raise AssertionError("the slot was never freed")


def test_queue_full_is_429_and_queue_timeout_is_503(tight_server: ChatServer) -> None:
    with httpx.Client(timeout=60) as holder:
        stream = _open_stream(tight_server, holder)
        results: dict[str, httpx.Response] = {}
        waiter = threading.Thread(
            target=lambda: results.setdefault(
                "queued",
                httpx.post(tight_server.base_url + PATH, json={**LONG, "stream": False}, timeout=30),
            )
        )
        waiter.start()
        time.sleep(1.0)  # the waiter now holds the single queue place (it waits up to 3 s there)
        refused = httpx.post(tight_server.base_url + PATH, json=LONG, timeout=30)
        waiter.join()
        stream.close()
    assert refused.status_code == 429
    assert refused.headers["retry-after"].isdigit()
    assert refused.json()["error"]["type"] == "rate_limit_error"
    timed_out = results["queued"]
    assert timed_out.status_code == 503
    assert timed_out.headers["retry-after"].isdigit()
    assert timed_out.json()["error"]["code"] == "service_unavailable"
    _wait_until_accepting(tight_server)


def test_client_disconnect_frees_the_slot(tight_server: ChatServer) -> None:
    with httpx.Client(timeout=60) as holder:
        stream = _open_stream(tight_server, holder)
        stream.close()
    # With the only slot held by a 2000-token story, a new request gets in only if the disconnect freed it.
    assert _wait_until_accepting(tight_server, timeout_s=3.0) < 3.0


def test_health_answers_during_generation(tight_server: ChatServer) -> None:
    with httpx.Client(timeout=60) as holder:
        stream = _open_stream(tight_server, holder)
        start = time.perf_counter()
        for _ in range(10):
            assert httpx.get(tight_server.base_url + "/health", timeout=5).status_code == 200
        elapsed = (time.perf_counter() - start) / 10
        stream.close()
    # Not a timing assertion on the model: /health must not wait for a 2000-token generation to finish.
    assert elapsed < 1.0
