"""The key's priority over HTTP: the proxy's X-Ortserve-Key-Priority header is read on every generating endpoint
(chat, completions, responses, messages; streamed or not) and carried to the model's admission and engine; a value
that is neither priority is a 400 in the endpoint's own error shape. On the real model, with its decode steps held
(held_steps.py): an interactive request is admitted at once past a batch request that queues, into the place and
the KV slot that batch requests may not take, and every request then ends whole."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from chat_service.engine import GenerationRequest, TokenEvent
from chat_service.engine.thread_events import InFlight
from chat_service.engine.types import EngineStats
from chat_service.main import create_app
from chat_service.models.pool import load_engine
from chat_service.settings import ChatSettings
from chat_testing import CharTokenizer
from fastapi.testclient import TestClient
from held_steps import HeldSteps
from ortserve_common.admission import AdmissionController
from ortserve_testing import metrics
from ortserve_testing.waiting import DEADLINE_S, wait_until

HEADER = "X-Ortserve-Key-Priority"
BODIES: dict[str, dict[str, Any]] = {
    "/v1/chat/completions": {"messages": [{"role": "user", "content": "hi"}], "max_tokens": 2},
    "/v1/completions": {"prompt": "hi", "max_tokens": 2},
    "/v1/responses": {"input": "hi", "max_output_tokens": 2},
    "/v1/messages": {"messages": [{"role": "user", "content": "hi"}], "max_tokens": 2},
}


class RecordingEngine:
    """Answers "ok"; records each generation's priority and the admitted places by priority while it runs."""

    name = "fake"
    context_length = 64
    system_fingerprint = "fp_testdouble"

    def __init__(self) -> None:
        self.in_flight = InFlight()
        self.tokenizer = CharTokenizer()
        self.admission: Callable[[], AdmissionController] | None = None
        self.seen: list[tuple[str, int]] = []  # (the request's priority, batch requests admitted meanwhile)

    async def generate(self, request: GenerationRequest) -> AsyncIterator[TokenEvent]:
        assert self.admission is not None
        self.seen.append((request.priority, self.admission().running_for("batch")))
        await asyncio.sleep(0)
        yield TokenEvent(ord("o"), "o")
        yield TokenEvent(ord("k"), "k", "length")

    def stats(self) -> EngineStats:
        return EngineStats(rows_decoding=0, rows_waiting=0)

    def close(self) -> None:
        pass


@pytest.fixture
def recording(tmp_path: Path) -> Iterator[tuple[TestClient, RecordingEngine]]:
    engine = RecordingEngine()
    settings = ChatSettings(model_path=tmp_path, model_id="fake", data_dir=tmp_path / "data")
    with TestClient(create_app(settings, engine_factory=lambda _path, _settings: engine)) as http:
        engine.admission = lambda: http.app.state.pool.model("fake").admission  # type: ignore[attr-defined]
        yield http, engine


@pytest.mark.parametrize("stream", [False, True])
@pytest.mark.parametrize("path", list(BODIES))
def test_the_header_reaches_admission_and_the_engine_on_every_endpoint(recording, path: str, stream: bool) -> None:
    http, engine = recording
    sent = [(None, "interactive"), ("batch", "batch"), ("interactive", "interactive"), (" Batch ", "batch")]
    for value, _ in sent:
        headers = {HEADER: value} if value is not None else {}
        response = http.post(path, json={"model": "fake", "stream": stream, **BODIES[path]}, headers=headers)
        assert response.status_code == 200, response.text
    # Each generation ran while its own request held the admission place: a batch one counted as batch.
    assert engine.seen == [(expected, int(expected == "batch")) for _, expected in sent]


@pytest.mark.parametrize("path", list(BODIES))
def test_an_unknown_priority_is_a_400_in_the_endpoints_error_shape(recording, path: str) -> None:
    http, engine = recording
    response = http.post(path, json={"model": "fake", **BODIES[path]}, headers={HEADER: "urgent"})
    assert response.status_code == 400
    body = response.json()
    if path == "/v1/messages":  # Anthropic's shape on its route
        assert body["type"] == "error" and body["error"]["type"] == "invalid_request_error"
    else:
        assert body["error"]["type"] == "invalid_request_error" and body["error"]["code"] == "invalid_priority"
    message = body["error"]["message"]
    assert HEADER in message and "interactive, batch" in message and "'urgent'" in message
    assert engine.seen == []  # refused before anything was queued


# --- the real model, its steps held ---


class HeldService:
    """The chat service in-process on the real SmolLM2, 2 KV slots and 2 admitted requests per model, one of each
    kept for interactive requests; requests sent in the background answer into `results`."""

    def __init__(self, http: TestClient, held: HeldSteps) -> None:
        self.http, self.held = http, held
        self.results: dict[str, httpx.Response] = {}
        self._threads: list[threading.Thread] = []

    def send(self, name: str, priority: str | None, max_tokens: int) -> None:
        body = {"model": "smol", "prompt": f"Story {name}: Once upon a time,", "max_tokens": max_tokens}
        body |= {"temperature": 0, "logit_bias": {"2": -100}}  # <|im_end|> banned: each runs to max_tokens
        headers = {HEADER: priority} if priority else {}

        def post() -> None:
            self.results[name] = self.http.post("/v1/completions", json=body, headers=headers)

        self._threads.append(threading.Thread(target=post, name=name))
        self._threads[-1].start()

    def sample(self, name: str, priority: str) -> float:
        return metrics.sample(self.http.get("/metrics").text, name, model="smol", priority=priority)

    def finish(self) -> None:
        self.held.open()
        for thread in self._threads:
            thread.join(DEADLINE_S)


def test_an_interactive_request_is_admitted_past_a_queued_batch_one_into_the_reserved_slot(
    smollm_path: Path, tmp_path: Path
) -> None:
    settings = ChatSettings(
        model_path=smollm_path,
        model_id="smol",
        max_batch_size=2,
        max_concurrency=2,
        interactive_reserved_slots=1,
        max_model_len=512,
        queue_timeout_s=DEADLINE_S,
        data_dir=tmp_path / "data",
    )
    engines: list[HeldSteps] = []

    def held_engine(path: Path, model_settings: ChatSettings):  # the real engine, its decode steps held
        engine = load_engine(path, model_settings)
        engines.append(HeldSteps(engine))  # type: ignore[arg-type]
        return engine

    with TestClient(create_app(settings, engine_factory=held_engine)) as http:
        service = HeldService(http, engines[0])
        try:
            service.send("batch-1", "batch", 24)
            service.held.wait_held(1)  # in its KV slot, its first decode step held
            service.send("batch-2", "batch", 24)  # the other place is interactive only: it queues
            wait_until(lambda: service.sample("ortserve_admission_queue_depth", "batch") == 1, "batch-2 queued")
            service.send("interactive", None, 4)  # no header: interactive
            wait_until(
                lambda: service.sample("ortserve_engine_queue_depth", "interactive") == 1,
                "the interactive request admitted, waiting for the turn under way",
            )
            assert service.sample("ortserve_admission_running", "interactive") == 1
            assert service.sample("ortserve_admission_queue_depth", "batch") == 1  # still queued behind it
            assert service.sample("ortserve_admission_running", "batch") == 1
        finally:
            service.finish()
        assert {name: r.status_code for name, r in service.results.items()} == dict.fromkeys(
            ["batch-1", "batch-2", "interactive"], 200
        )
        usage = {name: r.json()["usage"]["completion_tokens"] for name, r in service.results.items()}
        assert usage == {"batch-1": 24, "batch-2": 24, "interactive": 4}
        text = http.get("/metrics").text
        assert metrics.sample(text, "ortserve_admission_running", model="smol", priority="batch") == 0
