"""Helpers for the reliability tests (bad input, auth, faults, overload, soak): error-shape checks, an SSE client
that records how each stream ended, process and RSS probes, and the JSON figures each run leaves behind."""

from __future__ import annotations

import asyncio
import json
import os
import secrets
import signal
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import httpx
from stack_testing import ROOT, Stack

CHAT_MODEL = "smollm2-135m-instruct"
EMBED_MODEL = "all-minilm-l6-v2"
# The reliability stack: a chat capacity small enough to overload in seconds (2 running + 2 queued), and client
# timeouts short enough to watch nginx cut a slow client. The queue timeout leaves a queued stream room to wait
# behind two running streams of LONG_STREAM_TOKENS even on a slow, shared machine (3.5 tokens/s would do): the
# tests that queue streams must see them drain, not time out (10 s did not hold with another process busy).
CHAT_MAX_CONCURRENCY, CHAT_MAX_QUEUE, CHAT_QUEUE_TIMEOUT_S = 2, 2, 120
LONG_STREAM_TOKENS = 400
# A SIGTERM drain must let every stream in flight finish: two rounds of LONG_STREAM_TOKENS behind two slots.
CHAT_DRAIN_TIMEOUT_S = 300
SMOLLM_EOS = 2  # <|im_end|>: forbidding it makes a stream run to max_tokens, whatever the prompt
RELIABILITY_ENV = {
    "CHAT_MAX_CONCURRENCY": str(CHAT_MAX_CONCURRENCY),
    "CHAT_MAX_QUEUE": str(CHAT_MAX_QUEUE),
    "CHAT_QUEUE_TIMEOUT_S": str(CHAT_QUEUE_TIMEOUT_S),
    "CHAT_DRAIN_TIMEOUT_S": str(CHAT_DRAIN_TIMEOUT_S),
    "CHAT_MAX_BATCH_SIZE": str(CHAT_MAX_CONCURRENCY),  # KV slots: a second stack need not hold 8 of them in memory
    "PROXY_CLIENT_HEADER_TIMEOUT": "2s",
    "PROXY_CLIENT_BODY_TIMEOUT": "2s",
    "ORTSERVE_TRACES": "0",
}
ERROR_KEYS = {"message", "type", "param", "code"}
# What a leaked stack trace, internal path or nginx's own HTML page looks like in a body.
LEAK_MARKERS = ("Traceback", 'File "/', "site-packages", "/work/", "/root/", "/tmp/", "<html", str(ROOT))
RESULTS_DIR = ROOT / "results" / "reliability"


def assert_no_leak(text: str) -> None:
    for marker in LEAK_MARKERS:
        assert marker not in text, f"internal detail {marker!r} in a response body: {text[:300]}"


def assert_openai_error(response: httpx.Response, status: int | tuple[int, ...] | None = None) -> dict:
    """The response is OpenAI's JSON error (with `status`, or any 4xx/5xx) and shows nothing internal; the error."""
    statuses = (status,) if isinstance(status, int) else status
    assert response.status_code >= 400 if statuses is None else response.status_code in statuses, (
        f"{response.status_code}: {response.text[:300]}"
    )
    assert response.headers.get("content-type", "").startswith("application/json"), response.text[:300]
    assert_no_leak(response.text)
    body = response.json()
    assert set(body) == {"error"} and set(body["error"]) == ERROR_KEYS, body
    assert isinstance(body["error"]["message"], str) and body["error"]["message"], body
    return body["error"]


def traceparent() -> tuple[str, str]:
    """A fresh W3C traceparent and its trace id: the proxy returns the id as X-Request-ID and the services log it."""
    trace_id = secrets.token_hex(16)
    return f"00-{trace_id}-{secrets.token_hex(8)}-01", trace_id


@dataclass
class StreamResult:
    """How one streamed request ended, as the client saw it."""

    trace_id: str
    status: int = 0
    headers_s: float = 0.0  # request sent → status line
    ttft_s: float | None = None  # request sent → first content delta
    total_s: float = 0.0
    content_chunks: int = 0
    finish_reason: str | None = None
    completion_tokens: int | None = None
    done: bool = False  # saw data: [DONE]
    error_event: dict | None = None
    exception: str | None = None
    retry_after: str | None = None
    error: dict | None = None  # the JSON error of a refused request

    @property
    def completed(self) -> bool:
        return self.status == 200 and self.done and self.finish_reason is not None and self.error_event is None

    @property
    def refused(self) -> bool:
        return self.status in (429, 503) and self.error is not None


async def stream_chat(
    client: httpx.AsyncClient,
    api_key: str,
    max_tokens: int = 16,
    prompt: str = "Count from one to fifty.",
    first_token: asyncio.Event | None = None,
    run_to_max_tokens: bool = False,
) -> StreamResult:
    """One streamed chat request through the proxy, read to its end; never raises (the outcome is recorded).
    `first_token` is set when the first content arrives; `run_to_max_tokens` forbids the end-of-sequence token."""
    header, trace_id = traceparent()
    result = StreamResult(trace_id)
    body = {
        "model": CHAT_MODEL,
        "messages": [{"role": "user", "content": f"[{trace_id[:8]}] {prompt}"}],
        "max_tokens": max_tokens,
        "temperature": 0,
        "stream": True,
        "stream_options": {"include_usage": True},
    }
    if run_to_max_tokens:
        body["logit_bias"] = {str(SMOLLM_EOS): -100}
    headers = {"Authorization": f"Bearer {api_key}", "traceparent": header}
    start = time.perf_counter()
    try:
        async with client.stream("POST", "/v1/chat/completions", json=body, headers=headers) as response:
            result.status = response.status_code
            result.headers_s = time.perf_counter() - start
            result.retry_after = response.headers.get("retry-after")
            if response.status_code != 200:
                await response.aread()
                result.error = assert_openai_error(response)
                return result
            async for line in response.aiter_lines():
                if not line.startswith("data: "):
                    continue
                if line == "data: [DONE]":
                    result.done = True
                    continue
                chunk = json.loads(line[6:])
                if "error" in chunk:
                    result.error_event = chunk["error"]
                    continue
                if chunk.get("usage"):
                    result.completion_tokens = chunk["usage"]["completion_tokens"]
                for choice in chunk.get("choices") or []:
                    if (choice.get("delta") or {}).get("content"):
                        result.content_chunks += 1
                        if result.ttft_s is None:
                            result.ttft_s = time.perf_counter() - start
                            if first_token is not None:
                                first_token.set()
                    result.finish_reason = choice.get("finish_reason") or result.finish_reason
    except (httpx.HTTPError, AssertionError, ValueError) as exc:
        result.exception = f"{type(exc).__name__}: {exc}"
    finally:
        result.total_s = time.perf_counter() - start
    return result


def service_pid(stack: Stack, name: str) -> int:
    """The pid supervisord holds for a program (0 while it is not running)."""
    output = stack.ctl("pid", name).strip()
    return int(output) if output.isdigit() else 0


def signal_service(stack: Stack, name: str, sig: signal.Signals) -> int:
    pid = service_pid(stack, name)
    assert pid, f"{name} is not running: {stack.ctl('status')}"
    os.kill(pid, sig)
    return pid


def rss_mb(pid: int) -> float | None:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        return None
    return None


def tree_rss_mb(pid: int) -> float | None:
    """RSS of a process and all its descendants (nginx: its master and workers)."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                parent = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            children.setdefault(parent, []).append(int(entry.name))
    total, todo, found = 0.0, [pid], False
    while todo:
        current = todo.pop()
        rss = rss_mb(current)
        if rss is not None:
            total, found = total + rss, True
        todo.extend(children.get(current, []))
    return round(total, 2) if found else None


def slope_per_minute(samples: list[tuple[float, float]]) -> float:
    """Least-squares slope of (seconds, value) samples, in value per minute."""
    if len(samples) < 2:
        return 0.0
    n = len(samples)
    mean_t = sum(t for t, _ in samples) / n
    mean_v = sum(v for _, v in samples) / n
    var = sum((t - mean_t) ** 2 for t, _ in samples)
    cov = sum((t - mean_t) * (v - mean_v) for t, v in samples)
    return 60 * cov / var if var else 0.0


def percentile(values: list[float], q: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q / 100 * len(ordered)) - 1))]


def access_log(stack: Stack, service: str) -> list[dict]:
    """The service's JSON access lines (one per request, with the request id the proxy sent)."""
    path = stack.run_dir / "logs" / f"{service}.log"
    lines = []
    for raw in path.read_text(errors="replace").splitlines():
        if '"ortserve.access"' in raw:
            try:
                lines.append(json.loads(raw))
            except ValueError:
                continue
    return lines


def load_average() -> float:
    return os.getloadavg()[0]


@dataclass
class Figures:
    """What a reliability run measured; written to results/reliability/<name>-<time>.json and printed."""

    name: str
    figures: dict = field(default_factory=dict)

    def write(self) -> Path:
        RESULTS_DIR.mkdir(parents=True, exist_ok=True)
        path = RESULTS_DIR / f"{self.name}-{time.strftime('%Y%m%d-%H%M%S')}.json"
        data = {**asdict(self), "load_average_1m": round(load_average(), 2), "time": time.strftime("%F %T")}
        path.write_text(json.dumps(data, indent=2) + "\n")
        print(f"\n{self.name}: {json.dumps(data['figures'])}\n(written to {path})")  # the run's report
        return path
