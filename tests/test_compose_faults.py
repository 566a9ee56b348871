"""Faults under docker compose, on the scaled stack (chat x2), through nginx with the OpenAI SDK: a chat replica killed
mid-stream, `docker compose restart chat` under streaming load, and chat scaled down and up again under a bounded
load. Each test leaves two healthy, registered chat replicas.
"""

from __future__ import annotations

import os
import signal
import threading
from concurrent.futures import ThreadPoolExecutor

import httpx
import openai
import pytest
from compose_testing import ComposeStack, docker

CHAT_MODEL = "smollm2-135m-instruct"
# Greedy counting runs past 1,500 tokens on this model without an end of sequence: a stream of 400 tokens is still
# going when the fault lands (tests/test_faults.py relies on the same).
COUNTING = "1, 2, 3, 4, 5, 6, 7, 8,"


def _two_replicas_serving(stack: ComposeStack) -> None:
    stack.wait_for(
        "two healthy chat replicas, both registered",
        lambda: len(stack.healthy("chat")) == 2 and stack.replicas(CHAT_MODEL) == 2,
    )


@pytest.fixture(autouse=True)
def _two_chat_replicas_after(compose_stack: ComposeStack):
    yield
    compose_stack.compose("up", "-d", "--no-build", "--wait", "--scale", "chat=2", check=False)  # whatever was left
    _two_replicas_serving(compose_stack)


def _serving_replica(stack: ComposeStack) -> str:
    """The chat container that holds a request slot now (read from each replica's own metrics)."""
    for _ in range(20):
        busy = [row["Name"] for row in stack.containers("chat") if row["State"] == "running"]
        busy = [name for name in busy if stack.replica_metric(name, "ortserve_requests_running") >= 1]
        if len(busy) == 1:
            return busy[0]
    raise AssertionError("no single chat replica reported the stream in flight")


def test_a_replica_killed_mid_stream_ends_the_stream_cleanly_and_comes_back(compose_stack: ComposeStack) -> None:
    _two_replicas_serving(compose_stack)
    client = compose_stack.openai()
    stream = client.completions.create(model=CHAT_MODEL, prompt=COUNTING, max_tokens=400, temperature=0, stream=True)
    chunks, victim = 0, ""
    # The SDK reports the cut (a closed stream mid-body): never a quiet end, never a hang until a timeout.
    with pytest.raises((openai.APIError, httpx.HTTPError)) as cut:
        for _ in stream:
            chunks += 1
            if chunks == 3:
                victim = _serving_replica(compose_stack)
                # SIGKILL to the replica's process, from the host: what `docker kill` sends and what a crash or the
                # OOM killer does. (`docker kill` itself also marks the container as stopped by hand, and Docker's
                # restart policies then leave it stopped on purpose; `docker compose up -d` brings it back.)
                os.kill(int(docker("inspect", "-f", "{{.State.Pid}}", victim).strip()), signal.SIGKILL)
    assert victim and not isinstance(cut.value, (openai.APITimeoutError, httpx.TimeoutException)), cut.value
    # The other replica keeps serving, through the same proxy.
    for number in range(4):
        reply = client.chat.completions.create(
            model=CHAT_MODEL, messages=[{"role": "user", "content": f"Say {number}."}], max_tokens=3
        )
        assert reply.choices[0].finish_reason in ("stop", "length")
    # The restart policy (unless-stopped) brings the killed one back: healthy, and registered again.
    compose_stack.wait_for(
        f"{victim} restarted by its restart policy",
        lambda: docker("inspect", "-f", "{{.RestartCount}}", victim).strip() not in ("", "0"),
    )
    _two_replicas_serving(compose_stack)


def _stream_to_the_end(client: openai.OpenAI, started: threading.Barrier) -> tuple[str | None, int, int]:
    """(finish_reason, chunks with text, completion tokens) of one stream read to its end."""
    stream = client.completions.create(
        model=CHAT_MODEL,
        prompt=COUNTING,
        max_tokens=120,
        temperature=0,
        stream=True,
        stream_options={"include_usage": True},
    )
    finish, texts, tokens = None, 0, 0
    for chunk in stream:
        if chunk.choices and chunk.choices[0].text:
            texts += 1
            if texts == 1:
                started.wait(timeout=120)
        if chunk.choices and chunk.choices[0].finish_reason:
            finish = chunk.choices[0].finish_reason
        if chunk.usage:
            tokens = chunk.usage.completion_tokens
    return finish, texts, tokens


def test_compose_restart_chat_under_load_finishes_every_stream_in_flight(compose_stack: ComposeStack) -> None:
    _two_replicas_serving(compose_stack)
    streams = 4
    started = threading.Barrier(streams + 1)
    client = compose_stack.openai()
    with ThreadPoolExecutor(streams) as pool:
        futures = [pool.submit(_stream_to_the_end, client, started) for _ in range(streams)]
        started.wait(timeout=120)  # every stream has its first tokens: all are in flight on some replica
        # SIGTERM to every chat replica; each drains its streams (within stop_grace_period) before it exits.
        compose_stack.compose("restart", "chat", timeout=240)
        results = [future.result(timeout=240) for future in futures]
    # Zero truncated: each stream ran to its token limit and said so.
    assert all(finish == "length" and texts > 0 and tokens == 120 for finish, texts, tokens in results), results


def test_scaling_chat_down_and_up_under_load_loses_no_request(compose_stack: ComposeStack) -> None:
    _two_replicas_serving(compose_stack)
    client = compose_stack.openai()
    stop = threading.Event()
    outcomes: list[str] = []

    def load() -> None:  # a bounded load: two clients, one short request after the other
        while not stop.is_set():
            try:
                reply = client.chat.completions.create(
                    model=CHAT_MODEL, messages=[{"role": "user", "content": "Say hi."}], max_tokens=8
                )
                outcomes.append(reply.choices[0].finish_reason or "none")
            except (openai.APIError, httpx.HTTPError) as exc:
                outcomes.append(f"{type(exc).__name__}: {exc}")

    with ThreadPoolExecutor(2) as pool:
        workers = [pool.submit(load) for _ in range(2)]
        try:
            compose_stack.compose("up", "-d", "--no-build", "--no-recreate", "--wait", "--scale", "chat=1")
            assert len(compose_stack.containers("chat")) == 1
            compose_stack.compose("up", "-d", "--no-build", "--no-recreate", "--wait", "--scale", "chat=2")
            _two_replicas_serving(compose_stack)
        finally:
            stop.set()
            for worker in workers:
                worker.result(timeout=120)
    failed = [outcome for outcome in outcomes if outcome not in ("stop", "length")]
    assert outcomes and not failed, failed
