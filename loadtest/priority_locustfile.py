"""A batch flood beside an interactive user, against the chat service directly, each request carrying the key
priority that the proxy would send (X-Ortserve-Key-Priority). Run it with `make loadtest-priority` (loadtest/
priority.py starts the service once per scenario and reads the figures); by hand:

    locust -f loadtest/priority_locustfile.py --headless --host http://127.0.0.1:8000 -t 60s \
        BatchFloodUser InteractiveUser

BatchFloodUser (LOADTEST_BATCH_USERS of them) asks for long answers back to back, without streaming, as a bulk job
does; InteractiveUser (LOADTEST_INTERACTIVE_USERS) streams short answers with a pause between, as a person does, and
fires request type "SSE", name "TTFT [interactive]": ms from sending to the first content delta. A user class the
run leaves out sends nothing; LOADTEST_BATCH_PRIORITY sets the flood's header (batch; empty sends none, so the flood
is interactive too and the queue is first come, first served).
"""

from __future__ import annotations

import json
import os
import random
import time
import uuid
from pathlib import Path

from locust import HttpUser, between, constant

PROMPTS = json.loads((Path(__file__).with_name("prompts.json")).read_text())
CHAT_MODEL = os.environ.get("LOADTEST_CHAT_MODEL", "smollm2-135m-instruct")
BATCH_MAX_TOKENS = int(os.environ.get("LOADTEST_BATCH_MAX_TOKENS", "96"))
INTERACTIVE_MAX_TOKENS = int(os.environ.get("LOADTEST_INTERACTIVE_MAX_TOKENS", "8"))
BATCH_PRIORITY = os.environ.get("LOADTEST_BATCH_PRIORITY", "batch")
# The model's end of sequence, banned in the flood's answers (SmolLM2's <|im_end|>); empty bans nothing.
BATCH_NO_END_TOKEN = os.environ.get("LOADTEST_BATCH_NO_END_TOKEN", "2")
PRIORITY_HEADER = "X-Ortserve-Key-Priority"


def conversation() -> list[dict[str, str]]:
    """A unique nonce first, so that no prefix cache serves the prompt."""
    return [
        {"role": "system", "content": f"[{uuid.uuid4().hex[:8]}] {PROMPTS['system']}"},
        {"role": "user", "content": random.choice(PROMPTS["questions"])},
    ]


class BatchFloodUser(HttpUser):
    fixed_count = int(os.environ.get("LOADTEST_BATCH_USERS", "6"))
    wait_time = constant(0)  # the next request as soon as the last one ends: every slot it may take stays taken

    def on_start(self) -> None:
        if BATCH_PRIORITY:
            self.client.headers[PRIORITY_HEADER] = BATCH_PRIORITY

    def _flood(self) -> None:
        # The end of sequence is banned, so every answer is as long as asked: the flood's load does not depend on
        # what the model happens to say.
        body = {"model": CHAT_MODEL, "messages": conversation(), "max_tokens": BATCH_MAX_TOKENS}
        if BATCH_NO_END_TOKEN:
            body["logit_bias"] = {BATCH_NO_END_TOKEN: -100}
        with self.client.post("/v1/chat/completions", json=body, catch_response=True, name="batch") as response:
            if response.status_code != 200:
                response.failure(f"HTTP {response.status_code}: {response.text[:200]}")

    tasks = [_flood]


class InteractiveUser(HttpUser):
    fixed_count = int(os.environ.get("LOADTEST_INTERACTIVE_USERS", "1"))
    wait_time = between(0.5, 1.0)

    def on_start(self) -> None:
        self.client.headers[PRIORITY_HEADER] = "interactive"

    def _ask(self) -> None:
        body = {
            "model": CHAT_MODEL,
            "messages": conversation(),
            "max_tokens": INTERACTIVE_MAX_TOKENS,
            "stream": True,
        }
        sent = time.perf_counter()
        first = None
        post = self.client.post
        with post("/v1/chat/completions", json=body, stream=True, catch_response=True, name="interactive") as response:
            if response.status_code != 200:
                response.failure(f"HTTP {response.status_code}: {response.text[:200]}")
                return
            for line in response.iter_lines():
                if not line.startswith(b"data: {"):
                    continue
                chunk = json.loads(line[6:])
                if "error" in chunk:
                    response.failure(f"error event: {chunk['error']}")
                    return
                if first is None and any((c.get("delta") or {}).get("content") for c in chunk["choices"]):
                    first = time.perf_counter()
            if first is None:
                response.failure("the stream carried no content")
                return
            response.success()
        self.environment.events.request.fire(
            request_type="SSE",
            name="TTFT [interactive]",
            response_time=1000 * (first - sent),
            response_length=0,
            exception=None,
            context={},
        )

    tasks = [_ask]
