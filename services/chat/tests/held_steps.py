"""A real batched engine whose decode steps run only when the test lets them: which request is admitted in which
turn of the scheduler is then decided by the test, never by the clock. Prefills are not held; a turn whose step is
held has already admitted (and prefilled) its arrivals."""

from __future__ import annotations

import threading
from typing import Any

from chat_service.engine.batched.engine import BatchedEngine
from ortserve_testing.waiting import DEADLINE_S, eventually, wait_until

OPEN = 1_000_000  # permits enough for any test's remaining steps


class HeldSteps:
    def __init__(self, engine: BatchedEngine) -> None:
        decoder = engine._scheduler._decoder  # the one seam: the scheduler thread's decode call
        self._decode = decoder.decode
        self._permits = threading.Semaphore(0)
        self._lock = threading.Lock()
        self.arrived = 0  # decode calls that reached the gate (written by the scheduler thread only)
        decoder.decode = self._held

    def _held(self, *args: Any, **kwargs: Any) -> Any:
        with self._lock:
            self.arrived += 1
        if not self._permits.acquire(timeout=DEADLINE_S):  # a test that forgot to let steps run fails, never hangs
            raise AssertionError("a decode step was held past the deadline")
        return self._decode(*args, **kwargs)

    def wait_held(self, steps: int) -> None:
        """Until the `steps`-th decode call is at the gate: every turn before it is over (from a thread that is not
        the event loop's)."""
        wait_until(lambda: self.arrived >= steps, f"decode step {steps} reaching the gate")

    async def held(self, steps: int) -> None:
        """wait_held inside an event loop, which keeps running meanwhile."""
        await eventually(lambda: self.arrived >= steps, f"decode step {steps} reaching the gate")

    async def step(self) -> None:
        """Let the held step run and wait until the next one is held: one whole scheduler turn."""
        held = self.arrived
        self._permits.release()
        await self.held(held + 1)

    def open(self) -> None:
        self._permits.release(OPEN)
