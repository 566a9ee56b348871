"""Bounded concurrency with a bounded, timed queue: overload is refused fast instead of piling up."""

from __future__ import annotations

import asyncio
import math
import time

from ortserve_common.errors import overloaded


class AdmissionSlot:
    """A held place among the running requests; `release()` is idempotent so every exit path may call it."""

    def __init__(self, controller: AdmissionController, queued_s: float) -> None:
        self._controller = controller
        self.queued_s = queued_s
        self._released = False

    def release(self) -> None:
        if not self._released:
            self._released = True
            self._controller._release()


class AdmissionController:
    def __init__(self, max_running: int, max_waiting: int, queue_timeout_s: float) -> None:
        self.max_running = max_running
        self.max_waiting = max_waiting
        self.queue_timeout_s = queue_timeout_s
        self._semaphore = asyncio.Semaphore(max_running)
        self.running = 0
        self.waiting = 0

    async def acquire(self) -> AdmissionSlot:
        start = time.perf_counter()
        if self._semaphore.locked() or self.waiting:
            if self.waiting >= self.max_waiting:
                raise overloaded(
                    f"Server is at capacity ({self.running} running, {self.waiting} queued); retry later.",
                    429,
                    retry_after_s=1,
                )
            self.waiting += 1
            try:
                await asyncio.wait_for(self._semaphore.acquire(), self.queue_timeout_s)
            except TimeoutError:
                raise overloaded(
                    f"Request waited {self.queue_timeout_s:g}s in the queue without being scheduled; retry later.",
                    503,
                    retry_after_s=max(1, math.ceil(self.queue_timeout_s)),
                ) from None
            finally:
                self.waiting -= 1
        else:
            await self._semaphore.acquire()
        self.running += 1
        return AdmissionSlot(self, time.perf_counter() - start)

    def _release(self) -> None:
        self.running -= 1
        self._semaphore.release()
