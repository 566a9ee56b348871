"""Hand-picked bad input through the proxy: each gets a clear OpenAI 4xx, and no service crashes or restarts."""

from __future__ import annotations

import json

import pytest
from reliability_testing import CHAT_MODEL, EMBED_MODEL, assert_openai_error, service_pid
from stack_testing import Stack

MAX_BODY = 8 * 1024 * 1024  # PROXY_MAX_BODY's default, 8m


def chat(**fields: object) -> dict:
    return {"model": CHAT_MODEL, "messages": [{"role": "user", "content": "hi"}], "max_tokens": 2, **fields}


def raw(body: dict) -> bytes:
    return json.dumps(body).encode()


def just_under_the_limit() -> bytes:
    """A chat request whose one string makes the body a few KB under PROXY_MAX_BODY."""
    head, tail = b'{"model": "' + CHAT_MODEL.encode() + b'", "messages": [{"role": "user", "content": "', b'"}]}'
    return head + b"word " * ((MAX_BODY - 4096 - len(head) - len(tail)) // 5) + tail


# (id, path, body bytes, expected status, expected error code or None for any)
CASES = [
    (
        "invalid utf-8",
        "/v1/chat/completions",
        b'{"model": "x", "messages": [{"role": "user", "content": "\xff\xfe"}]}',
        400,
        "invalid_json",
    ),
    (
        "deeply nested json",
        "/v1/chat/completions",
        b'{"model": "x", "messages": ' + b"[" * 100_000 + b"]" * 100_000 + b"}",
        400,
        "invalid_json",
    ),
    ("broken json", "/v1/embeddings", b'{"model": "x", "input": ', 400, "invalid_json"),
    ("a string just under the body limit", "/v1/chat/completions", None, 400, "context_length_exceeded"),
    ("temperature as a string", "/v1/chat/completions", raw(chat(temperature="0.5")), 400, "invalid_type"),
    ("max_tokens as a string", "/v1/chat/completions", raw(chat(max_tokens="5")), 400, "invalid_type"),
    ("stream as a string", "/v1/chat/completions", raw(chat(stream="true")), 400, "invalid_type"),
    (
        "dimensions as a string",
        "/v1/embeddings",
        raw({"model": EMBED_MODEL, "input": "x", "dimensions": "8"}),
        400,
        "invalid_type",
    ),
    (
        "NaN literal",
        "/v1/chat/completions",
        raw(chat()).replace(b'"max_tokens": 2', b'"temperature": NaN'),
        400,
        "invalid_value",
    ),
    (
        "Infinity literal",
        "/v1/chat/completions",
        raw(chat()).replace(b'"max_tokens": 2', b'"top_p": Infinity'),
        400,
        "invalid_value",
    ),
    (
        "-Infinity penalty",
        "/v1/completions",
        b'{"model": "%s", "prompt": "x", "presence_penalty": -Infinity}' % CHAT_MODEL.encode(),
        400,
        "invalid_value",
    ),
    ("NaN seed", "/v1/chat/completions", raw(chat()).replace(b'"max_tokens": 2', b'"seed": NaN'), 400, None),
    ("huge max_tokens", "/v1/chat/completions", raw(chat(max_tokens=10**30)), 400, "context_length_exceeded"),
    ("negative n", "/v1/chat/completions", raw(chat(n=-1)), 400, "invalid_value"),
    ("1000 stop strings", "/v1/chat/completions", raw(chat(stop=[f"s{i}" for i in range(1000)])), 400, "invalid_value"),
    ("empty messages", "/v1/chat/completions", raw({"model": CHAT_MODEL, "messages": []}), 400, "invalid_value"),
    (
        "unknown role",
        "/v1/chat/completions",
        raw({"model": CHAT_MODEL, "messages": [{"role": "wizard", "content": "x"}]}),
        400,
        "invalid_type",
    ),
    (
        "null content",
        "/v1/chat/completions",
        raw({"model": CHAT_MODEL, "messages": [{"role": "user", "content": None}]}),
        400,
        "invalid_value",
    ),
    (
        "a 100k-token prompt",
        "/v1/chat/completions",
        raw(chat(messages=[{"role": "user", "content": "hello " * 100_000}])),
        400,
        "context_length_exceeded",
    ),
    (
        "a 100k-token text prompt",
        "/v1/completions",
        raw({"model": CHAT_MODEL, "prompt": "hello " * 100_000}),
        400,
        "context_length_exceeded",
    ),
    (
        "control characters in the model id",
        "/v1/chat/completions",
        raw(chat(model="smol\x00\x01\x1b[31m\x7f")),
        404,
        "model_not_found",
    ),
    (
        "header injection in the model id",
        "/v1/chat/completions",
        raw(chat(model="x\r\nX-Injected: yes\r\n\r\n")),
        404,
        "model_not_found",
    ),
    (
        "over-long embeddings input",
        "/v1/embeddings",
        raw({"model": EMBED_MODEL, "input": "word " * 40_000}),
        400,
        "context_length_exceeded",
    ),
    (
        "token id outside the vocabulary",
        "/v1/embeddings",
        raw({"model": EMBED_MODEL, "input": [[10**12]]}),
        400,
        "invalid_value",
    ),
    (
        "negative top_n",
        "/v1/rerank",
        raw({"model": EMBED_MODEL, "query": "q", "documents": ["a"], "top_n": -1}),
        400,
        "invalid_value",
    ),
    ("a list where an object belongs", "/v1/chat/completions", b"[1, 2, 3]", 400, "invalid_json"),
]


@pytest.fixture(scope="module")
def pids_before(stack: Stack) -> dict[str, int]:
    return {name: service_pid(stack, name) for name in ("chat", "embeddings", "registry")}


@pytest.mark.parametrize(("path", "body", "status", "code"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_bad_input_gets_a_clear_4xx(
    stack: Stack, pids_before: dict[str, int], path: str, body: bytes | None, status: int, code: str | None
) -> None:
    headers = {"Authorization": f"Bearer {stack.api_key}", "Content-Type": "application/json"}
    with stack.http() as http:
        response = http.post(path, content=body if body is not None else just_under_the_limit(), headers=headers)
    error = assert_openai_error(response, status)
    assert code is None or error["code"] == code, error
    assert "x-injected" not in response.headers
    assert "\r" not in response.headers.get("x-request-id", "")


def test_the_services_kept_serving(stack: Stack, pids_before: dict[str, int]) -> None:
    """After every case above: the same processes (none crashed and was restarted), and real answers."""
    assert {name: service_pid(stack, name) for name in pids_before} == pids_before
    client = stack.openai()
    reply = client.chat.completions.create(
        model=CHAT_MODEL, messages=[{"role": "user", "content": "Say hi."}], max_tokens=4, temperature=0
    )
    assert reply.choices[0].finish_reason in ("stop", "length")
    assert len(client.embeddings.create(model=EMBED_MODEL, input="still here").data[0].embedding) == 384
