"""Overload: twice the chat capacity through the proxy, for OVERLOAD_SECONDS (10 in `make test`, 60 in
`make overload`). Refusals are fast 429/503 with Retry-After, accepted streams start within the queue timeout, and
every request ends as exactly one completed answer or one refusal, in the client's count and in the service's log."""

from __future__ import annotations

import asyncio
import contextlib
import os
import time
from collections import Counter

import httpx
from reliability_testing import (
    CHAT_MAX_CONCURRENCY,
    CHAT_MAX_QUEUE,
    CHAT_QUEUE_TIMEOUT_S,
    Figures,
    StreamResult,
    access_log,
    percentile,
    stream_chat,
)
from stack_testing import Stack

SECONDS = float(os.environ.get("OVERLOAD_SECONDS", "10"))
CAPACITY = CHAT_MAX_CONCURRENCY + CHAT_MAX_QUEUE  # running + queued
CLIENTS = 2 * CAPACITY
MAX_TOKENS = 16
REFUSAL_PAUSE_S = 0.1  # a refused client tries again at once, less this pause (ignoring Retry-After: the worst case)
# The bound is 100 ms (`make overload` asserts it, on a machine one has made quiet). The 10-s run in
# `make test` must hold on a busy, shared machine too, so it asserts what its setup decides rather than a speed: a
# refusal came at once, not after waiting in the queue, which would have taken the queue timeout (120 s) at least.
REFUSAL_P99_LIMIT_MS = float(os.environ.get("OVERLOAD_REFUSAL_P99_MS", str(CHAT_QUEUE_TIMEOUT_S * 1000 / 4)))


async def _client_loop(client: httpx.AsyncClient, api_key: str, deadline: float, results: list[StreamResult]) -> None:
    while time.monotonic() < deadline:
        result = await stream_chat(client, api_key, max_tokens=MAX_TOKENS)
        results.append(result)
        if not result.completed:
            await asyncio.sleep(REFUSAL_PAUSE_S)


async def test_twice_the_capacity(reliability_stack: Stack) -> None:
    stack = reliability_stack
    results: list[StreamResult] = []
    limits = httpx.Limits(max_connections=CLIENTS + 2, max_keepalive_connections=CLIENTS + 2)
    started = time.monotonic()
    async with httpx.AsyncClient(base_url=stack.base_url, verify=stack.ssl_context(), timeout=120, limits=limits) as c:
        deadline = time.monotonic() + SECONDS
        await asyncio.wait_for(
            asyncio.gather(*(_client_loop(c, stack.api_key, deadline, results) for _ in range(CLIENTS))),
            SECONDS + 120,
        )
    elapsed = time.monotonic() - started

    completed = [r for r in results if r.completed]
    refused = [r for r in results if r.refused]
    other = [r for r in results if not r.completed and not r.refused]
    refusal_latency = [r.headers_s for r in refused]
    ttft = [r.ttft_s for r in completed if r.ttft_s is not None]
    figures = {
        "seconds": round(elapsed, 1),
        "clients": CLIENTS,
        "capacity": {
            "running": CHAT_MAX_CONCURRENCY,
            "queued": CHAT_MAX_QUEUE,
            "queue_timeout_s": CHAT_QUEUE_TIMEOUT_S,
        },
        "requests": len(results),
        "completed": len(completed),
        "refused": dict(Counter(r.status for r in refused)),
        "other": len(other),
        "refusal_ms_p50": round(1000 * (percentile(refusal_latency, 50) or 0), 1),
        "refusal_ms_p99": round(1000 * (percentile(refusal_latency, 99) or 0), 1),
        "ttft_s_p50": round(percentile(ttft, 50) or 0, 3),
        "ttft_s_p99": round(percentile(ttft, 99) or 0, 3),
        "ttft_s_max": round(max(ttft, default=0), 3),
        "completed_per_s": round(len(completed) / elapsed, 2),
        "refusal_p99_limit_ms": REFUSAL_P99_LIMIT_MS,
    }
    Figures("overload", figures).write()

    assert not other, [r for r in other][:5]  # no exception, no truncated stream, no status but 200/429/503
    assert completed and refused, "the run must both serve and refuse"
    assert all(r.retry_after for r in refused)
    assert figures["refusal_ms_p99"] < REFUSAL_P99_LIMIT_MS, figures
    assert figures["ttft_s_max"] <= CHAT_QUEUE_TIMEOUT_S, figures
    assert all(r.completion_tokens == MAX_TOKENS or r.finish_reason == "stop" for r in completed)

    # The service's own ledger: each request the client sent reached chat exactly once, with the status the client
    # saw (nothing lost on the way, nothing retried behind its back).
    by_id: dict[str, list[int]] = {}

    def every_request_logged() -> bool:
        by_id.clear()
        for line in access_log(stack, "chat"):
            by_id.setdefault(line.get("request_id", ""), []).append(line["status"])
        return all(r.trace_id in by_id for r in results)

    # supervisord copies each service's output to its log file in its own time: the last lines may lag the replies.
    with contextlib.suppress(AssertionError):
        stack.wait_for(every_request_logged, timeout_s=15, what="an access line for every request")
    mismatched = [(r.trace_id, r.status, by_id.get(r.trace_id)) for r in results if by_id.get(r.trace_id) != [r.status]]
    assert not mismatched, mismatched[:5]
