"""Which KV slot holds which request: the rules the batch scheduler keeps, in one place.

Decoding rows sit in slots 0..n-1, so a decode step runs over one contiguous batch; a prompt too long for one
prefill call is prefilled a chunk per turn in the last slot, and joins the batch when its prompt is in.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Generic, Protocol, TypeVar


class Positioned(Protocol):
    length: int  # positions cached in the row's slot


R = TypeVar("R", bound=Positioned)
MoveSlot = Callable[[int, int, int], None]  # (from slot, to slot, positions): copies a slot's KV


class SlotTable(Generic[R]):
    def __init__(self, slots: int, move: MoveSlot) -> None:
        self.slots = slots
        self._move = move
        self.rows: list[R] = []  # decoding; index == KV slot
        self.staged: R | None = None  # a long prompt being prefilled, in the last slot

    @property
    def active(self) -> int:
        return len(self.rows) + (self.staged is not None)

    @property
    def free(self) -> int:
        return self.slots - self.active

    @property
    def staged_slot(self) -> int:
        return self.slots - 1

    def add(self, row: R) -> int:
        """A row that starts decoding now; its slot is the next after the batch (the staged slot stays put)."""
        if self.free <= 0:
            raise RuntimeError("no free KV slot")
        self.rows.append(row)
        return len(self.rows) - 1

    def stage(self, row: R) -> int:
        if self.staged is not None or self.free <= 0:
            raise RuntimeError("the staging slot is taken")
        self.staged = row
        return self.staged_slot

    def join_staged(self) -> int:
        """The staged row's prompt is in: it joins the batch, its KV moved next to the other rows' if need be."""
        row = self.staged
        if row is None:
            raise RuntimeError("no staged row")
        self.staged = None
        slot = len(self.rows)
        if slot != self.staged_slot:
            self._move(self.staged_slot, slot, row.length)
        self.rows.append(row)
        return slot

    def unstage(self) -> R | None:
        row, self.staged = self.staged, None
        return row

    def remove(self, finished: Callable[[R], bool], before_free: Callable[[R, int], None] | None = None) -> list[R]:
        """Free the slots of finished rows, moving the last row into each hole so the batch stays contiguous;
        `before_free(row, slot)` may still read a finished row's KV before another row's is moved over it."""
        removed: list[R] = []
        slot = 0
        while slot < len(self.rows):
            if not finished(self.rows[slot]):
                slot += 1
                continue
            removed.append(self.rows[slot])
            if before_free is not None:
                before_free(self.rows[slot], slot)
            last = len(self.rows) - 1
            if slot != last:
                self._move(last, slot, self.rows[last].length)
                self.rows[slot] = self.rows[last]
            self.rows.pop()
        return removed

    def used(self) -> list[int]:
        """Positions cached in each slot, so that growing the KV slots copies only those."""
        used = [row.length for row in self.rows] + [0] * (self.slots - len(self.rows))
        if self.staged is not None:
            used[-1] = self.staged.length
        return used

    def clear(self) -> list[R]:
        """Every row, staged included, now out of the table."""
        rows = [*self.rows, *([self.staged] if self.staged is not None else [])]
        self.rows, self.staged = [], None
        return rows
