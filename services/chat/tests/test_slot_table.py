"""The slot rules of the batch scheduler, without a model: decoding rows stay contiguous from slot 0, a long prompt
is staged in the last slot and moves next to the batch when it joins."""

from __future__ import annotations

from dataclasses import dataclass

import pytest
from chat_service.engine.batched.slots import SlotTable


@dataclass
class Row:
    name: str
    length: int = 0
    done: bool = False


def _table(slots: int) -> tuple[SlotTable[Row], list[tuple[int, int, int]]]:
    moves: list[tuple[int, int, int]] = []
    return SlotTable(slots, lambda src, dst, n: moves.append((src, dst, n))), moves


def test_rows_take_slots_in_order_and_stay_contiguous_when_one_leaves() -> None:
    table, moves = _table(4)
    a, b, c = Row("a", 5), Row("b", 7), Row("c", 9)
    assert [table.add(a), table.add(b), table.add(c)] == [0, 1, 2]
    b.done = True
    assert table.remove(lambda row: row.done) == [b]
    assert table.rows == [a, c] and moves == [(2, 1, 9)]  # the last row moved into the hole, its 9 positions copied
    assert table.free == 2 and table.used() == [5, 9, 0, 0]


def test_removing_the_last_row_moves_nothing() -> None:
    table, moves = _table(3)
    a, b = Row("a", 1), Row("b", 2, done=True)
    table.add(a)
    table.add(b)
    assert table.remove(lambda row: row.done) == [b] and moves == [] and table.rows == [a]


def test_a_staged_prompt_lives_in_the_last_slot_and_joins_next_to_the_batch() -> None:
    table, moves = _table(4)
    table.add(Row("a", 3))
    long = Row("long")
    assert table.stage(long) == 3 and table.active == 2 and table.free == 2
    long.length = 600
    assert table.used() == [3, 0, 0, 600]
    assert table.add(Row("b", 4)) == 1  # short arrivals fill the slots after the batch meanwhile
    assert table.join_staged() == 2 and moves == [(3, 2, 600)]
    assert table.staged is None and [row.name for row in table.rows] == ["a", "b", "long"]


def test_a_staged_prompt_in_the_last_free_slot_joins_without_a_move() -> None:
    table, moves = _table(2)
    table.add(Row("a", 3))
    table.stage(Row("long", 700))
    assert table.join_staged() == 1 and moves == []


def test_a_full_table_refuses_more_rows() -> None:
    table, _ = _table(2)
    table.add(Row("a"))
    table.stage(Row("long"))
    with pytest.raises(RuntimeError):
        table.add(Row("b"))
    with pytest.raises(RuntimeError):
        table.stage(Row("other"))


def test_clear_hands_back_every_row_staged_included() -> None:
    table, _ = _table(3)
    a, long = Row("a"), Row("long")
    table.add(a)
    table.stage(long)
    assert table.clear() == [a, long] and table.active == 0 and table.unstage() is None


def test_before_free_sees_a_finished_row_in_its_slot_before_the_move() -> None:
    table, moves = _table(3)
    a, b, c = Row("a", 1, done=True), Row("b", 2), Row("c", 3)
    for row in (a, b, c):
        table.add(row)
    seen: list[tuple[str, int, int]] = []
    table.remove(lambda row: row.done, before_free=lambda row, slot: seen.append((row.name, slot, len(moves))))
    assert seen == [("a", 0, 0)] and moves == [(2, 0, 3)]  # read in slot 0 before c's KV was moved over it
