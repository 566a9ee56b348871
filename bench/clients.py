"""The one client every chat target is measured with (asyncio + httpx, streaming), and the embeddings client.

TTFT is the time from sending the request to the first content delta; a stream's decode rate is
(completion tokens - 1) / (end - first token). Completion tokens come from the final usage chunk, or from the number of
content deltas when a server sends no usage.
"""

from __future__ import annotations

import asyncio
import json
import ssl
import time
from dataclasses import dataclass, field

import httpx


@dataclass
class ChatTarget:
    """An OpenAI-compatible /v1 base URL, and how to reach it."""

    name: str
    base_url: str
    model: str
    api_key: str | None = None
    ca: str | None = None
    http2: bool = False

    def client(self, connections: int) -> httpx.AsyncClient:
        verify: ssl.SSLContext | bool = ssl.create_default_context(cafile=self.ca) if self.ca else False
        headers = {"Authorization": f"Bearer {self.api_key}"} if self.api_key else {}
        limits = httpx.Limits(max_connections=connections, max_keepalive_connections=connections)
        return httpx.AsyncClient(
            base_url=self.base_url, headers=headers, verify=verify, http2=self.http2, limits=limits, timeout=300
        )


@dataclass
class StreamRecord:
    """One streamed request, timed on the client's clock (time.perf_counter)."""

    sent: float
    first: float | None = None
    end: float = 0.0
    completion_tokens: int = 0
    prompt_tokens: int | None = None
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


async def stream_chat(
    client: httpx.AsyncClient, target: ChatTarget, messages: list[dict[str, str]], max_tokens: int
) -> StreamRecord:
    body = {
        "model": target.model,
        "messages": messages,
        "max_tokens": max_tokens,
        "temperature": 0,
        "stream": True,
        "stream_options": {"include_usage": True},
    }
    record = await _stream_chat_once(client, body)
    if record.first is None and (record.error or "").startswith(RETRYABLE):
        # A kept-alive connection the server had already closed: send it once more, timed afresh, and say so.
        record = await _stream_chat_once(client, body)
        record.retried = True
    return record


RETRYABLE = ("RemoteProtocolError", "ConnectError", "ReadError")


async def _stream_chat_once(client: httpx.AsyncClient, body: dict) -> StreamRecord:
    record = StreamRecord(sent=time.perf_counter())
    deltas = 0
    usage: dict | None = None
    try:
        async with client.stream("POST", "/chat/completions", json=body) as response:
            if response.status_code != 200:
                record.error = f"HTTP {response.status_code}: {(await response.aread())[:200]!r}"
                return record
            async for line in response.aiter_lines():
                if not line.startswith("data: ") or line == "data: [DONE]":
                    continue
                chunk = json.loads(line[6:])
                if "error" in chunk:
                    record.error = str(chunk["error"])[:200]
                usage = chunk.get("usage") or usage
                for choice in chunk.get("choices") or []:
                    if (choice.get("delta") or {}).get("content"):
                        deltas += 1
                        if record.first is None:
                            record.first = time.perf_counter()
    except httpx.HTTPError as exc:
        record.error = f"{type(exc).__name__}: {exc}"
    record.end = time.perf_counter()
    record.completion_tokens = int(usage["completion_tokens"]) if usage else deltas
    record.prompt_tokens = int(usage["prompt_tokens"]) if usage else None
    return record


@dataclass
class Phase:
    """What one closed-loop phase measured: the records and the time from the first send to the last end."""

    records: list[StreamRecord] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def output_tok_s(self) -> float:
        return sum(r.completion_tokens for r in self.records) / self.seconds if self.seconds else 0.0


async def closed_loop_chat(
    target: ChatTarget, conversations: list[list[dict[str, str]]], concurrency: int, max_tokens: int
) -> Phase:
    """`concurrency` clients, each sending its next request as soon as its last one ended, until none are left."""
    queue: asyncio.Queue[list[dict[str, str]]] = asyncio.Queue()
    for messages in conversations:
        queue.put_nowait(messages)
    phase = Phase()

    async def worker(client: httpx.AsyncClient) -> None:
        while not queue.empty():
            phase.records.append(await stream_chat(client, target, queue.get_nowait(), max_tokens))

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

    async def worker(client: httpx.AsyncClient) -> None:
        nonlocal done
        while not queue.empty():
            batch = queue.get_nowait()
            response = await client.post("/embeddings", json={"model": target.model, "input": batch})
            if response.status_code == 200 and len(response.json()["data"]) == len(batch):
                done += len(batch)
            else:
                errors.append(f"HTTP {response.status_code}: {response.text[:200]}")

    async with target.client(concurrency) as client:
        start = time.perf_counter()
        await asyncio.gather(*(worker(client) for _ in range(concurrency)))
        seconds = time.perf_counter() - start
    return done, seconds, errors


async def embed_all(target: ChatTarget, texts: list[str]) -> list[list[float]]:
    async with target.client(1) as client:
        response = await client.post("/embeddings", json={"model": target.model, "input": texts})
        response.raise_for_status()
        return [item["embedding"] for item in sorted(response.json()["data"], key=lambda d: d["index"])]
