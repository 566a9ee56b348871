"""Unit tests of running a request's choices at once: merged order, failures and early exits that stop every choice."""

from __future__ import annotations

import asyncio
from contextlib import aclosing

import pytest
from chat_service.serving.multiplex import interleave, run_all
from ortserve_common.errors import OpenAIError, invalid_request


class Stream:
    def __init__(self, items: list[str], fail: bool = False, delay: float = 0.0) -> None:
        self.items, self.fail, self.delay = items, fail, delay
        self.closed = False

    def pieces(self):  # what run_all drains, as it drains a TextGeneration
        return self.run()

    async def run(self):
        try:
            for item in self.items:
                await asyncio.sleep(self.delay)
                yield item
            if self.fail:
                raise invalid_request("bad", "x")
        finally:
            self.closed = True


async def test_interleave_tags_items_and_ends() -> None:
    streams = [Stream(["a", "b"]), Stream(["c"])]
    seen = [pair async for pair in interleave([s.run() for s in streams])]
    assert sorted(p for p in seen if p[1] is not None) == [(0, "a"), (0, "b"), (1, "c")]
    assert {i for i, item in seen if item is None} == {0, 1}
    assert seen.index((0, "a")) < seen.index((0, "b")) < seen.index((0, None))
    assert all(s.closed for s in streams)


async def test_a_failure_reaches_the_consumer_and_stops_the_others() -> None:
    slow = Stream(["x"] * 1000, delay=0.01)
    with pytest.raises(Exception, match="bad"):
        async for _ in interleave([Stream(["a"], fail=True).run(), slow.run()]):
            pass
    assert slow.closed


async def test_leaving_early_stops_every_stream() -> None:
    streams = [Stream(["x"] * 1000, delay=0.001) for _ in range(3)]
    async with aclosing(interleave([s.run() for s in streams])) as merged:
        async for _ in merged:
            break
    assert all(s.closed for s in streams)


async def test_run_all_raises_the_choice_error_itself_not_a_group() -> None:
    slow = Stream(["x"] * 1000, delay=0.01)
    got: list[str] = []
    with pytest.raises(OpenAIError):
        await run_all([Stream(["a"], fail=True), slow], [got.append, got.append])  # type: ignore[list-item]
    assert slow.closed and "a" in got
