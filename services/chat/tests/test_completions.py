"""/v1/completions on the real SmolLM2 model: raw prompts, no template."""

from __future__ import annotations

import openai

MODEL_ID = "smollm2-135m-instruct"
PROMPT = "The three primary colours are"


def test_completion_matches_plain_engine(client: openai.OpenAI, plain) -> None:
    expected = plain.greedy(PROMPT, max_tokens=24)
    response = client.completions.create(model=MODEL_ID, prompt=PROMPT, temperature=0, max_tokens=24)
    eos = expected[-1] in set(plain.tokenizer.eos_token_ids)
    assert response.choices[0].text == plain.decode(expected[:-1] if eos else expected)
    assert response.object == "text_completion" and response.id.startswith("cmpl-")
    assert response.usage.prompt_tokens == len(plain.encode(PROMPT))
    assert response.usage.completion_tokens == len(expected)


def test_prompt_array_gives_one_choice_per_prompt(client: openai.OpenAI) -> None:
    prompts = [PROMPT, "Once upon a time"]
    response = client.completions.create(model=MODEL_ID, prompt=prompts, temperature=0, max_tokens=8)
    assert [c.index for c in response.choices] == [0, 1]
    singles = [client.completions.create(model=MODEL_ID, prompt=p, temperature=0, max_tokens=8) for p in prompts]
    assert [c.text for c in response.choices] == [s.choices[0].text for s in singles]
    assert response.usage.prompt_tokens == sum(s.usage.prompt_tokens for s in singles)
    assert response.usage.completion_tokens == sum(s.usage.completion_tokens for s in singles)


def test_streaming_completion_equals_non_streaming(client: openai.OpenAI) -> None:
    prompts = [PROMPT, "Once upon a time"]
    kwargs = dict(model=MODEL_ID, prompt=prompts, temperature=0, max_tokens=12)
    full = client.completions.create(**kwargs)
    chunks = list(client.completions.create(stream=True, stream_options={"include_usage": True}, **kwargs))
    assert len({c.id for c in chunks}) == 1
    for index in (0, 1):
        text = "".join(ch.text for c in chunks for ch in c.choices if ch.index == index)
        assert text == full.choices[index].text
        finishes = [ch.finish_reason for c in chunks for ch in c.choices if ch.index == index and ch.finish_reason]
        assert finishes == [full.choices[index].finish_reason]
    assert chunks[-1].choices == [] and chunks[-1].usage == full.usage


def test_completion_stop_and_length(client: openai.OpenAI) -> None:
    full = client.completions.create(model=MODEL_ID, prompt=PROMPT, temperature=0, max_tokens=16).choices[0].text
    word = full.split()[1]
    cut = client.completions.create(model=MODEL_ID, prompt=PROMPT, temperature=0, max_tokens=16, stop=word)
    assert cut.choices[0].text == full[: full.index(word)]
    assert cut.choices[0].finish_reason == "stop"
    short = client.completions.create(model=MODEL_ID, prompt=PROMPT, temperature=0, max_tokens=2)
    assert short.choices[0].finish_reason == "length" and short.usage.completion_tokens == 2
