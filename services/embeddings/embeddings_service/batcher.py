"""Dynamic batching: inputs from concurrent requests are gathered into one model run.

A batch starts when `max_batch_size` inputs are waiting, or `max_wait_s` after the oldest waiting input arrived,
whichever comes first. While a batch runs (on a worker thread, off the event loop) the next one fills up, so under
load batches grow by themselves and the wait costs nothing. Inside a batch inputs are sorted by length, so each
model run pads as little as it can.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np

from embeddings_service.engine.types import BatchModel, EncodedInput

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class BatchStats:
    """How one input was served: which model run it was in, that run's size and time, and its wait for it."""

    batch_id: int
    batch_size: int
    waited_s: float
    run_s: float


@dataclass
class _Pending:
    item: EncodedInput
    future: asyncio.Future[tuple[np.ndarray, BatchStats]]
    enqueued_at: float


class EmbeddingBatcher:
    def __init__(self, name: str, model: BatchModel, max_batch_size: int, max_wait_s: float) -> None:
        self.name = name
        self._model = model
        self.max_batch_size = max_batch_size
        self.max_wait_s = max_wait_s
        self._pending: deque[_Pending] = deque()
        self._arrived = asyncio.Event()
        # One thread per model: batches of one model never overlap, so each run gets all the intra-op threads.
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix=f"batch-{name}")
        self._task: asyncio.Task[None] | None = None
        self._batches_run = 0
        # Told (model name, batch size, run seconds) after each model run: the metrics' batch-size histogram.
        self.on_batch: Callable[[str, int, float], None] | None = None

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._serve(), name=f"batcher-{self.name}")

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            try:
                await self._task
            except asyncio.CancelledError:
                pass
        while self._pending:
            pending = self._pending.popleft()
            if not pending.future.done():
                pending.future.set_exception(RuntimeError("the service is shutting down"))
        self._executor.shutdown(wait=True, cancel_futures=True)

    async def submit(self, items: list[EncodedInput]) -> tuple[np.ndarray, list[BatchStats]]:
        """Model outputs for `items`, in order (one row each), and how each was batched."""
        loop = asyncio.get_running_loop()
        now = time.perf_counter()
        # Queued shortest first: a large request then splits into batches of similar lengths, not just sorted ones.
        order = sorted(range(len(items)), key=lambda i: len(items[i]))
        futures: list[asyncio.Future[tuple[np.ndarray, BatchStats]]] = [loop.create_future() for _ in items]
        self._pending.extend(_Pending(items[i], futures[i], now) for i in order)
        self._arrived.set()
        try:
            results = await asyncio.gather(*futures)
        except BaseException:
            # The request was cancelled (client gone) or failed: inputs not yet run are dropped from the queue.
            for future in futures:
                future.cancel()
            raise
        return np.stack([row for row, _ in results]), [stats for _, stats in results]

    def _drop_cancelled(self) -> None:
        while self._pending and self._pending[0].future.done():
            self._pending.popleft()

    async def _next_batch(self) -> list[_Pending]:
        while True:
            self._drop_cancelled()
            if self._pending:
                break
            self._arrived.clear()
            await self._arrived.wait()
        deadline = self._pending[0].enqueued_at + self.max_wait_s
        while len(self._pending) < self.max_batch_size:
            remaining = deadline - time.perf_counter()
            if remaining <= 0:
                break
            self._arrived.clear()
            try:
                await asyncio.wait_for(self._arrived.wait(), remaining)
            except TimeoutError:
                break
        batch: list[_Pending] = []
        while self._pending and len(batch) < self.max_batch_size:
            pending = self._pending.popleft()
            if not pending.future.done():
                batch.append(pending)
        return batch

    async def _serve(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            batch = await self._next_batch()
            if not batch:
                continue
            batch.sort(key=lambda pending: len(pending.item))
            start = time.perf_counter()
            try:
                outputs = await loop.run_in_executor(self._executor, self._model.run_batch, [p.item for p in batch])
                if len(outputs) != len(batch):
                    raise RuntimeError(f"model {self.name} gave {len(outputs)} rows for a batch of {len(batch)}")
            except Exception as exc:  # handed to every request in the batch, which re-raise it
                logger.exception("model %s failed on a batch of %d", self.name, len(batch))
                for pending in batch:
                    if not pending.future.done():
                        pending.future.set_exception(exc)
                continue
            run_s = time.perf_counter() - start
            self._batches_run += 1
            if self.on_batch is not None:
                self.on_batch(self.name, len(batch), run_s)
            for row, pending in zip(outputs, batch, strict=True):
                if not pending.future.done():
                    stats = BatchStats(self._batches_run, len(batch), start - pending.enqueued_at, run_s)
                    pending.future.set_result((row, stats))
