"""Unit tests of the sampler: greedy, OpenAI's penalty formula, top_p, seeds."""

from __future__ import annotations

import numpy as np
from chat_service.engine.sampler import TokenSampler
from chat_service.engine.types import SamplingParams


def test_temperature_zero_is_argmax() -> None:
    sampler = TokenSampler(SamplingParams(temperature=0.0), vocab_size=4)
    assert sampler.sample(np.array([0.1, 3.0, 2.9, -1.0], dtype=np.float32)) == 1


def test_penalties_follow_openai_formula() -> None:
    sampler = TokenSampler(SamplingParams(temperature=0.0, frequency_penalty=0.5, presence_penalty=1.0), vocab_size=3)
    logits = np.array([5.0, 4.0, 0.0], dtype=np.float32)
    assert sampler.sample(logits) == 0  # counts are zero: no change
    assert sampler.sample(logits) == 1  # token 0: 5 - 1*0.5 - 1.0 = 3.5 < 4
    np.testing.assert_allclose(sampler.model_logits(logits), [5.0 - 0.5 - 1.0, 4.0 - 0.5 - 1.0, 0.0])


def test_top_p_keeps_only_the_nucleus() -> None:
    logits = np.log(np.array([0.6, 0.3, 0.05, 0.05], dtype=np.float32))
    sampler = TokenSampler(SamplingParams(temperature=1.0, top_p=0.8, seed=0), vocab_size=4)
    draws = {sampler.sample(logits) for _ in range(300)}
    assert draws == {0, 1}


def test_same_seed_same_draws() -> None:
    logits = np.zeros(50, dtype=np.float32)
    a = TokenSampler(SamplingParams(temperature=1.0, seed=7), 50)
    b = TokenSampler(SamplingParams(temperature=1.0, seed=7), 50)
    assert [a.sample(logits) for _ in range(20)] == [b.sample(logits) for _ in range(20)]
    c = TokenSampler(SamplingParams(temperature=1.0, seed=8), 50)
    d = TokenSampler(SamplingParams(temperature=1.0, seed=7), 50)
    assert [c.sample(logits) for _ in range(20)] != [d.sample(logits) for _ in range(20)]


def test_top_k_keeps_the_k_most_likely() -> None:
    logits = np.log(np.array([0.4, 0.3, 0.2, 0.1], dtype=np.float32))
    sampler = TokenSampler(SamplingParams(temperature=1.5, top_k=2, seed=0), vocab_size=4)
    assert {sampler.sample(logits) for _ in range(300)} == {0, 1}
    one = TokenSampler(SamplingParams(temperature=1.5, top_k=1, seed=0), vocab_size=4)
    assert {one.sample(logits) for _ in range(50)} == {0}  # top_k 1 is greedy, whatever the temperature


def test_min_p_drops_tokens_below_a_share_of_the_best() -> None:
    logits = np.log(np.array([0.5, 0.3, 0.15, 0.05], dtype=np.float32))
    sampler = TokenSampler(SamplingParams(temperature=1.0, min_p=0.5, seed=0), vocab_size=4)
    assert {sampler.sample(logits) for _ in range(300)} == {0, 1}  # 0.3 >= 0.5 * 0.5 > 0.15


def test_repetition_penalty_covers_prompt_and_output_tokens() -> None:
    params = SamplingParams(temperature=0.0, repetition_penalty=2.0)
    sampler = TokenSampler(params, vocab_size=4, prompt_ids=[0])
    logits = np.array([3.0, 2.0, 1.9, -1.0], dtype=np.float32)
    assert sampler.sample(logits) == 1  # token 0 was in the prompt: 3 / 2 = 1.5 < 2
    assert sampler.sample(logits) == 2  # token 1 was just sampled: 2 / 2 = 1 < 1.9
    negative = TokenSampler(params, vocab_size=2, prompt_ids=[0])
    assert negative.sample(np.array([-1.0, -1.5], dtype=np.float32)) == 1  # -1 * 2 = -2 < -1.5
