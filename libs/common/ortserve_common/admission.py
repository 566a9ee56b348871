"""Bounded concurrency with a bounded, timed queue: overload is refused fast instead of piling up.

Queued `interactive` requests are admitted before queued `batch` ones (first come, first served within each), and
`interactive_reserved` of the places are for interactive requests only: batch requests hold at most the others, so
an interactive request that arrives during a batch flood is admitted at once while fewer than that many interactive
requests run. Each priority has its own queue of up to `max_waiting`, so a batch flood that fills its queue is
refused without refusing interactive requests.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections import deque

from ortserve_common.errors import overloaded
from ortserve_common.priority import DEFAULT_PRIORITY, PRIORITIES, Priority


class AdmissionSlot:
    """A held place among the running requests; `release()` is idempotent so every exit path may call it."""

    def __init__(self, controller: AdmissionController, priority: Priority, queued_s: float) -> None:
        self._controller = controller
        self.priority = priority
        self.queued_s = queued_s
        self._released = False

    def release(self) -> None:
        if not self._released:
            self._released = True
            self._controller._release(self.priority)


class AdmissionController:
    def __init__(
        self, max_running: int, max_waiting: int, queue_timeout_s: float, interactive_reserved: int = 0
    ) -> None:
        self.max_running = max_running
        self.max_waiting = max_waiting  # per priority
        self.queue_timeout_s = queue_timeout_s
        # Batch requests always keep at least one place, whatever the reserve asks for: they would never run else.
        self.interactive_reserved = max(0, min(interactive_reserved, max_running - 1))
        self._running: dict[Priority, int] = dict.fromkeys(PRIORITIES, 0)
        self._queues: dict[Priority, deque[asyncio.Future[None]]] = {p: deque() for p in PRIORITIES}

    @property
    def running(self) -> int:
        return sum(self._running.values())

    @property
    def waiting(self) -> int:
        return sum(len(queue) for queue in self._queues.values())

    def running_for(self, priority: Priority) -> int:
        return self._running[priority]

    def waiting_for(self, priority: Priority) -> int:
        return len(self._queues[priority])

    async def acquire(self, priority: Priority = DEFAULT_PRIORITY) -> AdmissionSlot:
        start = time.perf_counter()
        queue = self._queues[priority]
        if not self._queued_ahead(priority) and self._has_room(priority):
            self._running[priority] += 1
            return AdmissionSlot(self, priority, 0.0)
        if len(queue) >= self.max_waiting:
            raise overloaded(
                f"Server is at capacity ({self.running} running, {self.waiting} queued); retry later.",
                429,
                retry_after_s=1,
            )
        admitted: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        queue.append(admitted)
        try:
            await asyncio.wait_for(admitted, self.queue_timeout_s)
        except BaseException as exc:
            if admitted.done() and not admitted.cancelled():  # given a place just as it gave up: pass it on
                self._release(priority)
            elif admitted in queue:
                queue.remove(admitted)
            if isinstance(exc, TimeoutError):
                raise overloaded(
                    f"Request waited {self.queue_timeout_s:g}s in the queue without being scheduled; retry later.",
                    503,
                    retry_after_s=max(1, math.ceil(self.queue_timeout_s)),
                ) from None
            raise
        return AdmissionSlot(self, priority, time.perf_counter() - start)

    def _queued_ahead(self, priority: Priority) -> bool:
        """Whether a request queued before this one would be served before it: one of its own priority or higher."""
        for queued in PRIORITIES:
            if self._queues[queued]:
                return True
            if queued == priority:
                return False
        return False

    def _has_room(self, priority: Priority) -> bool:
        if self.running >= self.max_running:
            return False
        return priority != "batch" or self._running["batch"] < self.max_running - self.interactive_reserved

    def _release(self, priority: Priority) -> None:
        self._running[priority] -= 1
        # Hand the freed places on: interactive requests first, then batch ones while places beyond the reserve last.
        for queued in PRIORITIES:
            queue = self._queues[queued]
            while queue and self._has_room(queued):
                admitted = queue.popleft()
                if not admitted.done():  # a waiter cancelled meanwhile has already left
                    self._running[queued] += 1
                    admitted.set_result(None)
