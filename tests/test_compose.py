"""The stack under docker compose, scaled (chat x2, embeddings x2), black box through nginx with the OpenAI SDK:
every replica is healthy, registered and scraped by Prometheus, both chat replicas serve, a conversation started on
one replica continues on the other (one SQLite file on the shared chat-data volume); faults: a replica killed
mid-stream, `docker compose restart chat` under streaming load, chat scaled down and up under a bounded load; and
keys and conversations survive `docker compose down` and `up` (named volumes). One compose project for the module,
removed at its end so that it does not share the CPU with the suites after it.
"""

from __future__ import annotations

import os
import signal
import subprocess
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import httpx
import openai
import pytest
from compose_testing import ROOT, ComposeStack, docker

# The module starts a whole stack of its own (under docker compose / on a swarm): a stack test.
pytestmark = pytest.mark.stack

CHAT_MODEL = "smollm2-135m-instruct"
EMBED_MODEL = "all-minilm-l6-v2"
# Greedy counting runs past 1,500 tokens on this model without an end of sequence: a stream of 400 tokens is still
# going when the fault lands (tests/test_faults.py relies on the same).
COUNTING = "1, 2, 3, 4, 5, 6, 7, 8,"


@pytest.fixture(scope="module")
def compose_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ComposeStack]:
    if subprocess.run(["docker", "info"], capture_output=True, check=False).returncode != 0:
        pytest.fail("no Docker engine answers: `make docker-engine` installs and starts one (make test does)")
    # Up to date images: seconds from the engine's cache (make test has built them already).
    subprocess.run([str(ROOT / "tools/docker/images.sh")], check=True, capture_output=True, timeout=900)
    stack = ComposeStack(tmp_path_factory.mktemp("compose"), {"chat": 2, "embeddings": 2})
    try:
        yield stack.up()
    finally:
        stack.down(volumes=True)


def _ips(stack: ComposeStack, service: str, port: int) -> set[str]:
    return {f"{stack.ip(row['Name'])}:{port}" for row in stack.containers(service) if row["State"] == "running"}


def test_every_replica_is_healthy_registered_and_scraped(compose_stack: ComposeStack) -> None:
    assert len(compose_stack.healthy("chat")) == 2 and len(compose_stack.healthy("embeddings")) == 2
    compose_stack.wait_until(
        "/v1/models counts two replicas of each scaled model",
        lambda: compose_stack.replicas(CHAT_MODEL) == 2 and compose_stack.replicas(EMBED_MODEL) == 2,
    )

    def scraped() -> bool:
        targets = compose_stack.prometheus('up{job=~"chat|embeddings|models"} == 1')
        found = {(t["metric"]["job"], t["metric"]["instance"]) for t in targets}
        expected = {("chat", a) for a in _ips(compose_stack, "chat", 8000)}
        expected |= {("embeddings", a) for a in _ips(compose_stack, "embeddings", 8001)}
        expected |= {("models", a) for a in _ips(compose_stack, "models", 8002)}
        return found == expected and len(expected) == 5

    compose_stack.wait_until("Prometheus scrapes every replica of every service", scraped)


def test_both_chat_replicas_serve_requests_sent_through_the_proxy(compose_stack: ComposeStack) -> None:
    client = compose_stack.openai()
    for number in range(8):
        reply = client.chat.completions.create(
            model=CHAT_MODEL, messages=[{"role": "user", "content": f"Say {number}."}], max_tokens=4
        )
        assert reply.choices[0].finish_reason in ("stop", "length")
    query = 'sum by (instance) (ortserve_http_requests_total{job="chat", route="/v1/chat/completions"}) > 0'

    def both_served() -> bool:  # each replica's own request counter, as Prometheus scraped it
        return {s["metric"]["instance"] for s in compose_stack.prometheus(query)} == _ips(compose_stack, "chat", 8000)

    compose_stack.wait_until("both chat replicas counted chat completions", both_served, timeout_s=60)


def test_a_key_limited_to_n_requests_a_minute_gets_n_across_both_chat_replicas(compose_stack: ComposeStack) -> None:
    """Both replicas count in the one Redis of the stack: N requests a minute in all, not N per replica."""
    limit = 3
    admin = {"Authorization": f"Bearer {compose_stack.admin_key}"}
    with compose_stack.http() as http:
        key = http.post("/admin/keys", json={"name": "rpm", "limits": {"requests_per_minute": limit}}, headers=admin)
        key_id, secret = key.json()["id"], key.json()["key"]
        left = http.get(f"/admin/keys/{key_id}/usage", headers=admin).json()["minute"]["resets_in_s"]
    if left < 30:  # start early in a clock minute, so the window cannot roll over half-way
        time.sleep(left + 0.5)
    client = compose_stack.openai(secret)
    served, refused, request_ids = 0, 0, []
    for number in range(2 * limit + 2):
        try:
            reply = client.chat.completions.with_raw_response.create(
                model=CHAT_MODEL, messages=[{"role": "user", "content": f"Say {number}."}], max_tokens=2
            )
            served += 1
            request_ids.append(reply.headers["x-request-id"])
        except openai.RateLimitError as exc:
            assert exc.type == "requests"
            refused += 1
            request_ids.append(exc.response.headers["x-request-id"])
    assert (served, refused) == (limit, limit + 2)
    compose_stack.wait_until(
        "the proxy's log shows the key's requests answered by both chat replicas",
        lambda: len({compose_stack.upstreams().get(rid) for rid in request_ids} - {None}) == 2,
        timeout_s=30,
    )


def test_a_conversation_continues_on_the_other_replica(compose_stack: ComposeStack) -> None:
    client = compose_stack.openai()
    conversation = client.conversations.create(items=[{"role": "user", "content": "My name is Ada."}])
    request_ids: list[str] = []
    upstreams: set[str] = set()
    for turn in range(10):
        raw = client.chat.completions.with_raw_response.create(
            model=CHAT_MODEL,
            messages=[{"role": "user", "content": f"Turn {turn}: say one word."}],
            max_tokens=4,
            temperature=0,
            extra_body={"conversation": conversation.id},
        )
        assert raw.parse().choices[0].message.content is not None
        request_ids.append(raw.headers["x-request-id"])
        if turn >= 1:  # nginx logs a request once it is answered: look up where each turn went
            logged = lambda: set(request_ids) <= set(compose_stack.upstreams())  # noqa: E731
            compose_stack.wait_until("the proxy logged every turn", logged)
            upstreams = {compose_stack.upstreams()[rid] for rid in request_ids}
            if len(upstreams) == 2:
                break
    assert upstreams == _ips(compose_stack, "chat", 8000), upstreams  # the turns went to both replicas
    items = list(client.conversations.items.list(conversation.id, order="asc"))
    texts = [item.content[0].text for item in items]  # type: ignore[union-attr]
    # Every turn, wherever it ran, read and extended the one history: first message, then question/answer pairs.
    assert texts[0] == "My name is Ada." and len(texts) == 1 + 2 * len(request_ids)
    assert texts[1::2] == [f"Turn {turn}: say one word." for turn in range(len(request_ids))]


def _two_replicas_serving(stack: ComposeStack) -> None:
    stack.wait_until(
        "two healthy chat replicas, both registered",
        lambda: len(stack.healthy("chat")) == 2 and stack.replicas(CHAT_MODEL) == 2,
    )


@pytest.fixture
def _two_chat_replicas_after(compose_stack: ComposeStack):
    """For the fault tests: two healthy, registered chat replicas again afterwards, whatever a failure left."""
    yield
    compose_stack.compose("up", "-d", "--no-build", "--wait", "--scale", "chat=2", check=False)
    _two_replicas_serving(compose_stack)


def _serving_replica(stack: ComposeStack) -> str:
    """The chat container that holds a request slot now (read from each replica's own metrics)."""
    for _ in range(20):
        busy = [row["Name"] for row in stack.containers("chat") if row["State"] == "running"]
        busy = [name for name in busy if stack.replica_metric(name, "ortserve_requests_running") >= 1]
        if len(busy) == 1:
            return busy[0]
    raise AssertionError("no single chat replica reported the stream in flight")


@pytest.mark.usefixtures("_two_chat_replicas_after")
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
    compose_stack.wait_until(
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


@pytest.mark.usefixtures("_two_chat_replicas_after")
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


@pytest.mark.usefixtures("_two_chat_replicas_after")
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


def test_keys_and_conversations_survive_down_and_up(compose_stack: ComposeStack) -> None:
    with compose_stack.http() as http:
        created = http.post(
            "/admin/keys", json={"name": "survivor"}, headers={"Authorization": f"Bearer {compose_stack.admin_key}"}
        )
    assert created.status_code == 201, created.text
    key = created.json()["key"]
    conversation = compose_stack.openai(key).conversations.create(items=[{"role": "user", "content": "Remember me."}])

    compose_stack.down(volumes=False)
    assert compose_stack.containers("") == []  # `down` returned with every container stopped and removed
    compose_stack.up()

    client = compose_stack.openai(key)  # a key made through the admin API, kept in the keys-data volume
    items = list(client.conversations.items.list(conversation.id))
    assert [item.content[0].text for item in items] == ["Remember me."]  # type: ignore[union-attr]
