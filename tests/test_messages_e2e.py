"""Anthropic's Messages API end to end through nginx, with the official `anthropic` SDK (its key goes as x-api-key):
text streamed and not, count_tokens, a tool_use that Qwen2.5-Coder-0.5B chooses and its answer from the tool_result,
and the proxy's own refusals on these routes in Anthropic's error shape."""

from __future__ import annotations

import anthropic
import httpx
import pytest
from stack_testing import Stack

SMOLLM = "smollm2-135m-instruct"
QWEN = "qwen2.5-coder-0.5b-instruct"
QUESTION = [{"role": "user", "content": "What is the capital of France?"}]
WEATHER = '{"city": "Paris", "temperature_c": 21, "sky": "sunny"}'
GREEDY = {"extra_body": {"temperature": 0}}  # anthropic 2.x names no temperature argument; the API takes it
WEATHER_TOOL = {
    "name": "get_weather",
    "description": "Current weather in a city",
    "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
}


def _claude(stack: Stack, api_key: str | None = None) -> anthropic.Anthropic:
    return anthropic.Anthropic(
        base_url=stack.base_url,
        api_key=api_key or stack.api_key,
        max_retries=0,
        http_client=anthropic.DefaultHttpxClient(verify=stack.ssl_context(), timeout=120),
    )


def _anthropic_error(response: httpx.Response, status: int, type_: str) -> str:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/json")
    body = response.json()
    assert body["type"] == "error" and set(body["error"]) == {"type", "message"} and body["error"]["type"] == type_
    return body["error"]["message"]


def test_text_streamed_and_not_and_count_tokens_through_the_proxy(stack: Stack) -> None:
    claude = _claude(stack)
    message = claude.messages.create(model=SMOLLM, max_tokens=48, messages=QUESTION, **GREEDY)
    assert message.id.startswith("msg_") and message.stop_reason == "end_turn"
    assert "Paris" in message.content[0].text
    with claude.messages.stream(model=SMOLLM, max_tokens=48, messages=QUESTION, **GREEDY) as stream:
        streamed = "".join(stream.text_stream)
        final = stream.get_final_message()
    assert streamed == message.content[0].text == final.content[0].text
    counted = claude.messages.count_tokens(model=SMOLLM, messages=QUESTION).input_tokens
    assert counted == message.usage.input_tokens + (message.usage.cache_read_input_tokens or 0)


def test_a_tool_use_qwen_chooses_and_its_answer_from_the_tool_result(stack: Stack) -> None:
    claude = _claude(stack)
    ask = [{"role": "user", "content": "What is the weather like in Paris today?"}]
    settings = {"model": QWEN, "max_tokens": 128, "tools": [WEATHER_TOOL], **GREEDY}
    with claude.messages.stream(messages=ask, **settings) as stream:
        called = stream.get_final_message()
    assert called.stop_reason == "tool_use", called.content
    [call] = [block for block in called.content if block.type == "tool_use"]
    assert call.name == "get_weather" and "paris" in str(call.input).lower()
    history = [
        *ask,
        {"role": "assistant", "content": [block.model_dump(exclude_none=True) for block in called.content]},
        {
            "role": "user",
            "content": [
                {"type": "tool_result", "tool_use_id": call.id, "content": WEATHER},
                {"type": "text", "text": "Thanks. Now tell me the weather in a sentence."},
            ],
        },
    ]
    answer = claude.messages.create(messages=history, **settings)
    assert answer.stop_reason == "end_turn" and answer.content[0].type == "text"
    # Measured, greedy: "The weather in Paris today is sunny with a temperature of 21 degrees Celsius."
    text = answer.content[0].text
    assert "sunny" in text.lower() and not text.lstrip().startswith("{"), text


def test_keys_as_x_api_key_or_bearer_and_anthropic_shaped_refusals(stack: Stack) -> None:
    with pytest.raises(anthropic.AuthenticationError) as refused:
        _claude(stack, api_key="sk-nope").messages.create(model=SMOLLM, max_tokens=4, messages=QUESTION)
    assert refused.value.body["error"]["type"] == "authentication_error"  # type: ignore[index]
    with pytest.raises(anthropic.NotFoundError):
        _claude(stack).messages.create(model="nope", max_tokens=4, messages=QUESTION)
    body = {"model": SMOLLM, "messages": QUESTION}
    headers = {"anthropic-version": "2023-06-01"}
    with stack.http() as http:
        assert "x-api-key" in _anthropic_error(
            http.post("/v1/messages", json=body, headers=headers), 401, "authentication_error"
        )
        bearer = {**headers, "Authorization": f"Bearer {stack.api_key}"}
        counted = http.post("/v1/messages/count_tokens", json=body, headers=bearer)
        assert counted.status_code == 200 and counted.json()["input_tokens"] > 0
        wrong = http.post("/v1/messages/count_tokens", json=body, headers={"x-api-key": stack.api_key.swapcase()})
        _anthropic_error(wrong, 401, "authentication_error")
        query = http.post("/v1/messages?api_key=x", json=body, headers={"x-api-key": stack.api_key})
        _anthropic_error(query, 400, "invalid_request_error")
        # A method nginx refuses itself (TRACE) is Anthropic's 405 here, with the route's Allow.
        traced = http.request("TRACE", "/v1/messages/count_tokens", headers={"x-api-key": stack.api_key})
        _anthropic_error(traced, 405, "invalid_request_error")
        assert "POST" in traced.headers["allow"]
        assert http.request("TRACE", "/v1/models").json()["error"]["code"] == "method_not_allowed"
        # x-api-key opens the OpenAI routes too, whose refusals keep OpenAI's shape.
        assert http.get("/v1/models", headers={"x-api-key": stack.api_key}).status_code == 200
        assert http.get("/v1/models").json()["error"]["code"] == "invalid_api_key"
        assert http.get("/v1/models?key=x").json()["error"]["code"] == "api_key_in_query"


def test_an_oversized_message_is_an_anthropic_413(stack: Stack) -> None:
    # /v1/messages takes images, so its limit is PROXY_MAX_IMAGE_BODY (32m), not PROXY_MAX_BODY (8m): go past that one.
    body = b'{"model": "x", "max_tokens": 1, "messages": [{"role": "user", "content": "' + b"a" * (33 << 20) + b'"}]}'
    with stack.http() as http:  # HTTP/1.1: over HTTP/2 an early 413 can surface as a client read timeout
        response = http.post(
            "/v1/messages", content=body, headers={"x-api-key": stack.api_key, "Content-Type": "application/json"}
        )
    assert "32m" in _anthropic_error(response, 413, "request_too_large")
