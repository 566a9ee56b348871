"""The bridge from a generating thread to an async iterator of TokenEvents, shared by both engines.

The thread calls `emit(event)` per token, `emit(exception)` on failure and `emit(END)` when done; the consumer sets
`cancelled` when it stops listening (client gone, stop string), and the thread drops the work within one step.
A thread that serves many requests at once hands a whole step's events over with `deliver`: one wake-up of the
event loop per step instead of one per token.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncGenerator, Callable, Iterable
from typing import Any

from chat_service.engine.types import TokenEvent

END = object()
Emit = Callable[[Any], None]


class InFlight:
    """The generations an engine has started and not yet ended, so that unloading its model can wait for them.

    Counted on the event loop (where generations are iterated), so no lock is needed.
    """

    def __init__(self) -> None:
        self.count = 0
        self._idle = asyncio.Event()
        self._idle.set()

    def started(self) -> None:
        self.count += 1
        self._idle.clear()

    def ended(self) -> None:
        self.count -= 1
        if self.count == 0:
            self._idle.set()

    async def wait_idle(self, timeout_s: float) -> bool:
        """True once no generation runs; False if some still do after `timeout_s`."""
        try:
            await asyncio.wait_for(self._idle.wait(), timeout_s)
        except TimeoutError:
            return False
        return True


class ThreadEmitter:
    """`emit` for one request: puts items on its queue from any thread, via the queue's event loop."""

    __slots__ = ("loop", "queue", "cancelled")

    def __init__(self, loop: asyncio.AbstractEventLoop, queue: asyncio.Queue[Any], cancelled: threading.Event) -> None:
        self.loop = loop
        self.queue = queue
        self.cancelled = cancelled

    def __call__(self, item: Any) -> None:
        deliver([(self, item)])


def _put_all(batch: list[tuple[ThreadEmitter, Any]]) -> None:
    for emitter, item in batch:
        emitter.queue.put_nowait(item)


def deliver(items: Iterable[tuple[Emit, Any]]) -> None:
    """Hand (emit, item) pairs over in order, with one loop callback per event loop among them."""
    by_loop: dict[asyncio.AbstractEventLoop, list[tuple[ThreadEmitter, Any]]] = {}
    for emit, item in items:
        if isinstance(emit, ThreadEmitter):
            by_loop.setdefault(emit.loop, []).append((emit, item))
        else:
            emit(item)
    for loop, batch in by_loop.items():
        try:
            loop.call_soon_threadsafe(_put_all, batch)
        except RuntimeError:  # the loop closed under us (shutdown); nobody is listening any more
            for emitter, _ in batch:
                emitter.cancelled.set()


async def events_from_thread(
    start: Callable[[Emit, threading.Event], None], in_flight: InFlight
) -> AsyncGenerator[TokenEvent, None]:
    queue: asyncio.Queue[Any] = asyncio.Queue()
    cancelled = threading.Event()
    in_flight.started()
    try:
        start(ThreadEmitter(asyncio.get_running_loop(), queue, cancelled), cancelled)
        while True:
            item = await queue.get()
            if item is END:
                return
            if isinstance(item, BaseException):
                raise item
            yield item
    finally:
        cancelled.set()
        in_flight.ended()
