"""HTTP-layer unit tests on a scripted fake engine (the real-model tests prove the engine itself)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from chat_service.engine import GenerationRequest, TokenEvent
from chat_service.engine.thread_events import InFlight
from chat_service.engine.types import EngineStats
from chat_service.main import create_app
from chat_service.settings import ChatSettings
from chat_testing import CharTokenizer
from fastapi.testclient import TestClient


class FakeEngine:
    """Characters are tokens; generation replays `script` one character per step."""

    name = "fake"
    context_length = 64
    system_fingerprint = "fp_testdouble"

    def __init__(self, script: str) -> None:
        self.script = script
        self.closed = False
        self.active = 0
        self.in_flight = InFlight()  # generate() does not count in it: unloading never waits
        self.tokenizer = CharTokenizer()

    async def generate(self, request: GenerationRequest) -> AsyncIterator[TokenEvent]:
        self.active += 1
        try:
            for i, char in enumerate(self.script[: request.max_tokens]):
                await asyncio.sleep(0)
                last = i + 1 == min(len(self.script), request.max_tokens)
                finish = None if not last else ("length" if i + 1 == request.max_tokens else "stop")
                yield TokenEvent(ord(char), char, finish)
        finally:
            self.active -= 1

    def stats(self) -> EngineStats:
        return EngineStats(rows_decoding=self.active, rows_waiting=0)

    def close(self) -> None:
        self.closed = True


@pytest.fixture
def fake() -> FakeEngine:
    return FakeEngine("Hello, world! Goodbye.")


@pytest.fixture
def http(fake: FakeEngine, tmp_path: Path):
    settings = ChatSettings(model_path=tmp_path, model_id="fake", data_dir=tmp_path / "data")
    with TestClient(create_app(settings, engine_factory=lambda _path, _settings: fake)) as client:
        yield client
    assert fake.closed  # the lifespan frees the engine


def _chat(http: TestClient, **extra):
    body = {"model": "fake", "messages": [{"role": "user", "content": "hi"}], **extra}
    return http.post("/v1/chat/completions", json=body)


def _events(response) -> list:
    lines = [line for line in response.text.split("\n\n") if line]
    assert lines[-1] == "data: [DONE]"
    return [json.loads(line.removeprefix("data: ")) for line in lines[:-1]]


def test_non_stream_response_shape(http: TestClient) -> None:
    body = _chat(http).json()
    assert body["choices"][0]["message"] == {"role": "assistant", "content": "Hello, world! Goodbye."}
    assert body["choices"][0]["finish_reason"] == "stop"
    prompt = len("<user>hi<assistant>")
    assert body["usage"] == {
        "prompt_tokens": prompt,
        "completion_tokens": 22,
        "total_tokens": prompt + 22,
        "prompt_tokens_details": {"cached_tokens": 0},
    }


def test_stream_framing_and_usage(http: TestClient) -> None:
    response = _chat(http, stream=True, stream_options={"include_usage": True}, max_tokens=5)
    assert response.headers["content-type"].startswith("text/event-stream")
    events = _events(response)
    assert events[0]["choices"][0]["delta"] == {"role": "assistant", "content": ""}
    assert "".join(e["choices"][0]["delta"].get("content") or "" for e in events if e["choices"]) == "Hello"
    assert events[-2]["choices"][0]["finish_reason"] == "length"
    assert events[-1]["choices"] == [] and events[-1]["usage"]["completion_tokens"] == 5


def test_stop_string_ends_stream_and_generation(http: TestClient, fake: FakeEngine) -> None:
    events = _events(_chat(http, stream=True, stop=["world"]))
    text = "".join(e["choices"][0]["delta"].get("content") or "" for e in events if e["choices"])
    assert text == "Hello, "
    assert events[-1]["choices"][0]["finish_reason"] == "stop"
    assert fake.active == 0


def test_completions_with_the_fake(http: TestClient) -> None:
    body = http.post("/v1/completions", json={"model": "fake", "prompt": ["a", "b"], "max_tokens": 2}).json()
    assert [c["text"] for c in body["choices"]] == ["He", "He"]
    assert body["usage"]["prompt_tokens"] == 2


def test_unhandled_error_is_json_500_without_trace(http: TestClient, fake: FakeEngine) -> None:
    def boom(*_args, **_kwargs):
        raise RuntimeError("secret internal detail")

    fake.tokenizer.apply_chat_template = boom  # type: ignore[method-assign]
    response = _chat(http)
    assert response.status_code == 500
    error = response.json()["error"]
    assert error["type"] == "server_error" and "secret" not in error["message"]
    assert response.headers["x-request-id"] in error["message"]
