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
    np.testing.assert_allclose(sampler.apply_penalties(logits), [5.0 - 0.5 - 1.0, 4.0 - 0.5 - 1.0, 0.0])


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
