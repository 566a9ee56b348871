"""bench/clients.py against a scripted SSE server: what a streamed request records (first content delta, usage or
counted deltas, errors) and the one retry of a connection that closed before anything arrived. No timing asserted."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import pytest
from aiohttp import web

from bench import clients


def sse(payload: dict) -> bytes:
    return f"data: {json.dumps(payload)}\n\n".encode()


def delta(content: str) -> dict:
    return {"choices": [{"index": 0, "delta": {"content": content}}]}


@asynccontextmanager
async def served(handler) -> AsyncIterator[str]:
    """The handler behind both endpoints on a free port; yields the /v1 base URL."""
    app = web.Application()
    app.router.add_post("/v1/chat/completions", handler)
    app.router.add_post("/v1/embeddings", handler)
    runner = web.AppRunner(app)
    await runner.setup()
    try:
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        yield f"http://127.0.0.1:{port}/v1"
    finally:
        await runner.cleanup()


async def streaming(request: web.Request, events: list[bytes]) -> web.StreamResponse:
    response = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
    await response.prepare(request)
    for event in events:
        await response.write(event)
        await asyncio.sleep(0.001)
    await response.write(b"data: [DONE]\n\n")
    return response


async def test_stream_counts_usage_tokens_and_times_the_first_content_delta() -> None:
    seen: list[dict] = []

    async def handler(request: web.Request) -> web.StreamResponse:
        seen.append(await request.json())
        assert request.headers["Authorization"] == "Bearer k"
        role = {"choices": [{"index": 0, "delta": {"role": "assistant", "content": ""}}]}
        usage = {"choices": [], "usage": {"prompt_tokens": 7, "completion_tokens": 5}}
        return await streaming(request, [sse(role), sse(delta("Hel")), sse(delta("lo")), sse(usage)])

    async with served(handler) as url:
        target = clients.ChatTarget("t", url, "m", api_key="k")
        phase = await clients.closed_loop_chat(target, [[{"role": "user", "content": "hi"}]] * 3, 2, 16)
    assert len(phase.records) == 3 and phase.seconds > 0
    for record in phase.records:
        assert record.error is None
        assert (record.prompt_tokens, record.completion_tokens) == (7, 5)  # usage wins over the 2 deltas seen
        assert record.first is not None and record.sent < record.first <= record.end
        assert record.decode_tok_s is not None and record.decode_tok_s > 0
    assert phase.output_tok_s == pytest.approx(15 / phase.seconds)
    assert seen[0]["stream"] is True and seen[0]["max_tokens"] == 16 and seen[0]["stream_options"]["include_usage"]


async def test_without_usage_the_content_deltas_are_counted() -> None:
    async def handler(request: web.Request) -> web.StreamResponse:
        return await streaming(request, [sse(delta("a")), sse(delta("")), sse(delta("b")), sse(delta("c"))])

    async with served(handler) as url:
        phase = await clients.closed_loop_chat(clients.ChatTarget("t", url, "m"), [[]], 1, 8)
    assert phase.records[0].completion_tokens == 3 and phase.records[0].prompt_tokens is None


def first_call_then_stream(first, events: list[bytes]):
    """A handler whose first call answers with `first(request)` and every later one streams `events`; `calls`
    counts them."""
    calls = [0]

    async def handler(request: web.Request) -> web.StreamResponse:
        calls[0] += 1
        return await first(request) if calls[0] == 1 else await streaming(request, events)

    return handler, calls


async def test_an_http_error_and_an_error_event_are_recorded() -> None:
    async def busy(request: web.Request) -> web.Response:
        return web.json_response({"error": {"message": "busy"}}, status=429)

    handler, _ = first_call_then_stream(busy, [sse(delta("x")), sse({"error": {"message": "engine failed"}})])
    async with served(handler) as url:
        phase = await clients.closed_loop_chat(clients.ChatTarget("t", url, "m"), [[], []], 1, 8)
    first, second = phase.records
    assert first.error is not None and first.error.startswith("HTTP 429") and "busy" in first.error
    assert second.error is not None and "engine failed" in second.error
    assert not first.retried and not second.retried


async def test_a_connection_closed_before_any_byte_is_retried_once() -> None:
    async def drop(request: web.Request) -> web.Response:
        assert request.transport is not None
        request.transport.close()  # as a server that dropped a kept-alive connection
        return web.Response()

    handler, calls = first_call_then_stream(drop, [sse(delta("ok"))])

    async with served(handler) as url:
        phase = await clients.closed_loop_chat(clients.ChatTarget("t", url, "m"), [[]], 1, 8)
    (record,) = phase.records
    assert calls == [2] and record.retried and record.error is None and record.completion_tokens == 1


async def test_embeddings_count_what_came_back() -> None:
    async def handler(request: web.Request) -> web.Response:
        texts = (await request.json())["input"]
        if texts[0] == "bad":
            return web.json_response({"error": {"message": "no"}}, status=400)
        return web.json_response({"data": [{"index": i, "embedding": [float(i)]} for i in range(len(texts))]})

    async with served(handler) as url:
        target = clients.ChatTarget("t", url, "e")
        done, seconds, errors = await clients.closed_loop_embeddings(target, [["a", "b"], ["bad"], ["c"]], 2)
        vectors = await clients.embed_all(target, ["x", "y"])
    assert done == 3 and seconds > 0
    assert len(errors) == 1 and errors[0].startswith("HTTP 400")
    assert vectors == [[0.0], [1.0]]


async def test_a_server_that_closes_after_every_stream_loses_no_request() -> None:
    """llama-server's way: "Keep-Alive" in the headers, then the connection closed once the stream has ended."""

    async def handler(request: web.Request) -> web.StreamResponse:
        response = await streaming(request, [sse(delta("ok"))])
        await response.write_eof()
        assert request.transport is not None
        request.transport.close()
        return response

    async with served(handler) as url:
        pooled = await clients.closed_loop_chat(clients.ChatTarget("t", url, "m"), [[]] * 16, 4, 8)
        fresh = await clients.closed_loop_chat(clients.ChatTarget("t", url, "m", keep_alive=False), [[]] * 16, 4, 8)
    # Pooled: requests sent into closed sockets are sent again, each on a connection of its own.
    assert [r.error for r in pooled.records] == [None] * 16 and any(r.retried for r in pooled.records)
    assert [r.completion_tokens for r in pooled.records] == [1] * 16
    # A new connection per request: nothing to retry.
    assert [(r.error, r.retried) for r in fresh.records] == [(None, False)] * 16
