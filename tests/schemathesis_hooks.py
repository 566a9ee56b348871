"""Schemathesis hooks for ortserve (loaded with SCHEMATHESIS_HOOKS=schemathesis_hooks, tests/ on PYTHONPATH).

- `openai_error_shape`: every 4xx and 5xx is OpenAI's JSON error (Anthropic's on /v1/messages), and no error body
  shows a stack trace or a path.
- Generation cost is bounded: a valid request may generate at most a few tokens and choices, so that the fuzzer
  spends its time on inputs, not on decoding. Invalid values (negative, zero, not an integer) are left as they are,
  so the negative cases still reach the server.
"""

from __future__ import annotations

from typing import Any

import schemathesis

MAX_FUZZ_TOKENS = 4
MAX_FUZZ_CHOICES = 2
MAX_FUZZ_PROMPTS = 4
ERROR_KEYS = {"message", "type", "param", "code"}
# What a leaked traceback or internal detail looks like in a body.
LEAK_MARKERS = ("Traceback (most recent call last)", 'File "/', "site-packages", "/work/", "/root/", "<html")


def _bounded(value: Any, limit: int) -> Any:
    if isinstance(value, int) and not isinstance(value, bool) and value > limit:
        return limit
    return value


@schemathesis.hook
def before_call(context: schemathesis.HookContext, case: schemathesis.Case, kwargs: dict[str, Any]) -> None:
    body = case.body
    if not isinstance(body, dict):
        return
    path = case.operation.path
    if path in ("/v1/chat/completions", "/v1/completions"):
        for key in ("max_tokens", "max_completion_tokens"):
            body[key] = _bounded(body.get(key, MAX_FUZZ_TOKENS), MAX_FUZZ_TOKENS)
        body["n"] = _bounded(body.get("n", 1), MAX_FUZZ_CHOICES)
        if isinstance(body.get("prompt"), list):
            body["prompt"] = body["prompt"][:MAX_FUZZ_PROMPTS] or body["prompt"]
    elif path == "/v1/responses":
        body["max_output_tokens"] = _bounded(body.get("max_output_tokens", MAX_FUZZ_TOKENS), MAX_FUZZ_TOKENS)
    elif path == "/v1/messages":
        body["max_tokens"] = _bounded(body.get("max_tokens", MAX_FUZZ_TOKENS), MAX_FUZZ_TOKENS)


def _anthropic_error_shape(status: int, body: Any, text: str) -> None:
    error = body.get("error") if isinstance(body, dict) else None
    if not isinstance(error, dict) or body.get("type") != "error" or set(error) != {"type", "message"}:
        raise AssertionError(f"{status} not in Anthropic's error shape: {text[:300]}")
    if not isinstance(error["message"], str) or not error["message"] or not isinstance(error["type"], str):
        raise AssertionError(f"{status} error without a message or type: {text[:300]}")


@schemathesis.check
def openai_error_shape(
    ctx: schemathesis.CheckContext, response: schemathesis.Response, case: schemathesis.Case
) -> None:
    text = response.text or ""
    for marker in LEAK_MARKERS:
        if marker in text:
            raise AssertionError(f"the body shows internal detail ({marker!r}): {text[:300]}")
    if response.status_code < 400 or case.method.upper() == "HEAD":  # a HEAD answer has no body to check
        return None
    content_type = response.headers.get("content-type", [""])[0]
    if not content_type.startswith("application/json"):
        raise AssertionError(f"{response.status_code} with content type {content_type!r}, not JSON: {text[:200]}")
    body = response.json()
    if case.operation.path.startswith("/v1/messages"):
        return _anthropic_error_shape(response.status_code, body, text)
    error = body.get("error") if isinstance(body, dict) else None
    if not isinstance(error, dict) or set(error) != ERROR_KEYS or set(body) != {"error"}:
        raise AssertionError(f"{response.status_code} not in OpenAI's error shape: {text[:300]}")
    if not isinstance(error["message"], str) or not error["message"] or not isinstance(error["type"], str):
        raise AssertionError(f"{response.status_code} error without a message or type: {text[:300]}")
    return None
