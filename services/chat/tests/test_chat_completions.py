"""/v1/chat/completions on the real SmolLM2 model, through the OpenAI SDK over HTTP."""

from __future__ import annotations

import openai
import pytest
from tokenizers import Tokenizer

MODEL_ID = "smollm2-135m-instruct"
FRANCE = [{"role": "user", "content": "What is the capital of France?"}]


def test_answers_the_capital_of_france(client: openai.OpenAI) -> None:
    response = client.chat.completions.create(model=MODEL_ID, messages=FRANCE, temperature=0, max_tokens=32)
    assert "Paris" in response.choices[0].message.content
    assert response.id.startswith("chatcmpl-")
    assert response.object == "chat.completion"
    assert response.model == MODEL_ID
    assert response.choices[0].finish_reason == "stop"
    assert response.choices[0].message.role == "assistant"


def test_greedy_matches_plain_engine_token_for_token(client: openai.OpenAI, plain) -> None:
    messages = [
        {"role": "system", "content": "You are a concise assistant."},
        {"role": "user", "content": "Name three colours of the rainbow and say why the sky is blue."},
    ]
    expected = plain.greedy(plain.chat_prompt(messages), max_tokens=80)
    response = client.chat.completions.create(model=MODEL_ID, messages=messages, temperature=0, max_tokens=80)
    eos = expected[-1] in set(plain.tokenizer.eos_token_ids)
    expected_text = plain.decode(expected[:-1] if eos else expected)
    assert response.choices[0].message.content == expected_text
    assert response.usage.completion_tokens == len(expected)
    assert response.choices[0].finish_reason == ("stop" if eos else "length")


def test_stream_equals_non_stream_and_has_openai_shape(client: openai.OpenAI) -> None:
    kwargs = dict(model=MODEL_ID, messages=FRANCE, temperature=0, max_tokens=40)
    full = client.chat.completions.create(**kwargs)
    chunks = list(client.chat.completions.create(stream=True, stream_options={"include_usage": True}, **kwargs))
    assert chunks[0].choices[0].delta.role == "assistant"
    assert len({c.id for c in chunks}) == 1 and chunks[0].id.startswith("chatcmpl-")
    assert all(c.object == "chat.completion.chunk" for c in chunks)
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == full.choices[0].message.content
    finish = [c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason]
    assert finish == [full.choices[0].finish_reason]
    usage_chunk = chunks[-1]
    assert usage_chunk.choices == [] and usage_chunk.usage == full.usage


def test_stream_without_include_usage_has_no_usage_chunk(client: openai.OpenAI) -> None:
    chunks = list(client.chat.completions.create(model=MODEL_ID, messages=FRANCE, max_tokens=5, stream=True))
    assert all(c.usage is None for c in chunks)
    assert chunks[-1].choices[0].finish_reason in ("stop", "length")


def test_usage_matches_tokenizer_counts(client: openai.OpenAI, plain, smollm_path) -> None:
    messages = [
        {"role": "developer", "content": "Be brief."},
        {"role": "user", "content": [{"type": "text", "text": "Hi"}, {"type": "text", "text": "there"}]},
    ]
    response = client.chat.completions.create(model=MODEL_ID, messages=messages, temperature=0, max_tokens=16)
    # An independent tokenizer (HF tokenizers on the folder's tokenizer.json) counts the templated prompt.
    rendered = plain.chat_prompt([{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi\nthere"}])
    hf = Tokenizer.from_file(str(smollm_path / "tokenizer.json"))
    assert response.usage.prompt_tokens == len(hf.encode(rendered, add_special_tokens=False).ids)
    assert response.usage.total_tokens == response.usage.prompt_tokens + response.usage.completion_tokens


def test_max_tokens_gives_length(client: openai.OpenAI) -> None:
    response = client.chat.completions.create(model=MODEL_ID, messages=FRANCE, temperature=0, max_tokens=3)
    assert response.choices[0].finish_reason == "length"
    assert response.usage.completion_tokens == 3
    response = client.chat.completions.create(model=MODEL_ID, messages=FRANCE, temperature=0, max_completion_tokens=2)
    assert response.usage.completion_tokens == 2


def _split_stop(plain, prompt: str) -> tuple[str, str]:
    """A stop string that spans two tokens of the greedy output, and the text expected before it."""
    ids = plain.greedy(prompt, max_tokens=60)
    pieces = [plain.decode(ids[: i + 1]) for i in range(len(ids))]
    for i in range(3, len(ids) - 1):
        left, right = pieces[i], pieces[i + 1]
        tail, head = left[len(pieces[i - 1]) :], right[len(left) :]
        if len(tail.strip()) >= 2 and len(head.strip()) >= 2:
            stop = tail[-2:] + head[:2]
            idx = right.find(stop)
            if idx == len(left) - 2:  # first occurrence is the one that crosses the boundary
                return stop, right[:idx]
    pytest.fail("no token boundary suitable for a split stop string")


@pytest.mark.parametrize("stream", [False, True])
def test_stop_string_split_across_tokens_never_leaks(client: openai.OpenAI, plain, stream: bool) -> None:
    messages = [{"role": "user", "content": "Write two sentences about the ocean."}]
    stop, expected = _split_stop(plain, plain.chat_prompt(messages))
    kwargs = dict(model=MODEL_ID, messages=messages, temperature=0, max_tokens=60, stop=[stop, "\u2603never"])
    if stream:
        chunks = list(client.chat.completions.create(stream=True, **kwargs))
        text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
        finish = chunks[-1].choices[0].finish_reason
    else:
        response = client.chat.completions.create(**kwargs)
        text, finish = response.choices[0].message.content, response.choices[0].finish_reason
    assert text == expected
    assert stop not in text and not any(text.endswith(stop[:k]) for k in range(1, len(stop)))
    assert finish == "stop"


def test_seed_makes_sampling_reproducible(client: openai.OpenAI) -> None:
    kwargs = dict(model=MODEL_ID, messages=FRANCE, temperature=1.0, top_p=0.9, max_tokens=20, seed=1234)
    first = client.chat.completions.create(**kwargs).choices[0].message.content
    second = client.chat.completions.create(**kwargs).choices[0].message.content
    assert first == second


def test_penalties_change_greedy_output(client: openai.OpenAI) -> None:
    messages = [{"role": "user", "content": "Repeat the word cat ten times."}]
    base = client.chat.completions.create(model=MODEL_ID, messages=messages, temperature=0, max_tokens=30)
    penalised = client.chat.completions.create(
        model=MODEL_ID, messages=messages, temperature=0, max_tokens=30, frequency_penalty=2.0, presence_penalty=2.0
    )
    assert base.choices[0].message.content != penalised.choices[0].message.content
