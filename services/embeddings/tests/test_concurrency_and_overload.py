"""Dynamic batching under concurrency gives the same vectors as one request at a time; overload is refused fast
(on a held fake model in-process, so that who holds the slot and who waits is the test's to say, not the clock's)."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from contextlib import contextmanager

import httpx
import numpy as np
from embeddings_service.main import create_app
from embeddings_service.model_table import EmbeddingModelTable
from embeddings_service.settings import EmbedSettings
from embeddings_testing import LLM_ID, MINILM_ID, EmbedServer, FakeLoader, cosine
from fastapi.testclient import TestClient
from ortserve_testing import metrics
from ortserve_testing.waiting import DEADLINE_S, wait_until


def _texts(n: int) -> list[str]:
    # Different lengths, so batches mix short and long inputs and padding is really exercised.
    return [f"Request {i}: " + "the quick brown fox jumps over the lazy dog " * (1 + i % 9) for i in range(n)]


async def _concurrent(server: EmbedServer, bodies: list[dict]) -> list[dict]:
    async with httpx.AsyncClient(base_url=server.base_url, timeout=120) as client:
        responses = await asyncio.gather(*(client.post("/v1/embeddings", json=b) for b in bodies))
    assert all(r.status_code == 200 for r in responses), [r.text for r in responses if r.status_code != 200]
    return [r.json() for r in responses]


def _vectors(body: dict) -> np.ndarray:
    return np.array([d["embedding"] for d in body["data"]], dtype=np.float32)


def test_concurrent_requests_match_one_at_a_time(server: EmbedServer) -> None:
    texts = _texts(40)
    # Single inputs and multi-input requests, all at once.
    bodies = [{"model": MINILM_ID, "input": t} for t in texts[:30]]
    bodies += [{"model": MINILM_ID, "input": texts[i : i + 5]} for i in range(30, 40, 5)]
    bodies += [{"model": LLM_ID, "input": t} for t in texts[:4]]
    before = len(server.access_lines())
    concurrent = asyncio.run(_concurrent(server, bodies))
    sequential = [server.post("/v1/embeddings", b).json() for b in bodies]
    for together, alone in zip(concurrent, sequential, strict=True):
        assert together["usage"] == alone["usage"]
        assert cosine(_vectors(together), _vectors(alone)).min() > 0.99999
        np.testing.assert_allclose(_vectors(together), _vectors(alone), atol=2e-5)
    # The concurrent requests were really batched together (the access log records each request's batch size).
    lines = [line for line in server.access_lines()[before:] if line.get("path") == "/v1/embeddings"]
    assert max(line["batch_size_max"] for line in lines[: len(bodies)]) > 4
    assert all({"model", "prompt_tokens", "inference_s", "batch_wait_s", "total_time_s"} <= set(line) for line in lines)


class HeldModel:
    """Each model run waits until the test releases it, so a request holds its slot exactly as long as the test says,
    on any clock; `DEADLINE_S` only ends a run the test forgot to release."""

    def __init__(self) -> None:
        self.release = threading.Event()

    def run_batch(self, batch: list) -> np.ndarray:
        if not self.release.wait(DEADLINE_S):
            raise RuntimeError("the test never released the model")
        return np.ones((len(batch), 4), dtype=np.float32)

    def close(self) -> None:
        self.release.set()


class OneSlot:
    """The service in-process on a held model: one request served at a time, one allowed to wait; requests sent in
    the background answer into `results`."""

    def __init__(self, http: TestClient, model: HeldModel) -> None:
        self.http, self.model = http, model
        self.results: dict[str, httpx.Response] = {}
        self.threads: list[threading.Thread] = []

    def send(self, name: str) -> None:
        def post() -> None:
            self.results[name] = self.http.post("/v1/embeddings", json={"model": "fake", "input": name})

        self.threads.append(threading.Thread(target=post, name=name))
        self.threads[-1].start()

    def gauges(self) -> tuple[float, float]:
        return metrics.admission(self.http.get("/metrics").text)

    def release(self) -> None:
        self.model.release.set()
        for thread in self.threads:
            thread.join(DEADLINE_S)


@contextmanager
def _one_slot(queue_timeout_s: float) -> Iterator[OneSlot]:
    model = HeldModel()
    settings = EmbedSettings(
        models="fake=/unused", max_concurrency=1, max_queue=1, queue_timeout_s=queue_timeout_s, max_batch_size=1
    )

    def model_table_factory(settings: EmbedSettings) -> EmbeddingModelTable:
        return EmbeddingModelTable.load(settings, FakeLoader(model))  # type: ignore[arg-type]

    with TestClient(create_app(settings, model_table_factory=model_table_factory)) as http:
        scene = OneSlot(http, model)
        try:
            yield scene
        finally:
            scene.release()  # a failed test too leaves no request running past the app


def test_queue_full_is_429_and_the_queued_request_is_served_once_the_slot_frees() -> None:
    # A queue timeout no wait here reaches: the waiter stays queued for as long as the test needs it there.
    with _one_slot(queue_timeout_s=DEADLINE_S) as scene:
        scene.send("holder")
        wait_until(lambda: scene.gauges() == (1, 0), "the holder takes the only slot")
        scene.send("waiter")
        wait_until(lambda: scene.gauges() == (1, 1), "the waiter takes the only queue place")
        refused = scene.http.post("/v1/embeddings", json={"model": "fake", "input": "refused"})
        assert refused.status_code == 429, refused.text
        assert refused.json()["error"]["code"] == "rate_limit_exceeded" and refused.headers["retry-after"]
        # /health answers while the model is busy: inference runs off the event loop.
        assert scene.http.get("/health").status_code == 200
        assert not scene.results
        scene.release()
        assert scene.results["holder"].status_code == 200 and scene.results["waiter"].status_code == 200
        assert scene.gauges() == (0, 0)


def test_queue_timeout_is_503_and_frees_its_place() -> None:
    # The holder is held until released, so the waiter surely waits out its (short) queue timeout first.
    with _one_slot(queue_timeout_s=0.2) as scene:
        scene.send("holder")
        wait_until(lambda: scene.gauges() == (1, 0), "the holder takes the only slot")
        scene.send("waiter")
        wait_until(lambda: "waiter" in scene.results, "the waiter's queue timeout")
        timed_out = scene.results["waiter"]
        assert timed_out.status_code == 503, timed_out.text
        assert timed_out.json()["error"]["code"] == "service_unavailable" and timed_out.headers["retry-after"]
        assert scene.gauges() == (1, 0) and "holder" not in scene.results
        scene.release()
        assert scene.results["holder"].status_code == 200
        assert scene.http.post("/v1/embeddings", json={"model": "fake", "input": "after"}).status_code == 200
