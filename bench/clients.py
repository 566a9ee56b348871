"""The one client every chat target is measured with (asyncio + aiohttp, streaming), and the embeddings client.

TTFT is the time from sending the request to the first content delta; a stream's decode rate is
(completion tokens - 1) / (end - first token). Completion tokens come from the final usage chunk, or from the number of
content deltas when a server sends no usage.

The client shares the two cores with what it measures, so it should cost as little as it can: aiohttp (C HTTP parser)
spends ~0.3 ms of CPU per streamed token where httpx (pure-Python h11) spent ~0.57 ms, and a single stream through
the chat service decoded ~5 % faster with it (paired, 8 repeats).
"""

from __future__ import annotations

import asyncio
import json
import ssl
import time
from dataclasses import dataclass, field

import aiohttp


@dataclass
class ChatTarget:
    """An OpenAI-compatible /v1 base URL, and how to reach it."""

    name: str
    base_url: str
    model: str
    api_key: str | None = None
    ca: str | None = None
    # llama-server answers "Keep-Alive" but closes the connection after a streamed response; aiohttp would send the
    # next request into the closed socket, so such a target gets a new connection per request (as curl and httpx do
    # once they notice).
    keep_alive: bool = True

    def client(self, connections: int, fresh: bool = False) -> aiohttp.ClientSession:
        """`fresh`: a new connection for every request, whatever keep_alive says."""
        verify: ssl.SSLContext | bool = ssl.create_default_context(cafile=self.ca) if self.ca else False
        headers = {"Authorization": f"Bearer {self.api_key}"} if self.api_key else {}
        connector = aiohttp.TCPConnector(limit=connections, ssl=verify, force_close=fresh or not self.keep_alive)
        return aiohttp.ClientSession(
            headers=headers, connector=connector, timeout=aiohttp.ClientTimeout(total=300), raise_for_status=False
        )

    def url(self, path: str) -> str:
        return f"{self.base_url.rstrip('/')}/{path}"


@dataclass
class StreamRecord:
    """One streamed request, timed on the client's clock (time.perf_counter)."""

    sent: float
    first: float | None = None
    end: float = 0.0
    completion_tokens: int = 0
    prompt_tokens: int | None = None
    # The prompt tokens the server computed rather than reused: llama-server's timings.prompt_n, else the usage's
    # prompt_tokens less its cached_tokens.
    prefilled_tokens: int | None = None
    error: str | None = None
    retried: bool = False

    @property
    def ttft_s(self) -> float | None:
        return None if self.first is None else self.first - self.sent

    @property
    def decode_tok_s(self) -> float | None:
        if self.first is None or self.completion_tokens < 2 or self.end <= self.first:
            return None
        return (self.completion_tokens - 1) / (self.end - self.first)


GREEDY = {"temperature": 0}


async def stream_chat(
    client: aiohttp.ClientSession,
    target: ChatTarget,
    messages: list[dict[str, str]],
    max_tokens: int,
    sampling: dict | None = None,
) -> StreamRecord:
    """sampling: the sampler fields sent, greedy by default; {} sends none (the server's defaults for the model)."""
    body = {
        "model": target.model,
        "messages": messages,
        "max_tokens": max_tokens,
        **(GREEDY if sampling is None else sampling),
        "stream": True,
        "stream_options": {"include_usage": True},
    }
    url = target.url("chat/completions")
    record, retryable = await _stream_chat_once(client, url, body)
    if record.first is None and retryable:
        # A kept-alive connection the server had already closed: send it once more on a new connection, timed
        # afresh, and say so.
        async with target.client(1, fresh=True) as once:
            record, _ = await _stream_chat_once(once, url, body)
        record.retried = True
    return record


async def _stream_chat_once(client: aiohttp.ClientSession, url: str, body: dict) -> tuple[StreamRecord, bool]:
    """The record, and whether it failed on the connection (worth one retry when nothing had arrived)."""
    record = StreamRecord(sent=time.perf_counter())
    deltas = 0
    usage: dict | None = None
    timings: dict | None = None
    retryable = False
    try:
        async with client.post(url, json=body) as response:
            if response.status != 200:
                record.error = f"HTTP {response.status}: {(await response.read())[:200]!r}"
                return record, False
            async for raw in response.content:  # one SSE line at a time
                line = raw.strip()
                if not line.startswith(b"data: ") or line == b"data: [DONE]":
                    continue
                chunk = json.loads(line[6:])
                if "error" in chunk:
                    record.error = str(chunk["error"])[:200]
                usage = chunk.get("usage") or usage
                timings = chunk.get("timings") or timings
                for choice in chunk.get("choices") or []:
                    if (choice.get("delta") or {}).get("content"):
                        deltas += 1
                        if record.first is None:
                            record.first = time.perf_counter()
    except (aiohttp.ClientError, TimeoutError) as exc:
        record.error = f"{type(exc).__name__}: {exc}"
        retryable = isinstance(exc, aiohttp.ClientConnectionError)
    record.end = time.perf_counter()
    record.completion_tokens = int(usage["completion_tokens"]) if usage else deltas
    record.prompt_tokens = int(usage["prompt_tokens"]) if usage else None
    if timings and "prompt_n" in timings:
        record.prefilled_tokens = int(timings["prompt_n"])
    elif record.prompt_tokens is not None and usage:
        record.prefilled_tokens = record.prompt_tokens - int(
            (usage.get("prompt_tokens_details") or {}).get("cached_tokens") or 0
        )
    return record, retryable


@dataclass
class Phase:
    """What one closed-loop phase measured: the records and the time from the first send to the last end."""

    records: list[StreamRecord] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def output_tok_s(self) -> float:
        return sum(r.completion_tokens for r in self.records) / self.seconds if self.seconds else 0.0


async def closed_loop_chat(
    target: ChatTarget,
    conversations: list[list[dict[str, str]]],
    concurrency: int,
    max_tokens: int,
    sampling: dict | None = None,
) -> Phase:
    """`concurrency` clients, each sending its next request as soon as its last one ended, until none are left."""
    queue: asyncio.Queue[list[dict[str, str]]] = asyncio.Queue()
    for messages in conversations:
        queue.put_nowait(messages)
    phase = Phase()

    async def worker(client: aiohttp.ClientSession) -> None:
        while not queue.empty():
            phase.records.append(await stream_chat(client, target, queue.get_nowait(), max_tokens, sampling))

    async with target.client(concurrency) as client:
        start = time.perf_counter()
        await asyncio.gather(*(worker(client) for _ in range(concurrency)))
        phase.seconds = time.perf_counter() - start
    return phase


async def closed_loop_embeddings(
    target: ChatTarget, batches: list[list[str]], concurrency: int
) -> tuple[int, float, list[str]]:
    """`concurrency` clients posting /v1/embeddings; returns (sentences embedded, seconds, errors)."""
    queue: asyncio.Queue[list[str]] = asyncio.Queue()
    for batch in batches:
        queue.put_nowait(batch)
    done, errors = 0, []

    async def worker(client: aiohttp.ClientSession) -> None:
        nonlocal done
        while not queue.empty():
            batch = queue.get_nowait()
            async with client.post(target.url("embeddings"), json={"model": target.model, "input": batch}) as response:
                body = await response.read()
            if response.status == 200 and len(json.loads(body)["data"]) == len(batch):
                done += len(batch)
            else:
                errors.append(f"HTTP {response.status}: {body[:200]!r}")

    async with target.client(concurrency) as client:
        start = time.perf_counter()
        await asyncio.gather(*(worker(client) for _ in range(concurrency)))
        seconds = time.perf_counter() - start
    return done, seconds, errors


async def embed_all(target: ChatTarget, texts: list[str]) -> list[list[float]]:
    async with target.client(1) as client:
        async with client.post(target.url("embeddings"), json={"model": target.model, "input": texts}) as response:
            response.raise_for_status()
            data = (await response.json())["data"]
    return [item["embedding"] for item in sorted(data, key=lambda d: d["index"])]
