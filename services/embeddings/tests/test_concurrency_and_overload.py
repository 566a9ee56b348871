"""Dynamic batching under concurrency gives the same vectors as one request at a time; overload is refused fast."""

from __future__ import annotations

import asyncio
import threading
import time

import httpx
import numpy as np
import pytest
from embeddings_testing import LLM_ID, MINILM, MINILM_ID, EmbedServer, cosine


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


@pytest.fixture(scope="module")
def tight_server(real_models: None):
    server = EmbedServer(
        [{"id": MINILM_ID, "path": str(MINILM)}],
        EMBED_MAX_CONCURRENCY="1",
        EMBED_MAX_QUEUE="1",
        EMBED_QUEUE_TIMEOUT_S="0.4",
        EMBED_MAX_BATCH_SIZE="1",
        EMBED_MAX_INPUTS="4096",
    ).start()
    yield server
    server.stop()


def test_queue_full_is_429_and_queue_timeout_is_503(tight_server: EmbedServer) -> None:
    # One slow request (long inputs, one per model run) holds the only slot for a second or more.
    heavy = {"model": MINILM_ID, "input": ["slow " * 250] * 150}
    results: dict[str, httpx.Response] = {}

    def send(name: str, body: dict) -> None:
        results[name] = tight_server.post("/v1/embeddings", body)

    holder = threading.Thread(target=send, args=("holder", heavy))
    holder.start()
    time.sleep(0.4)  # margin for the holder to be admitted first, even on a busy machine
    waiter = threading.Thread(target=send, args=("waiter", {"model": MINILM_ID, "input": "hi"}))
    waiter.start()
    time.sleep(0.1)
    refused = tight_server.post("/v1/embeddings", {"model": MINILM_ID, "input": "hi"})
    waiter.join()
    assert refused.status_code == 429, refused.text
    assert refused.json()["error"]["code"] == "rate_limit_exceeded" and refused.headers["retry-after"]
    timed_out = results["waiter"]
    assert timed_out.status_code == 503, timed_out.text
    assert timed_out.json()["error"]["code"] == "service_unavailable" and timed_out.headers["retry-after"]
    holder.join()
    assert results["holder"].status_code == 200
    # /health answered all along: inference runs off the event loop.
    assert httpx.get(tight_server.base_url + "/health").status_code == 200
