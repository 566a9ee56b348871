"""/v1/messages and /v1/messages/count_tokens over HTTP, on a scripted fake engine: Anthropic's message object, its
stream events as SSE with `event:` names, tool_use blocks from a parsed call, and Anthropic-shaped errors."""

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

CALL = '<tool_call>{"name": "get_weather", "arguments": {"city": "Paris"}}</tool_call>'
TOOLS = [{"name": "get_weather", "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}}}]


class ScriptedEngine:
    """Characters are tokens; generation replays `script` one character per step."""

    name = "scripted"
    context_length = 4096
    system_fingerprint = "fp_testdouble"

    def __init__(self) -> None:
        self.script = "Hello, world! Goodbye."
        self.in_flight = InFlight()
        self.tokenizer = CharTokenizer()

    async def generate(self, request: GenerationRequest) -> AsyncIterator[TokenEvent]:
        script = self.script[: request.max_tokens]
        for i, char in enumerate(script):
            await asyncio.sleep(0)
            last = i + 1 == len(script)
            yield TokenEvent(
                ord(char),
                char,
                None if not last else ("length" if last and len(script) == request.max_tokens else "stop"),
            )

    def stats(self) -> EngineStats:
        return EngineStats(rows_decoding=0, rows_waiting=0)

    def close(self) -> None:
        pass


@pytest.fixture
def engine() -> ScriptedEngine:
    return ScriptedEngine()


@pytest.fixture
def http(engine: ScriptedEngine, tmp_path: Path):
    settings = ChatSettings(model_path=tmp_path, model_id="fake", data_dir=tmp_path / "data")
    with TestClient(create_app(settings, engine_factory=lambda _path, _settings: engine)) as client:
        yield client


def _message(http: TestClient, **fields):
    body = {"model": "fake", "max_tokens": 128, "messages": [{"role": "user", "content": "hi"}], **fields}
    return http.post("/v1/messages", json=body, headers={"anthropic-version": "2023-06-01"})


def _events(response) -> list[tuple[str, dict]]:
    assert response.headers["content-type"].startswith("text/event-stream")
    events = []
    for frame in filter(None, response.text.split("\n\n")):
        name, data = frame.split("\n")
        events.append((name.removeprefix("event: "), json.loads(data.removeprefix("data: "))))
    assert all(name == data["type"] for name, data in events)
    return events


def test_a_message_in_anthropics_shape(http: TestClient) -> None:
    response = _message(http, system="Be brief.")
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["id"].startswith("msg_") and len(body["id"]) > 10
    prompt = len("<system>Be brief.<user>hi<assistant>")
    assert {k: v for k, v in body.items() if k != "id"} == {
        "type": "message",
        "role": "assistant",
        "content": [{"type": "text", "text": "Hello, world! Goodbye."}],
        "model": "fake",
        "stop_reason": "end_turn",
        "stop_sequence": None,
        "usage": {
            "input_tokens": prompt,
            "output_tokens": 22,
            "cache_creation_input_tokens": 0,
            "cache_read_input_tokens": 0,
        },
    }
    counted = http.post(
        "/v1/messages/count_tokens",
        json={"model": "fake", "system": "Be brief.", "messages": [{"role": "user", "content": "hi"}]},
    )
    assert counted.json() == {"input_tokens": prompt}


def test_stop_sequences_and_max_tokens(http: TestClient) -> None:
    body = _message(http, stop_sequences=["zzz", "world", "Good"]).json()
    assert body["content"] == [{"type": "text", "text": "Hello, "}]
    assert (body["stop_reason"], body["stop_sequence"]) == ("stop_sequence", "world")
    body = _message(http, max_tokens=5).json()
    assert (body["content"][0]["text"], body["stop_reason"], body["usage"]["output_tokens"]) == (
        "Hello",
        "max_tokens",
        5,
    )


def test_stream_events_in_order(http: TestClient) -> None:
    events = _events(_message(http, stream=True, stop_sequences=["!"]))
    names = [name for name, _ in events]
    assert names[:3] == ["message_start", "content_block_start", "ping"]
    assert names[-4:] == ["content_block_delta", "content_block_stop", "message_delta", "message_stop"]
    assert set(names[3:-3]) == {"content_block_delta"}
    start = events[0][1]["message"]
    assert start["content"] == [] and start["stop_reason"] is None and start["usage"]["output_tokens"] == 0
    text = "".join(data["delta"]["text"] for name, data in events if name == "content_block_delta")
    assert text == "Hello, world"
    delta = events[-2][1]
    assert delta["delta"] == {"stop_reason": "stop_sequence", "stop_sequence": "!"}
    assert delta["usage"]["output_tokens"] == len("Hello, world!")


def test_a_tool_call_becomes_a_tool_use_block_streamed_or_not(http: TestClient, engine: ScriptedEngine) -> None:
    engine.script = CALL
    body = _message(http, tools=TOOLS).json()
    [block] = body["content"]
    assert block["type"] == "tool_use" and block["id"].startswith("toolu_")
    assert (block["name"], block["input"], body["stop_reason"]) == ("get_weather", {"city": "Paris"}, "tool_use")
    events = _events(_message(http, tools=TOOLS, stream=True))
    assert [name for name, _ in events] == [
        "message_start",
        "content_block_start",
        "ping",
        "content_block_delta",
        "content_block_stop",
        "message_delta",
        "message_stop",
    ]
    assert events[1][1]["content_block"] == {
        "type": "tool_use",
        "id": events[1][1]["content_block"]["id"],
        "name": "get_weather",
        "input": {},
    }
    assert json.loads(events[3][1]["delta"]["partial_json"]) == {"city": "Paris"}
    assert events[-2][1]["delta"]["stop_reason"] == "tool_use"
    # The result goes back as a tool_result block, and the model answers in text.
    engine.script = "It is sunny."
    follow = _message(
        http,
        tools=TOOLS,
        messages=[
            {"role": "user", "content": "Weather in Paris?"},
            {"role": "assistant", "content": [block]},
            {"role": "user", "content": [{"type": "tool_result", "tool_use_id": block["id"], "content": "sunny"}]},
        ],
    ).json()
    assert follow["content"] == [{"type": "text", "text": "It is sunny."}] and follow["stop_reason"] == "end_turn"


HI = [{"role": "user", "content": "hi"}]
IMAGE = [{"role": "user", "content": [{"type": "image", "source": {}}]}]
PNG = {"type": "base64", "media_type": "image/png", "data": "iVBORw0KGgo="}
BROKEN_PNG = [{"role": "user", "content": [{"type": "image", "source": PNG}]}]
SYSTEM_ROLE = [{"role": "system", "content": "x"}]  # Anthropic has no system role in messages


@pytest.mark.parametrize(
    ("body", "status", "type_", "says"),
    [
        ({"model": "fake", "messages": HI}, 400, "invalid_request_error", "max_tokens"),
        ({"model": "nope", "max_tokens": 4, "messages": HI}, 404, "not_found_error", "nope"),
        ({"model": "fake", "max_tokens": 4, "messages": IMAGE}, 400, "invalid_request_error", "image source must be"),
        ({"model": "fake", "max_tokens": 4, "messages": BROKEN_PNG}, 400, "invalid_request_error", "could not be read"),
        (
            {"model": "fake", "max_tokens": 4, "messages": SYSTEM_ROLE},
            400,
            "invalid_request_error",
            "role",
        ),
        ({"model": "fake", "max_tokens": 9000, "messages": HI}, 400, "invalid_request_error", "context length"),
    ],
)
def test_errors_are_anthropic_shaped(http: TestClient, body: dict, status: int, type_: str, says: str) -> None:
    for stream in (False, True):  # refused before a stream starts: a plain status
        response = http.post("/v1/messages", json={**body, "stream": stream})
        assert response.status_code == status, response.text
        error = response.json()
        assert error["type"] == "error" and set(error["error"]) == {"type", "message"}
        assert error["error"]["type"] == type_ and says in error["error"]["message"]


def test_malformed_json_and_count_tokens_errors_are_anthropic_shaped(http: TestClient) -> None:
    response = http.post("/v1/messages", content=b"{not json", headers={"content-type": "application/json"})
    assert response.status_code == 400 and response.json()["error"]["type"] == "invalid_request_error"
    response = http.post(
        "/v1/messages/count_tokens", json={"model": "nope", "messages": [{"role": "user", "content": "x"}]}
    )
    assert response.status_code == 404 and response.json()["error"]["type"] == "not_found_error"
    # The rest of the API keeps OpenAI's shape.
    chat = http.post("/v1/chat/completions", json={"model": "nope", "messages": [{"role": "user", "content": "x"}]})
    assert chat.json()["error"]["code"] == "model_not_found"


@pytest.mark.parametrize("method, path", [("TRACE", "/v1/messages/count_tokens"), ("GET", "/v1/messages")])
def test_an_unknown_method_is_refused_in_anthropics_shape(http: TestClient, method: str, path: str) -> None:
    response = http.request(method, path)
    assert response.status_code == 405 and response.headers["allow"] == "POST"
    assert response.json()["type"] == "error" and response.json()["error"]["type"] == "invalid_request_error"
    chat = http.request(method, "/v1/chat/completions")  # elsewhere, OpenAI's shape
    assert chat.status_code == 405 and chat.json()["error"]["code"] == "method_not_allowed"
