"""The bridge from a generating thread to an async iterator of TokenEvents, shared by both engines.

The thread calls `emit(event)` per token, `emit(exception)` on failure and `emit(END)` when done; the consumer sets
`cancelled` when it stops listening (client gone, stop string), and the thread drops the work within one step.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncIterator, Callable
from typing import Any

from chat_service.engine.types import TokenEvent

END = object()
Emit = Callable[[Any], None]


async def events_from_thread(start: Callable[[Emit, threading.Event], None]) -> AsyncIterator[TokenEvent]:
    loop = asyncio.get_running_loop()
    queue: asyncio.Queue[Any] = asyncio.Queue()
    cancelled = threading.Event()

    def emit(item: Any) -> None:
        try:
            loop.call_soon_threadsafe(queue.put_nowait, item)
        except RuntimeError:  # the loop closed under us (shutdown); nobody is listening any more
            cancelled.set()

    start(emit, cancelled)
    try:
        while True:
            item = await queue.get()
            if item is END:
                return
            if isinstance(item, BaseException):
                raise item
            yield item
    finally:
        cancelled.set()
