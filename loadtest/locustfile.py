"""Locust scenarios for ortserve, through the proxy over TLS. Run it with `make loadtest` / `make loadtest-ui`.

    ORTSERVE_HOST=https://localhost:8443 ORTSERVE_CA=run/tls/ca.pem ORTSERVE_API_KEY=sk-... \
        locust -f loadtest/locustfile.py MixedUser

User classes: StreamingChatUser, ChatUser, CompletionsUser, EmbeddingsUser, RerankUser, and MixedUser (all of them,
weighted). Streaming chat fires its own events beside Locust's time-to-headers: request type "SSE", names
"TTFT" (ms to the first content delta) and "inter-token latency (mean per stream)" (ms). Its decode rate (tokens/s per
stream) is not a time, so it stays out of Locust's response-time statistics and charts: it is kept here and shown in
the web UI's "Token rates" tab, written to <csv prefix>_token_rates.csv and logged at the end. Prompts come from
loadtest/prompts.json; each conversation starts with a unique nonce so no prefix cache serves it.
"""

from __future__ import annotations

import csv
import json
import logging
import os
import random
import statistics
import time
import uuid
from pathlib import Path

import gevent
from flask import Response, request
from locust import HttpUser, between, events
from locust.env import Environment
from locust.stats import CSV_STATS_INTERVAL_SEC

PROMPTS = json.loads((Path(__file__).with_name("prompts.json")).read_text())
# The real-size model `make run` serves; LOADTEST_CHAT_MODEL=smollm2-135m-instruct picks the fast toy.
CHAT_MODEL = os.environ.get("LOADTEST_CHAT_MODEL", "qwen2.5-coder-0.5b-instruct")
EMBED_MODEL = os.environ.get("LOADTEST_EMBED_MODEL", "all-minilm-l6-v2")
RERANK_MODEL = os.environ.get("LOADTEST_RERANK_MODEL", "all-minilm-l6-v2")
MAX_TOKENS = int(os.environ.get("LOADTEST_MAX_TOKENS", "64"))
EMBED_BATCH_SIZES = (1, 8, 32)
DECODE_RATE = "decode tok/s per stream"
TOKEN_RATES_KEY = "token-rates"
TOKEN_RATE_COLUMNS = ("name", "streams", "mean", "p10", "median", "p90")
logger = logging.getLogger("loadtest")
# Rates per name, for this process's run (the runner is local: no workers to merge).
token_rates: dict[str, list[float]] = {}


def token_rate_rows() -> list[dict[str, object]]:
    """One row per name: the slow streams (p10) matter as much as the median."""
    rows: list[dict[str, object]] = []
    for name, values in sorted(token_rates.items()):
        deciles = statistics.quantiles(values, n=10, method="inclusive") if len(values) > 1 else values * 9
        figures = (round(x, 1) for x in (statistics.fmean(values), deciles[0], statistics.median(values), deciles[-1]))
        rows.append({"name": name, "streams": len(values), **dict(zip(TOKEN_RATE_COLUMNS[2:], figures, strict=True))})
    return rows


@events.test_start.add_listener
def _reset_token_rates(**_kwargs: object) -> None:
    token_rates.clear()


@events.init.add_listener
def _token_rates_tab(environment: Environment, **_kwargs: object) -> None:
    """A "Token rates" tab in the web UI (Locust's extended-tab hook), fed with each /stats/requests poll."""
    if not environment.web_ui:
        return
    structure = [{"key": column, "title": column} for column in TOKEN_RATE_COLUMNS]
    environment.web_ui.template_args["extendedTabs"] = [{"title": "Token rates", "key": TOKEN_RATES_KEY}]
    environment.web_ui.template_args["extendedTables"] = [{"key": TOKEN_RATES_KEY, "structure": structure}]

    app = environment.web_ui.app
    assert app is not None  # a web UI always has its Flask app

    @app.after_request
    def _with_token_rates(response: Response) -> Response:
        if request.path == "/stats/requests" and response.is_json:
            body = {**response.get_json(), "extended_stats": [{"key": TOKEN_RATES_KEY, "data": token_rate_rows()}]}
            response.set_data(json.dumps(body))
        return response


@events.quitting.add_listener
def _write_token_rates(environment: Environment, **_kwargs: object) -> None:
    rows = token_rate_rows()
    for row in rows:
        logger.info("%s: %d streams, median %s, p10 %s", row["name"], row["streams"], row["median"], row["p10"])
    prefix = getattr(environment.parsed_options, "csv_prefix", None)
    if prefix and rows:
        with open(f"{prefix}_token_rates.csv", "w", newline="") as out:
            writer = csv.DictWriter(out, TOKEN_RATE_COLUMNS)
            writer.writeheader()
            writer.writerows(rows)


def conversation() -> list[dict[str, str]]:
    return [
        {"role": "system", "content": f"[{uuid.uuid4().hex[:8]}] {PROMPTS['system']}"},
        {"role": "user", "content": random.choice(PROMPTS["questions"])},
    ]


@events.quit.add_listener
def _let_the_csv_writer_catch_up(**_kwargs: object) -> None:
    """Locust rewrites its CSV once a second and closes it right after the stop timeout: requests that ended in that
    last second would be missing from it. One more interval lets the writer see them."""
    gevent.sleep(CSV_STATS_INTERVAL_SEC + 0.2)


class OrtserveUser(HttpUser):
    """Base: TLS with the stack's CA, the API key, and the host from the environment (or --host)."""

    abstract = True
    host = os.environ.get("ORTSERVE_HOST", "https://localhost:8443")
    wait_time = between(0.1, 1.0)

    def on_start(self) -> None:
        if os.environ.get("ORTSERVE_CA"):
            self.client.verify = os.environ["ORTSERVE_CA"]
        self.client.headers["Authorization"] = f"Bearer {os.environ.get('ORTSERVE_API_KEY', '')}"

    def fire(self, name: str, value: float) -> None:
        self.environment.events.request.fire(
            request_type="SSE", name=name, response_time=value, response_length=0, exception=None, context={}
        )


def stream_chat(user: OrtserveUser) -> None:
    body = {
        "model": CHAT_MODEL,
        "messages": conversation(),
        "max_tokens": MAX_TOKENS,
        "stream": True,
        "stream_options": {"include_usage": True},
    }
    sent = time.perf_counter()
    name = "/v1/chat/completions [stream]"
    with user.client.post("/v1/chat/completions", json=body, stream=True, catch_response=True, name=name) as response:
        if response.status_code != 200:
            response.failure(f"HTTP {response.status_code}: {response.text[:200]}")
            return
        first = last = None
        deltas, usage = 0, None
        for line in response.iter_lines():
            if not line.startswith(b"data: ") or line == b"data: [DONE]":
                continue
            chunk = json.loads(line[6:])
            if "error" in chunk:
                response.failure(f"error event: {chunk['error']}")
                return
            usage = chunk.get("usage") or usage
            if any((c.get("delta") or {}).get("content") for c in chunk.get("choices") or []):
                last = time.perf_counter()
                first = first or last
                deltas += 1
        end = time.perf_counter()
        if first is None:
            response.failure("the stream carried no content")
            return
        response.success()
    # catch_response may swallow exceptions, so mypy cannot see that the block returned where first is None.
    assert first is not None and last is not None
    tokens = usage["completion_tokens"] if usage else deltas
    user.fire("TTFT", 1000 * (first - sent))
    if tokens > 1 and end > first:
        user.fire("inter-token latency (mean per stream)", 1000 * (last - first) / max(deltas - 1, 1))
        token_rates.setdefault(DECODE_RATE, []).append((tokens - 1) / (end - first))


def chat(user: OrtserveUser) -> None:
    body = {"model": CHAT_MODEL, "messages": conversation(), "max_tokens": MAX_TOKENS}
    with user.client.post("/v1/chat/completions", json=body, catch_response=True) as response:
        if response.status_code != 200 or not response.json()["choices"][0]["message"]["content"]:
            response.failure(f"HTTP {response.status_code}: {response.text[:200]}")


def completion(user: OrtserveUser) -> None:
    prompt = f"[{uuid.uuid4().hex[:8]}] {random.choice(PROMPTS['completions'])}"
    body = {"model": CHAT_MODEL, "prompt": prompt, "max_tokens": MAX_TOKENS}
    with user.client.post("/v1/completions", json=body, catch_response=True) as response:
        if response.status_code != 200 or "text" not in response.json()["choices"][0]:
            response.failure(f"HTTP {response.status_code}: {response.text[:200]}")


def embeddings(user: OrtserveUser) -> None:
    size = random.choice(EMBED_BATCH_SIZES)
    texts = random.choices(PROMPTS["sentences"], k=size)
    name = f"/v1/embeddings [batch {size}]"
    body = {"model": EMBED_MODEL, "input": texts}
    with user.client.post("/v1/embeddings", json=body, catch_response=True, name=name) as response:
        if response.status_code != 200 or len(response.json()["data"]) != size:
            response.failure(f"HTTP {response.status_code}: {response.text[:200]}")


def rerank(user: OrtserveUser) -> None:
    documents = PROMPTS["rerank"]["documents"]
    body = {"model": RERANK_MODEL, "query": random.choice(PROMPTS["rerank"]["queries"]), "documents": documents}
    with user.client.post("/v1/rerank", json=body, catch_response=True) as response:
        if response.status_code != 200 or len(response.json()["results"]) != len(documents):
            response.failure(f"HTTP {response.status_code}: {response.text[:200]}")


class StreamingChatUser(OrtserveUser):
    tasks = [stream_chat]


class ChatUser(OrtserveUser):
    tasks = [chat]


class CompletionsUser(OrtserveUser):
    tasks = [completion]


class EmbeddingsUser(OrtserveUser):
    tasks = [embeddings]


class RerankUser(OrtserveUser):
    tasks = [rerank]


class MixedUser(OrtserveUser):
    """A weighted mix: mostly streaming chat and embeddings, as an assistant with retrieval would send."""

    # Locust takes a {task: weight} dict as well as a list; its annotation names only the list.
    tasks = {stream_chat: 4, chat: 2, completion: 1, embeddings: 3, rerank: 1}  # type: ignore[assignment]
