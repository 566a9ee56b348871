"""top_k, min_p and repetition_penalty (extensions other servers' users expect) on the real model, and the samplers
this server does not implement refused by name."""

from __future__ import annotations

from collections import Counter

import httpx
import pytest
from chat_testing import MODEL_ID

MESSAGES = [{"role": "user", "content": "Write a short poem about the sea."}]


def _chat(client, **extra) -> str:
    reply = client.chat.completions.create(model=MODEL_ID, messages=MESSAGES, max_tokens=40, extra_body=extra or None)
    return reply.choices[0].message.content


def test_top_k_one_is_greedy_whatever_the_temperature(client) -> None:
    greedy = _chat(client, temperature=0)
    assert _chat(client, temperature=1.5, top_k=1, seed=1) == greedy
    assert _chat(client, temperature=1.5, top_k=1, seed=2) == greedy


def test_min_p_one_keeps_only_the_most_likely_token(client) -> None:
    assert _chat(client, temperature=1.5, min_p=1.0, seed=3) == _chat(client, temperature=0)


def test_repetition_penalty_breaks_a_repetition(client) -> None:
    prompt = "cat cat cat cat cat cat cat cat"

    def complete(**extra) -> str:
        reply = client.completions.create(
            model=MODEL_ID, prompt=prompt, max_tokens=12, temperature=0, extra_body=extra or None
        )
        return reply.choices[0].text

    def most_repeated(text: str) -> int:
        return max(Counter(text.split()).values(), default=0)

    # Greedy, this model answers with the same few pieces again and again; penalised, it repeats itself less.
    plain, penalised = complete(), complete(repetition_penalty=1.5)
    assert most_repeated(plain) > most_repeated(penalised), (plain, penalised)


@pytest.mark.parametrize(
    ("field", "value", "code"),
    [
        ("min_p", 2, "invalid_value"),
        ("top_k", -2, "invalid_value"),
        ("repetition_penalty", 0, "invalid_value"),
        ("typical_p", 0.9, "unsupported_parameter"),
        ("mirostat", 2, "unsupported_parameter"),
    ],
)
def test_sampler_values_out_of_range_or_unknown_are_refused_by_name(chat_server, field, value, code) -> None:
    for path, body in (
        ("/v1/chat/completions", {"model": MODEL_ID, "messages": MESSAGES}),
        ("/v1/completions", {"model": MODEL_ID, "prompt": "Hi"}),
    ):
        response = httpx.post(chat_server.base_url + path, json={**body, field: value, "max_tokens": 2}, timeout=60)
        assert response.status_code == 400, response.text
        error = response.json()["error"]
        assert error["param"] == field and error["code"] == code, error
