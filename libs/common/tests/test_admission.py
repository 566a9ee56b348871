"""AdmissionController: bounded running set, bounded queue, queue timeout."""

from __future__ import annotations

import asyncio

import pytest
from ortserve_common.admission import AdmissionController
from ortserve_common.errors import OpenAIError


async def test_admits_up_to_limit_then_queues_then_refuses() -> None:
    controller = AdmissionController(max_running=1, max_waiting=1, queue_timeout_s=5)
    first = await controller.acquire()
    waiter = asyncio.create_task(controller.acquire())
    await asyncio.sleep(0)
    assert controller.waiting == 1
    with pytest.raises(OpenAIError) as info:
        await controller.acquire()
    assert info.value.status == 429 and info.value.headers["Retry-After"] == "1"
    first.release()
    first.release()  # idempotent: a second release must not free a second place
    second = await waiter
    assert controller.running == 1 and controller.waiting == 0
    second.release()
    assert controller.running == 0


async def test_queue_timeout_is_503_with_retry_after() -> None:
    controller = AdmissionController(max_running=1, max_waiting=4, queue_timeout_s=0.05)
    held = await controller.acquire()
    with pytest.raises(OpenAIError) as info:
        await controller.acquire()
    assert info.value.status == 503 and int(info.value.headers["Retry-After"]) >= 1
    assert controller.waiting == 0
    held.release()
    (await controller.acquire()).release()


async def _queued(controller: AdmissionController, priority: str) -> asyncio.Task:
    """A request that asks for a place and, finding none, is queued (it has not returned when this does)."""
    before = controller.waiting_for(priority)  # type: ignore[arg-type]
    task = asyncio.create_task(controller.acquire(priority))  # type: ignore[arg-type]
    while controller.waiting_for(priority) == before:  # type: ignore[arg-type]
        await asyncio.sleep(0)
    return task


async def test_a_freed_place_goes_to_a_queued_interactive_request_before_earlier_batch_ones() -> None:
    controller = AdmissionController(max_running=1, max_waiting=4, queue_timeout_s=30)
    held = await controller.acquire("batch")
    batch = await _queued(controller, "batch")
    interactive = await _queued(controller, "interactive")
    held.release()
    first = await interactive
    assert first.priority == "interactive" and not batch.done()
    assert (controller.running_for("interactive"), controller.waiting_for("batch")) == (1, 1)
    first.release()
    (await batch).release()
    assert controller.running == controller.waiting == 0


async def test_reserved_places_admit_an_interactive_request_at_once_during_a_batch_flood() -> None:
    controller = AdmissionController(max_running=3, max_waiting=4, queue_timeout_s=30, interactive_reserved=1)
    batch = [await controller.acquire("batch") for _ in range(2)]
    queued_batch = await _queued(controller, "batch")  # a place is free, but it is the interactive one
    assert controller.running == 2
    interactive = await controller.acquire("interactive")  # at once: never queued
    assert interactive.queued_s == 0.0 and controller.running == 3
    interactive.release()  # its reserved place frees, which batch may still not take
    await asyncio.sleep(0)
    assert not queued_batch.done()
    batch[0].release()  # a batch place frees: the queued batch request takes it
    (await queued_batch).release()
    batch[1].release()
    assert controller.running == controller.waiting == 0


async def test_the_reserve_leaves_batch_at_least_one_place() -> None:
    controller = AdmissionController(max_running=2, max_waiting=1, queue_timeout_s=30, interactive_reserved=5)
    assert controller.interactive_reserved == 1
    (await controller.acquire("batch")).release()


async def test_each_priority_has_its_own_queue_bound() -> None:
    controller = AdmissionController(max_running=1, max_waiting=1, queue_timeout_s=30)
    held = await controller.acquire("batch")
    batch = await _queued(controller, "batch")
    with pytest.raises(OpenAIError) as info:
        await controller.acquire("batch")
    assert info.value.status == 429
    interactive = await _queued(controller, "interactive")  # a full batch queue does not refuse interactive ones
    held.release()
    (await interactive).release()
    (await batch).release()


async def test_a_cancelled_waiter_leaves_the_queue_and_takes_no_place() -> None:
    controller = AdmissionController(max_running=1, max_waiting=2, queue_timeout_s=30)
    held = await controller.acquire()
    waiter = await _queued(controller, "interactive")
    waiter.cancel()
    with pytest.raises(asyncio.CancelledError):
        await waiter
    assert controller.waiting == 0
    held.release()
    assert controller.running == 0
