"""Dynamic batching on a fake model: grouping, length sorting, order of results, cancellation, failures."""

from __future__ import annotations

import asyncio
import threading

import numpy as np
import pytest
from embeddings_service.batcher import EmbeddingBatcher
from embeddings_service.engine.types import EncodedInput
from ortserve_testing.waiting import DEADLINE_S, eventually


class RecordingModel:
    """Output row = [first id, length]; remembers every batch it ran and on which thread. `hold` makes each run wait
    until the test sets `release`, with `running` set meanwhile."""

    def __init__(self, hold: bool = False, fail: bool = False) -> None:
        self.batches: list[list[int]] = []
        self.threads: set[str] = set()
        self.running = threading.Event()
        self.release = threading.Event()
        if not hold:
            self.release.set()
        self.fail = fail

    def run_batch(self, batch: list[EncodedInput]) -> np.ndarray:
        self.threads.add(threading.current_thread().name)
        self.batches.append([len(item) for item in batch])
        self.running.set()
        if not self.release.wait(DEADLINE_S):
            raise RuntimeError("the test never released the model")
        if self.fail:
            raise RuntimeError("model exploded")
        return np.array([[item.ids[0], len(item)] for item in batch], dtype=np.float32)

    def close(self) -> None:
        self.release.set()


def _item(first: int, length: int) -> EncodedInput:
    return EncodedInput([first] * length)


@pytest.fixture
async def started():
    batchers: list[EmbeddingBatcher] = []

    def start(model: RecordingModel, max_batch_size: int = 8, max_wait_s: float = 0.05) -> EmbeddingBatcher:
        batcher = EmbeddingBatcher("fake", model, max_batch_size, max_wait_s)
        batcher.start()
        batchers.append(batcher)
        return batcher

    yield start
    for batcher in batchers:
        await batcher.close()


async def test_concurrent_requests_share_one_sorted_batch(started) -> None:
    model = RecordingModel()
    batcher = started(model, max_batch_size=8, max_wait_s=0.05)
    requests = [[_item(10, 5), _item(11, 1)], [_item(20, 3)], [_item(30, 7), _item(31, 2)]]
    results = await asyncio.gather(*(batcher.submit(items) for items in requests))
    assert model.batches == [[1, 2, 3, 5, 7]]  # one run, shortest first
    for items, (rows, stats) in zip(requests, results, strict=True):
        # Each request gets its own rows back, in its own order.
        assert rows[:, 0].tolist() == [item.ids[0] for item in items]
        assert all(s.batch_size == 5 for s in stats)
    assert all(name.startswith("batch-fake") for name in model.threads)  # never on the event loop's thread


async def test_max_batch_size_splits_and_full_batch_does_not_wait(started) -> None:
    model = RecordingModel()
    # A window no test outlives: within the deadline, only batches that are full can have run.
    batcher = started(model, max_batch_size=4, max_wait_s=60 * DEADLINE_S)
    rows, _ = await asyncio.wait_for(batcher.submit([_item(i, 1 + i % 3) for i in range(8)]), DEADLINE_S)
    # A large request is queued shortest first, so its batches hold inputs of similar length.
    assert model.batches == [[1, 1, 1, 2], [2, 2, 3, 3]]
    assert rows[:, 0].tolist() == list(range(8))  # and the rows still come back in the request's order


async def test_lone_input_runs_alone_once_its_window_ends(started) -> None:
    model = RecordingModel()
    batcher = started(model, max_batch_size=64, max_wait_s=0.1)
    # The deadline only bounds a failure: a batcher that waits for company, or reads the window as milliseconds.
    _, (stats,) = await asyncio.wait_for(batcher.submit([_item(1, 2)]), DEADLINE_S)
    assert model.batches == [[2]]
    assert stats.waited_s >= 0.1 - 1e-3  # it did wait its window out (a timer never fires early)


async def test_cancelled_request_is_dropped_and_others_served(started) -> None:
    model = RecordingModel(hold=True)
    batcher = started(model, max_batch_size=1, max_wait_s=0.0)
    first = asyncio.create_task(batcher.submit([_item(1, 1)]))
    await eventually(model.running.is_set, "the first batch running")
    doomed = asyncio.create_task(batcher.submit([_item(2, 2), _item(3, 3)]))
    await eventually(lambda: len(batcher._pending) == 2, "the doomed inputs queued behind the running batch")
    doomed.cancel()
    kept = asyncio.create_task(batcher.submit([_item(4, 4)]))
    await eventually(lambda: len(batcher._pending) == 3, "the kept input queued too")
    model.release.set()
    rows, _ = await asyncio.wait_for(kept, DEADLINE_S)
    await first
    assert rows[:, 0].tolist() == [4]
    assert model.batches == [[1], [4]]


async def test_model_failure_reaches_every_request_in_the_batch(started) -> None:
    batcher = started(RecordingModel(fail=True), max_batch_size=8, max_wait_s=0.02)
    results = await asyncio.gather(batcher.submit([_item(1, 1)]), batcher.submit([_item(2, 1)]), return_exceptions=True)
    assert all(isinstance(r, RuntimeError) and "exploded" in str(r) for r in results)
    # The batcher survives a failed batch.
    batcher._model.fail = False  # type: ignore[attr-defined]
    rows, _ = await batcher.submit([_item(5, 1)])
    assert rows[0, 0] == 5
