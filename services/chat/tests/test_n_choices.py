"""n > 1 on the real SmolLM2 model through the OpenAI SDK: indexes, usage, streams tagged by index, seeds."""

from __future__ import annotations

import httpx
import openai
import pytest
from chat_testing import ChatServer

MODEL_ID = "smollm2-135m-instruct"
MESSAGES = [{"role": "user", "content": "Invent a name for a cat."}]
SAMPLED = dict(model=MODEL_ID, messages=MESSAGES, temperature=1.0, max_tokens=12, seed=42)


@pytest.fixture(scope="module")
def client(smollm_path):
    """Choice i of n is compared with a lone request seeded seed + i: n rows and one row take the same kernels only
    in batch-invariant mode, on every CPU (test_seeded_reproducibility.py)."""
    server = ChatServer(smollm_path, CHAT_MAX_CONCURRENCY="4", CHAT_BATCH_INVARIANT="true").start()
    yield server.client()
    server.stop()


def test_n_choices_each_reproducible_with_a_seed(client: openai.OpenAI, rows_invariant) -> None:
    if not rows_invariant:
        pytest.skip("this CPU's several-row kernels give a row other logits in other company: no mode is exact here")
    response = client.chat.completions.create(n=3, **SAMPLED)
    assert [c.index for c in response.choices] == [0, 1, 2]
    texts = [c.message.content for c in response.choices]
    assert len(set(texts)) > 1, "choices sample with different seeds"
    again = client.chat.completions.create(n=3, **SAMPLED)
    assert [c.message.content for c in again.choices] == texts
    # Choice i samples with seed + i: the same as a single request with that seed.
    single = client.chat.completions.create(n=1, **{**SAMPLED, "seed": 43})
    assert single.choices[0].message.content == texts[1]
    singles = [client.chat.completions.create(**{**SAMPLED, "seed": 42 + i}) for i in range(3)]
    assert response.usage.prompt_tokens == singles[0].usage.prompt_tokens
    assert response.usage.completion_tokens == sum(s.usage.completion_tokens for s in singles)
    assert response.usage.total_tokens == response.usage.prompt_tokens + response.usage.completion_tokens


def test_streamed_choices_are_tagged_by_index(client: openai.OpenAI) -> None:
    full = client.chat.completions.create(n=3, **SAMPLED)
    chunks = list(client.chat.completions.create(n=3, stream=True, stream_options={"include_usage": True}, **SAMPLED))
    for i in range(3):
        mine = [c.choices[0] for c in chunks if c.choices and c.choices[0].index == i]
        assert mine[0].delta.role == "assistant"
        assert "".join(ch.delta.content or "" for ch in mine) == full.choices[i].message.content
        assert [ch.finish_reason for ch in mine if ch.finish_reason] == [full.choices[i].finish_reason]
    assert chunks[-1].choices == [] and chunks[-1].usage == full.usage


def test_n_with_structured_output_and_logprobs(client: openai.OpenAI) -> None:
    response = client.chat.completions.create(
        n=2, logprobs=True, top_logprobs=1, extra_body={"guided_regex": "[A-Z][a-z]{2,8}"}, **SAMPLED
    )
    for choice in response.choices:
        assert "".join(e.token for e in choice.logprobs.content) == choice.message.content
        assert choice.message.content[0].isupper()


def test_completions_n_with_several_prompts(client: openai.OpenAI, rows_invariant) -> None:
    if not rows_invariant:
        pytest.skip("this CPU's several-row kernels give a row other logits in other company: no mode is exact here")
    prompts = ["A cat is", "A dog is"]
    kwargs = dict(model=MODEL_ID, prompt=prompts, temperature=1.0, max_tokens=6, seed=5, n=2)
    response = client.completions.create(**kwargs)
    assert [c.index for c in response.choices] == [0, 1, 2, 3]
    # Index = prompt * n + choice, and choice j of each prompt samples with seed + j.
    for p, prompt in enumerate(prompts):
        for j in range(2):
            single = client.completions.create(model=MODEL_ID, prompt=prompt, temperature=1.0, max_tokens=6, seed=5 + j)
            assert response.choices[p * 2 + j].text == single.choices[0].text
    streamed = list(client.completions.create(stream=True, **kwargs))
    for i in range(4):
        assert "".join(ch.text for c in streamed for ch in c.choices if ch.index == i) == response.choices[i].text


def test_n_above_the_cap_is_400(chat_server) -> None:
    body = {"model": MODEL_ID, "messages": MESSAGES, "n": 9}
    response = httpx.post(chat_server.base_url + "/v1/chat/completions", json=body, timeout=30)
    assert response.status_code == 400 and response.json()["error"]["param"] == "n"
