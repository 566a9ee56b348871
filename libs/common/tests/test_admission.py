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
