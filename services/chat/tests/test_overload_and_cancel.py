"""Bounded concurrency and queue (429/503 with Retry-After), client disconnects, and a responsive event loop.

Who holds the slot and who waits is decided by the test, never by the clock: the queue tests run in-process on an
engine that holds until released, and the real-model tests wait for the states they need (/metrics) rather than
sleeping for them."""

from __future__ import annotations

import threading
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest
from chat_service.engine import GenerationRequest, TokenEvent
from chat_service.engine.thread_events import InFlight
from chat_service.engine.types import EngineStats
from chat_service.main import create_app
from chat_service.settings import ChatSettings
from chat_testing import CharTokenizer, ChatServer
from fastapi.testclient import TestClient
from ortserve_testing import metrics
from ortserve_testing.waiting import DEADLINE_S, eventually, wait_until

MODEL_ID = "smollm2-135m-instruct"
# Greedy counting on this model runs past 1,500 tokens without an end of sequence (checked against the plain
# engine), so the stream reliably holds its slot for the whole test.
LONG = {"model": MODEL_ID, "prompt": "1, 2, 3, 4, 5, 6, 7, 8,", "max_tokens": 1500, "temperature": 0, "stream": True}
PATH = "/v1/completions"


# --- the queue, in-process on a held engine ---


class HeldEngine:
    """Gives one token, then holds (its request keeps its slot) until the test releases it; `DEADLINE_S` only ends
    a hold the test forgot to release."""

    name = "held"
    context_length = 64
    system_fingerprint = "fp_testdouble"

    def __init__(self) -> None:
        self.release = threading.Event()
        self.in_flight = InFlight()
        self.tokenizer = CharTokenizer()

    async def generate(self, request: GenerationRequest) -> AsyncIterator[TokenEvent]:
        yield TokenEvent(ord("a"), "a")
        await eventually(self.release.is_set, "the test releasing the engine", poll_s=0.005)
        yield TokenEvent(ord("b"), "b", "length" if request.max_tokens == 2 else "stop")

    def stats(self) -> EngineStats:
        return EngineStats(rows_decoding=self.in_flight.count, rows_waiting=0)

    def close(self) -> None:
        self.release.set()


class OneSlot:
    """The service in-process on a held engine: one generation at a time, one request allowed to wait; requests sent
    in the background answer into `results`."""

    def __init__(self, http: TestClient, engine: HeldEngine) -> None:
        self.http, self.engine = http, engine
        self.results: dict[str, httpx.Response] = {}
        self.threads: list[threading.Thread] = []

    def send(self, name: str) -> None:
        def post() -> None:
            self.results[name] = self.http.post(PATH, json={"model": "fake", "prompt": name, "max_tokens": 2})

        self.threads.append(threading.Thread(target=post, name=name))
        self.threads[-1].start()

    def gauges(self) -> tuple[float, float]:
        return metrics.admission(self.http.get("/metrics").text)

    def release(self) -> None:
        self.engine.release.set()
        for thread in self.threads:
            thread.join(DEADLINE_S)


@contextmanager
def _one_slot(tmp_path: Path, queue_timeout_s: float) -> Iterator[OneSlot]:
    engine = HeldEngine()
    settings = ChatSettings(
        model_path=tmp_path,
        model_id="fake",
        data_dir=tmp_path / "data",
        max_concurrency=1,
        max_queue=1,
        queue_timeout_s=queue_timeout_s,
    )
    with TestClient(create_app(settings, engine_factory=lambda _path, _settings: engine)) as http:
        scene = OneSlot(http, engine)
        try:
            yield scene
        finally:
            scene.release()  # a failed test too leaves no request running past the app


def test_queue_full_is_429_and_the_queued_request_is_served_once_the_slot_frees(tmp_path: Path) -> None:
    # A queue timeout no wait here reaches: the waiter stays queued for as long as the test needs it there.
    with _one_slot(tmp_path, queue_timeout_s=DEADLINE_S) as scene:
        scene.send("holder")
        wait_until(lambda: scene.gauges() == (1, 0), "the holder takes the only slot")
        scene.send("waiter")
        wait_until(lambda: scene.gauges() == (1, 1), "the waiter takes the only queue place")
        refused = scene.http.post(PATH, json={"model": "fake", "prompt": "refused", "max_tokens": 2, "stream": True})
        assert refused.status_code == 429
        assert refused.headers["retry-after"].isdigit()
        assert refused.json()["error"]["type"] == "rate_limit_error"
        assert not scene.results
        scene.release()
        assert [scene.results[name].json()["choices"][0]["text"] for name in ("holder", "waiter")] == ["ab", "ab"]
        assert scene.gauges() == (0, 0)


def test_queue_timeout_is_503_and_frees_its_place(tmp_path: Path) -> None:
    # The holder is held until released, so the waiter surely waits out its (short) queue timeout first.
    with _one_slot(tmp_path, queue_timeout_s=0.2) as scene:
        scene.send("holder")
        wait_until(lambda: scene.gauges() == (1, 0), "the holder takes the only slot")
        scene.send("waiter")
        wait_until(lambda: "waiter" in scene.results, "the waiter's queue timeout")
        timed_out = scene.results["waiter"]
        assert timed_out.status_code == 503
        assert timed_out.headers["retry-after"].isdigit()
        assert timed_out.json()["error"]["code"] == "service_unavailable"
        assert scene.gauges() == (1, 0) and "holder" not in scene.results
        scene.release()
        assert scene.results["holder"].status_code == 200
        assert scene.http.post(PATH, json={"model": "fake", "prompt": "after", "max_tokens": 2}).status_code == 200


# --- a real stream on the real model ---


@pytest.fixture(scope="module")
def tight_server(smollm_path):
    """One generation at a time, so that a held stream keeps everyone else out."""
    server = ChatServer(smollm_path, CHAT_MAX_CONCURRENCY="1", CHAT_MAX_QUEUE="1").start()
    yield server
    server.stop()


def _metrics(server: ChatServer) -> str:
    return httpx.get(server.base_url + "/metrics", timeout=30).text


def _idle(server: ChatServer) -> None:
    """Until no request holds or waits for the slot (a stream a test closed may still be ending)."""
    wait_until(lambda: metrics.admission(_metrics(server)) == (0, 0), "the chat service idle", poll_s=0.05)


def _finished(server: ChatServer, reason: str) -> float:
    return metrics.sample(_metrics(server), "ortserve_request_finished_total", model=MODEL_ID, finish_reason=reason)


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


def test_client_disconnect_ends_the_generation_and_frees_the_slot(tight_server: ChatServer) -> None:
    _idle(tight_server)
    aborted, ran_out = _finished(tight_server, "abort"), _finished(tight_server, "length")
    with httpx.Client(timeout=60) as holder:
        stream = _open_stream(tight_server, holder)
        assert metrics.admission(_metrics(tight_server)) == (1, 0)
        stream.close()
    # The slot comes free because the disconnect ended the generation, not because it ran its 1,500 tokens out.
    _idle(tight_server)
    assert (_finished(tight_server, "abort"), _finished(tight_server, "length")) == (aborted + 1, ran_out)
    body = {**LONG, "stream": False, "max_tokens": 1}
    assert httpx.post(tight_server.base_url + PATH, json=body, timeout=60).status_code == 200


def test_health_answers_during_generation(tight_server: ChatServer) -> None:
    _idle(tight_server)
    with httpx.Client(timeout=60) as holder:
        stream = _open_stream(tight_server, holder)
        for _ in range(10):
            assert httpx.get(tight_server.base_url + "/health", timeout=60).status_code == 200
        # /health did not wait for the generation to end: it is still running, its 1,500 tokens not yet out.
        assert metrics.admission(_metrics(tight_server)) == (1, 0)
        stream.close()
