"""The generations waiting for an engine, by priority: which of them starts next, in both engines.

Queued `interactive` ones take free places (the batched engine's KV slots, the generator engine's workers) before
queued `batch` ones, first come first served within each; the batched engine also keeps batch rows out of the slots
reserved for interactive ones (EngineConfig.interactive_reserved_slots). Written under the engine's lock; its
depths may be read from any thread (/metrics).
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable
from typing import Generic, Protocol, TypeVar

from ortserve_common.priority import PRIORITIES, Priority

from chat_service.engine.types import GenerationRequest


class Queued(Protocol):
    request: GenerationRequest


R = TypeVar("R", bound=Queued)


class WaitingRows(Generic[R]):
    def __init__(self) -> None:
        self._queues: dict[Priority, deque[R]] = {priority: deque() for priority in PRIORITIES}

    def __len__(self) -> int:
        return sum(len(queue) for queue in self._queues.values())

    def depth(self, priority: Priority) -> int:
        return len(self._queues[priority])

    def append(self, row: R) -> None:
        self._queues[row.request.priority].append(row)

    def take(self, count: int, free: int, batch_free: int) -> list[R]:
        """Up to `count` rows for `free` slots: interactive ones first, then batch ones into `batch_free` of them."""
        taken: list[R] = []
        for priority in PRIORITIES:
            queue = self._queues[priority]
            room = free - len(taken) if priority == "interactive" else min(free - len(taken), batch_free)
            while queue and room > 0 and len(taken) < count:
                taken.append(queue.popleft())
                room -= 1
        return taken

    def put_back(self, rows: Iterable[R]) -> None:
        """Rows taken but not admitted this turn keep their place at the head of their queue."""
        for row in reversed(list(rows)):
            self._queues[row.request.priority].appendleft(row)

    def discard(self, row: R) -> None:
        queue = self._queues[row.request.priority]
        if row in queue:
            queue.remove(row)

    def clear(self) -> list[R]:
        rows = [row for priority in PRIORITIES for row in self._queues[priority]]
        for queue in self._queues.values():
            queue.clear()
        return rows
