"""Per-key limits end to end through nginx on the real SmolLM2 stack, with the OpenAI SDK: the rate-limit headers on
every answer, RateLimitError for requests per minute (counted once across chat and embeddings), in flight and the
daily budget (a stream stops with an error event), PermissionDeniedError for a model outside the allow-list, the
priority nginx hands the services, and the counter store stopped (fail open, the default)."""

from __future__ import annotations

import json
import time

import httpx
import openai
import pytest
from ortserve_testing.metrics import sample
from ortserve_testing.waiting import wait_until
from stack_testing import Stack

CHAT_MODEL = "smollm2-135m-instruct"
EMBED_MODEL = "all-minilm-l6-v2"
MESSAGES = [{"role": "user", "content": "Say hi."}]


def _admin(stack: Stack, method: str, path: str, body: dict | None = None) -> dict:
    with stack.http() as http:
        response = http.request(method, path, json=body, headers={"Authorization": f"Bearer {stack.admin_key}"})
    assert response.status_code < 300, response.text
    return response.json()


def _limited_key(stack: Stack, name: str, **limits: object) -> dict:
    return _admin(stack, "POST", "/admin/keys", {"name": name, "limits": limits})


def _usage(stack: Stack, key_id: str) -> dict:
    return _admin(stack, "GET", f"/admin/keys/{key_id}/usage")


def _fresh_minute(stack: Stack, key_id: str) -> None:
    """Start a per-minute test early in a clock minute, so that its window cannot roll over half-way."""
    left = _usage(stack, key_id)["minute"]["resets_in_s"]
    if left < 20:
        time.sleep(left + 0.5)


def test_requests_per_minute_counts_every_service_once_with_openai_headers(stack: Stack) -> None:
    key = _limited_key(stack, "rpm", requests_per_minute=2, tokens_per_minute=100000)
    client = stack.openai(key["key"])
    _fresh_minute(stack, key["id"])
    chat = client.chat.completions.with_raw_response.create(model=CHAT_MODEL, messages=MESSAGES, max_tokens=2)
    assert chat.headers["x-ratelimit-limit-requests"] == "2"
    assert chat.headers["x-ratelimit-remaining-requests"] == "1"
    assert chat.headers["x-ratelimit-reset-requests"].endswith("s")
    assert chat.headers["x-ratelimit-limit-tokens"] == "100000"
    assert int(chat.headers["x-ratelimit-remaining-tokens"]) <= 100000
    embedded = client.embeddings.with_raw_response.create(model=EMBED_MODEL, input="one")
    assert embedded.headers["x-ratelimit-remaining-requests"] == "0"  # the same count, in another service
    with pytest.raises(openai.RateLimitError) as refused:
        client.chat.completions.create(model=CHAT_MODEL, messages=MESSAGES, max_tokens=2)
    error = refused.value
    assert error.type == "requests" and error.code == "rate_limit_exceeded"
    assert 1 <= int(error.response.headers["retry-after"]) <= 60
    assert error.response.headers["x-ratelimit-remaining-requests"] == "0"
    usage = _usage(stack, key["id"])
    assert usage["minute"]["requests"] == 2 and usage["refusals"] == {"requests": 1}
    assert usage["minute"]["tokens"] > 0 and usage["day"]["tokens"] == usage["minute"]["tokens"]
    # The same on chat's /metrics, by key id (the secret appears nowhere).
    metrics = httpx.get(stack.chat_url + "/metrics").text
    assert sample(metrics, "ortserve_key_refusals_total", key_id=key["id"], reason="requests") == 1
    assert sample(metrics, "ortserve_key_tokens_total", key_id=key["id"], kind="completion") > 0
    assert key["key"] not in metrics


def test_a_model_outside_the_allow_list_is_403_naming_it(stack: Stack) -> None:
    key = _limited_key(stack, "models", models=[CHAT_MODEL])
    client = stack.openai(key["key"])
    reply = client.chat.completions.with_raw_response.create(model=CHAT_MODEL, messages=MESSAGES, max_tokens=2)
    assert reply.status_code == 200 and "x-ratelimit-limit-requests" not in reply.headers  # no per-minute limit
    with pytest.raises(openai.PermissionDeniedError, match=EMBED_MODEL):
        client.embeddings.create(model=EMBED_MODEL, input="one")
    assert _usage(stack, key["id"])["refusals"] == {"model": 1}


def test_the_daily_budget_stops_a_stream_and_then_refuses(stack: Stack) -> None:
    key = _limited_key(stack, "budget", tokens_per_day=100)
    client = stack.openai(key["key"])
    prompt = [{"role": "user", "content": "Count from 1 to 200, one number per line."}]
    received = 0
    with pytest.raises(openai.APIError) as stopped:
        stream = client.chat.completions.create(
            model=CHAT_MODEL, messages=prompt, max_tokens=500, temperature=0, stream=True
        )
        for chunk in stream:
            received += sum(1 for choice in chunk.choices if choice.delta.content)
    assert "daily budget of 100 tokens" in str(stopped.value)
    used = _usage(stack, key["id"])
    # Counted as produced: past the budget by one step at most, and that step's token never sent.
    assert used["day"]["tokens"] == 101 and used["refusals"] == {"quota": 1}
    assert 0 < received <= 100
    with pytest.raises(openai.RateLimitError) as refused:
        client.chat.completions.create(model=CHAT_MODEL, messages=MESSAGES, max_tokens=2)
    assert refused.value.code == "insufficient_quota"


def test_requests_in_flight_are_bounded(stack: Stack) -> None:
    key = _limited_key(stack, "concurrent", max_concurrent_requests=1)
    client = stack.openai(key["key"])
    prompt = [{"role": "user", "content": "Write a long story about a lighthouse."}]
    stream = client.chat.completions.create(model=CHAT_MODEL, messages=prompt, max_tokens=400, stream=True)
    next(iter(stream))  # the stream holds its slot from here to its end
    with pytest.raises(openai.RateLimitError) as refused:
        client.embeddings.create(model=EMBED_MODEL, input="one")
    assert refused.value.code == "rate_limit_exceeded" and refused.value.response.headers["retry-after"] == "1"
    stream.close()
    wait_until(lambda: _usage(stack, key["id"])["in_flight"] == 0, "the closed stream to leave the in-flight set")
    assert client.embeddings.create(model=EMBED_MODEL, input="one").data


def test_the_key_priority_reaches_the_services_and_a_client_cannot_forge_one(stack: Stack) -> None:
    batch = _limited_key(stack, "batch", priority="batch")
    plain = _admin(stack, "POST", "/admin/keys", {"name": "plain"})
    for key, expected in ((batch, "batch"), (plain, "interactive")):
        client = stack.openai(key["key"])
        reply = client.embeddings.with_raw_response.create(
            model=EMBED_MODEL, input="one", extra_headers={"X-Ortserve-Key-Priority": "forged"}
        )
        request_id = reply.headers["x-request-id"]
        lines = wait_until(lambda rid=request_id: _log_lines(stack, "embeddings", rid), "the access line")
        assert lines[-1]["key_priority"] == expected and lines[-1]["api_key_id"] == key["id"]
    # The key id is on the request's server span too (the stack records every span: ORTSERVE_TRACES=1).
    spans = wait_until(lambda: _server_spans(stack, request_id, "ortserve-embeddings"), "the embeddings server span")
    assert spans[0]["attributes"]["ortserve.api_key_id"] == plain["id"]


def test_with_the_store_stopped_limited_keys_are_served_uncounted(stack: Stack) -> None:
    key = _limited_key(stack, "store-down", requests_per_minute=1)
    client = stack.openai(key["key"])
    stack.ctl("stop", "limits-store")
    try:
        for _ in range(3):  # over the limit of 1: the default fails open
            reply = client.embeddings.with_raw_response.create(model=EMBED_MODEL, input="one")
            assert reply.status_code == 200 and "x-ratelimit-limit-requests" not in reply.headers
        with stack.http() as http:
            usage = http.get(f"/admin/keys/{key['id']}/usage", headers={"Authorization": f"Bearer {stack.admin_key}"})
        assert usage.status_code == 503 and usage.json()["error"]["code"] == "limits_unavailable"
    finally:
        stack.ctl("start", "limits-store")
    wait_until(lambda: _store_answers(stack, key["id"]), "the limits store to answer again")


def _store_answers(stack: Stack, key_id: str) -> bool:
    with stack.http() as http:
        response = http.get(f"/admin/keys/{key_id}/usage", headers={"Authorization": f"Bearer {stack.admin_key}"})
    return response.status_code == 200


def _server_spans(stack: Stack, trace_id: str, service: str) -> list[dict]:
    return [
        span
        for span in stack.spans(trace_id)
        if span["service"] == service and span["kind"] == "server" and "ortserve.api_key_id" in span["attributes"]
    ]


def _log_lines(stack: Stack, service: str, request_id: str) -> list[dict]:
    path = stack.run_dir / "logs" / f"{service}.log"
    lines = []
    for text in path.read_text(errors="replace").splitlines():
        if request_id in text and text.startswith("{"):
            line = json.loads(text)
            if line.get("request_id") == request_id and "status" in line:
                lines.append(line)
    return lines
