"""Run the n choices of a request at once: merged into one stream tagged by index, or each drained to its consumer."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator, Callable, Coroutine, Sequence
from contextlib import aclosing
from typing import Any, TypeVar, cast

from chat_service.serving.generation import TextGeneration, TextPiece

T = TypeVar("T")

_DONE = object()


async def interleave(streams: Sequence[AsyncGenerator[T, None]]) -> AsyncGenerator[tuple[int, T | None], None]:
    """Yield (index, item) as items arrive, and (index, None) once stream `index` has ended.

    Leaving early (a client that disconnects) or a failure in any stream cancels all of them, which stops their
    generations within one token step.
    """
    queue: asyncio.Queue[tuple[int, object]] = asyncio.Queue()

    async def pump(index: int, stream: AsyncGenerator[T, None]) -> None:
        try:
            async with aclosing(stream):
                async for item in stream:
                    await queue.put((index, item))
            await queue.put((index, _DONE))
        except asyncio.CancelledError:
            raise
        except BaseException as exc:  # re-raised by the consumer below
            await queue.put((index, exc))

    tasks = [asyncio.create_task(pump(i, stream)) for i, stream in enumerate(streams)]
    try:
        remaining = len(tasks)
        while remaining:
            index, item = await queue.get()
            if item is _DONE:
                remaining -= 1
                yield index, None
            elif isinstance(item, BaseException):
                raise item
            else:
                yield index, cast(T, item)  # what a stream yielded: neither the end marker nor an error
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


async def run_all(generations: list[TextGeneration], consumers: list[Callable[[TextPiece], object]]) -> None:
    """Run the choices' generations at once (each consumer takes its own pieces); one failure cancels the rest."""

    async def drain(generation: TextGeneration, consume: Callable[[TextPiece], object]) -> None:
        async with aclosing(generation.pieces()) as pieces:
            async for piece in pieces:
                consume(piece)

    runs: list[Coroutine[Any, Any, None]] = [drain(g, c) for g, c in zip(generations, consumers, strict=True)]
    if len(runs) == 1:
        await runs[0]
        return
    try:
        async with asyncio.TaskGroup() as group:
            for run in runs:
                group.create_task(run)
    except ExceptionGroup as failures:
        raise failures.exceptions[0] from None  # the client gets that error (an OpenAIError stays one), not a group
