"""Every refusal is OpenAI-shaped JSON with the right status, param and code."""

from __future__ import annotations

import httpx
import openai
import pytest

MODEL_ID = "smollm2-135m-instruct"
MSGS = [{"role": "user", "content": "hi"}]


def _post(server, path: str, body) -> httpx.Response:
    if isinstance(body, (bytes, str)):
        return httpx.post(
            server.base_url + path, content=body, headers={"content-type": "application/json"}, timeout=60
        )
    return httpx.post(server.base_url + path, json=body, timeout=60)


def _assert_error(response: httpx.Response, status: int, param: str | None, code: str | None = None) -> dict:
    assert response.status_code == status, response.text
    error = response.json()["error"]
    assert set(error) == {"message", "type", "param", "code"}
    assert error["message"]
    assert error["param"] == param
    if code is not None:
        assert error["code"] == code
    return error


@pytest.mark.parametrize(
    ("field", "value", "param"),
    [
        ("temperature", 2.5, "temperature"),
        ("temperature", -0.1, "temperature"),
        ("top_p", 1.5, "top_p"),
        ("max_tokens", 0, "max_tokens"),
        ("max_completion_tokens", -3, "max_completion_tokens"),
        ("frequency_penalty", 2.1, "frequency_penalty"),
        ("presence_penalty", -2.5, "presence_penalty"),
        ("n", 0, "n"),
        ("stop", ["a", "b", "c", "d", "e"], "stop"),
        ("stop", "", "stop"),
        ("temperature", "hot", "temperature"),
        ("messages", [], "messages"),
        ("messages", [{"role": "wizard", "content": "x"}], "messages[0].role"),
        ("stream_options", {"include_usage": "maybe"}, "stream_options.include_usage"),
    ],
)
def test_out_of_range_is_400_naming_the_param(chat_server, field: str, value, param: str) -> None:
    body = {"model": MODEL_ID, "messages": MSGS, field: value}
    error = _assert_error(_post(chat_server, "/v1/chat/completions", body), 400, param)
    assert error["type"] == "invalid_request_error"


@pytest.mark.parametrize(
    ("part", "words"),
    [
        ({"type": "input_image", "image_url": "data:image/png;base64,AAAA"}, "does not accept images"),
        ({"type": "input_audio", "input_audio": {"data": "AAAA", "format": "wav"}}, "does not accept audio"),
        ({"type": "file", "file": {"file_id": "file-1"}}, "does not accept files"),
        ({"type": "hologram"}, "unknown content part type 'hologram'"),
    ],
)
def test_a_part_we_cannot_read_is_refused_in_words(chat_server, part: dict, words: str) -> None:
    content = [{"type": "text", "text": "What is in this?"}, part]
    body = {"model": MODEL_ID, "messages": [{"role": "user", "content": content}]}
    error = _assert_error(_post(chat_server, "/v1/chat/completions", body), 400, "messages[0].content[1]")
    assert words in error["message"] and "valid string" not in error["message"], error


@pytest.mark.parametrize(
    ("body", "param", "code"),
    [
        ({"model": MODEL_ID}, "messages", "missing_required_parameter"),
        ({"messages": MSGS}, "model", "missing_required_parameter"),
        ({"model": MODEL_ID, "messages": MSGS, "logit_bias": {"x": 5}}, "logit_bias", None),
        ({"model": MODEL_ID, "messages": MSGS, "logit_bias": {"999999": 5}}, "logit_bias", None),
        ({"model": MODEL_ID, "messages": MSGS, "logit_bias": {"5": 101}}, "logit_bias", None),
        ({"model": MODEL_ID, "messages": [{"role": "user", "content": None}]}, "messages[0].content", None),
    ],
)
def test_missing_and_unsupported_fields(chat_server, body, param, code) -> None:
    _assert_error(_post(chat_server, "/v1/chat/completions", body), 400, param, code)


def test_unknown_model_is_404(client: openai.OpenAI, chat_server) -> None:
    with pytest.raises(openai.NotFoundError) as info:
        client.chat.completions.create(model="gpt-9", messages=MSGS)
    assert info.value.code == "model_not_found" and info.value.param == "model"
    _assert_error(
        _post(chat_server, "/v1/completions", {"model": "nope", "prompt": "x"}), 404, "model", "model_not_found"
    )
    _assert_error(httpx.get(chat_server.base_url + "/v1/models/nope"), 404, "model", "model_not_found")


def test_context_overflow_is_400(client: openai.OpenAI, chat_server) -> None:
    with pytest.raises(openai.BadRequestError) as info:
        client.chat.completions.create(model=MODEL_ID, messages=MSGS, max_tokens=9000)
    assert info.value.code == "context_length_exceeded" and info.value.param == "messages"
    long_prompt = "word " * 9000
    body = {"model": MODEL_ID, "prompt": long_prompt}
    _assert_error(_post(chat_server, "/v1/completions", body), 400, "prompt", "context_length_exceeded")


def test_completions_refusals(chat_server) -> None:
    _assert_error(_post(chat_server, "/v1/completions", {"model": MODEL_ID, "prompt": ""}), 400, "prompt")
    _assert_error(_post(chat_server, "/v1/completions", {"model": MODEL_ID, "prompt": ["a", ""]}), 400, "prompt[1]")
    _assert_error(_post(chat_server, "/v1/completions", {"model": MODEL_ID, "prompt": []}), 400, "prompt")
    _assert_error(_post(chat_server, "/v1/completions", {"model": MODEL_ID, "prompt": "a", "echo": True}), 400, "echo")


def test_malformed_json_and_unknown_routes(chat_server) -> None:
    _assert_error(
        _post(chat_server, "/v1/chat/completions", b'{"model": "x", "messages": ['), 400, None, "invalid_json"
    )
    _assert_error(_post(chat_server, "/v1/chat/completions", b""), 400, None)
    _assert_error(httpx.get(chat_server.base_url + "/v1/nothing"), 404, None, "not_found")
    _assert_error(httpx.get(chat_server.base_url + "/v1/chat/completions"), 405, None, "method_not_allowed")


def test_every_response_has_a_request_id(chat_server) -> None:
    response = httpx.get(chat_server.base_url + "/health", headers={"X-Request-ID": "abc123"})
    assert response.headers["x-request-id"] == "abc123"
    assert httpx.get(chat_server.base_url + "/v1/models").headers["x-request-id"]
