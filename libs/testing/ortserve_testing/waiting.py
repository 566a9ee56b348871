"""Wait for a state, not for a time: a test that polls for what it needs holds on any clock (a busy shared machine,
a slow emulated CPU), and its deadline only bounds a failure, so it is generous on purpose."""

from __future__ import annotations

import asyncio
import inspect
import time
from collections.abc import Awaitable, Callable
from typing import TypeVar, cast

T = TypeVar("T")

# Long enough that no machine that works reaches it; a test that does has found a bug, and says which wait it was.
DEADLINE_S = 60.0
POLL_S = 0.02


def wait_until(condition: Callable[[], T], what: str, timeout_s: float = DEADLINE_S, poll_s: float = POLL_S) -> T:
    """Call `condition` until it returns something truthy, and return that; AssertionError naming `what` once
    `timeout_s` has passed without it."""
    deadline = time.monotonic() + timeout_s
    while True:
        result = condition()
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"{what}: not within {timeout_s:g}s (last: {result!r})")
        time.sleep(poll_s)


async def eventually(
    condition: Callable[[], T | Awaitable[T]], what: str, timeout_s: float = DEADLINE_S, poll_s: float = POLL_S
) -> T:
    """`wait_until` inside an event loop: the condition may be a coroutine function, and the loop keeps running
    between polls."""
    deadline = time.monotonic() + timeout_s
    while True:
        result = condition()
        if inspect.isawaitable(result):
            result = await result
        if result:
            return cast(T, result)
        if time.monotonic() > deadline:
            raise AssertionError(f"{what}: not within {timeout_s:g}s (last: {result!r})")
        await asyncio.sleep(poll_s)
