"""The fast sampler draws from the same distribution as the full float64 computation (sampler_reference), proven two
ways on fixed logits (Qwen's 151,936-token vocabulary, random and peaked, and a small one): the kept set and its
probabilities equal the reference's, and seeded draws pass a chi-square test against the reference's distribution
(the former implementation's draws too, on the small vocabulary, where they are cheap). Every seed is fixed, so the
outcome is the same run after run."""

from __future__ import annotations

import copy
from dataclasses import dataclass, field, replace

import numpy as np
import pytest
from chat_service.engine.candidates import nucleus, top_indices
from chat_service.engine.sampler import TokenSampler
from chat_service.engine.types import SamplingParams
from sampler_reference import ReferenceSampler, chi_square_p, penalised, target

QWEN_VOCAB = 151936
ALPHA = 1e-3  # with fixed seeds a pass is deterministic; this only says how unlikely a fluke pass-or-fail would be


def _logits(kind: str) -> np.ndarray:
    rng = np.random.default_rng({"random": 1, "peaked": 2, "small": 3}[kind])
    if kind == "small":
        return rng.normal(0, 1.5, 64).astype(np.float32)
    # Random: a flat row (top_p 0.9 keeps ~6,500 tokens, the costly case); peaked: a model's row.
    x = rng.normal(0, 3 if kind == "random" else 2, QWEN_VOCAB).astype(np.float32)
    if kind == "peaked":  # a model's row: a handful of tokens far ahead of the rest
        x[rng.choice(QWEN_VOCAB, 6, replace=False)] = [19.0, 18.2, 17.5, 16.0, 15.1, 14.0]
    return x


def _top(x: np.ndarray, n: int) -> list[int]:
    return [int(t) for t in np.argsort(-x, kind="stable")[:n]]


@dataclass(frozen=True)
class Case:
    name: str
    params: SamplingParams
    seen: int = 0  # how many prompt ids the repetition penalty sees (the row's best ones among them)
    fed: tuple[int, ...] = field(default=())  # ranks (in the row) of the tokens sampled before, for the penalties


CASES = [
    Case("top_k", SamplingParams(temperature=1.0, top_k=20)),
    Case("top_p", SamplingParams(temperature=1.0, top_p=0.9)),
    Case("min_p", SamplingParams(temperature=1.0, min_p=0.05)),
    Case("temperature", SamplingParams(temperature=1.3)),
    Case("qwen", SamplingParams(temperature=0.7, top_p=0.8, top_k=20, repetition_penalty=1.05), seen=200),
    Case("repetition", SamplingParams(temperature=1.0, top_k=50, repetition_penalty=1.3), seen=2000),
    Case("logit_bias", SamplingParams(temperature=0.8, top_p=0.95)),
    Case("openai_penalties", SamplingParams(temperature=1.0, top_k=40, frequency_penalty=0.5, presence_penalty=0.7)),
]


def _setup(case: Case, x: np.ndarray) -> tuple[SamplingParams, list[int], list[int]]:
    """The case's params (its logit_bias picked from this row), prompt ids and sampled tokens."""
    n = x.shape[0]
    order = _top(x, n)
    params = case.params
    if case.name == "logit_bias":  # the best token banned, a middling one lifted into the running
        params = replace(params, logit_bias=((order[0], -100.0), (order[n // 2], 8.0)))
    seen = [*order[: min(case.seen, n) : 2], *range(1, n, max(1, n // (case.seen or 1)))][: case.seen]
    fed = [order[r] for r in ((0, 0, 1, 5) if case.name == "openai_penalties" else ())]
    return params, seen, fed


def _sampler(params: SamplingParams, n: int, seen: list[int], fed: list[int]) -> TokenSampler:
    sampler = TokenSampler(params, n, prompt_ids=seen)
    for token in fed:  # a row that only this token can win, so it is sampled and counted
        onehot = np.zeros(n, dtype=np.float32)
        onehot[token] = 1e4
        assert sampler.sample(onehot) == token
    return sampler


@pytest.mark.parametrize("kind", ["random", "peaked", "small"])
@pytest.mark.parametrize("case", CASES, ids=lambda c: c.name)
def test_kept_set_and_probabilities_equal_the_full_computation(case: Case, kind: str) -> None:
    x = _logits(kind)
    params, seen, fed = _setup(case, x)
    sampler = _sampler(params, x.shape[0], seen, fed)
    row = sampler.model_logits(x)
    reference_row = penalised(x, params, seen, fed)
    np.testing.assert_allclose(row, reference_row, rtol=1e-6, atol=1e-5)
    want = target(reference_row, params)
    kept = nucleus(row, params.temperature, params.top_k, params.min_p, params.top_p, np.empty_like(row))
    if kept is None:  # nothing filtered: every token may be drawn (the draws below check their frequencies)
        assert case.name == "temperature"
        return
    ids, weights = kept
    assert sorted(ids.tolist()) == np.flatnonzero(want).tolist()
    np.testing.assert_allclose(weights / weights.sum(), want[ids], rtol=1e-5, atol=1e-12)
    assert np.all(np.diff(weights) <= 0)  # most likely first


@pytest.mark.parametrize(("kind", "draws"), [("random", 200), ("peaked", 600), ("small", 2000)])
@pytest.mark.parametrize("case", CASES, ids=lambda c: c.name)
def test_seeded_draws_follow_the_target_distribution(case: Case, kind: str, draws: int) -> None:
    x = _logits(kind)
    params, seen, fed = _setup(case, x)
    want = target(penalised(x, params, seen, fed), params)
    template = _sampler(replace(params, seed=0), x.shape[0], seen, fed)
    got = []
    for i in range(draws):
        # A copy per draw, so every draw sees the same penalties (a draw would count its own token), reseeded.
        sampler = copy.deepcopy(template) if seen or fed else template
        sampler._rng = np.random.default_rng([11, i])
        got.append(sampler.sample(x))
    assert chi_square_p(got, want) > ALPHA
    if kind == "small":  # the former implementation passes the same test
        old = ReferenceSampler(replace(params, seed=5))
        assert chi_square_p([old.sample(penalised(x, params, seen, fed)) for _ in range(draws)], want) > ALPHA


def test_the_chi_square_test_catches_a_wrong_distribution() -> None:
    """The test has teeth: draws with top_p 0.9 at T = 1 fail against a nucleus one token shorter (peaked row: 3
    tokens against 2), against T = 1.3, and against top_p 0.95 on the small row (a few tokens more, 5 % of the mass)."""
    peaked, small = _logits("peaked"), _logits("small")
    for x, wrong in (
        (peaked, SamplingParams(temperature=1.0, top_p=0.6)),
        (peaked, SamplingParams(temperature=1.3, top_p=0.9)),
        (small, SamplingParams(temperature=1.0, top_p=0.95)),
    ):
        sampler = TokenSampler(SamplingParams(temperature=1.0, top_p=0.9, seed=3), x.shape[0])
        got = [sampler.sample(x) for _ in range(800 if x is peaked else 2000)]
        assert chi_square_p(got, target(x, SamplingParams(temperature=1.0, top_p=0.9))) > ALPHA
        assert chi_square_p(got, target(x, wrong)) < ALPHA


@pytest.mark.parametrize("k", [1, 5, 20, 200, 1000])
def test_top_indices_are_the_k_largest(k: int) -> None:
    rng = np.random.default_rng(k)
    for n in (QWEN_VOCAB, 49152, 1000, 151936 + 37):
        x = rng.normal(0, 3, n).astype(np.float32)
        x[rng.choice(n, 3)] = 30.0  # a tie at the top, within one row of columns or not
        got = np.sort(x[top_indices(x, k)])
        np.testing.assert_array_equal(got, np.sort(x)[-k:])


def test_the_same_seed_gives_the_same_tokens_and_another_seed_others() -> None:
    qwen = SamplingParams(temperature=0.7, top_p=0.8, top_k=20, repetition_penalty=1.05)
    rows = [np.roll(_logits("peaked"), 7919 * i) + np.float32(0.1 * i) for i in range(30)]

    def run(params: SamplingParams, seed: int) -> list[int]:
        sampler = TokenSampler(replace(params, seed=seed), QWEN_VOCAB, prompt_ids=range(0, 5000, 7))
        return [sampler.sample(row) for row in rows]

    for params in (qwen, SamplingParams(temperature=1.0, top_p=0.95), SamplingParams(temperature=1.0)):
        first = run(params, 42)
        assert run(params, 42) == first
        assert run(params, 43) != first


def test_guidance_masked_tokens_are_never_drawn() -> None:
    """The mask sets logits to -inf; those weigh 0 in every path (top_k larger than what is allowed included)."""
    x = _logits("random")
    allowed = np.random.default_rng(4).choice(QWEN_VOCAB, 7, replace=False)
    masked = np.full(QWEN_VOCAB, -np.inf, dtype=np.float32)
    masked[allowed] = x[allowed]
    for params in (
        SamplingParams(temperature=0.7, top_p=0.8, top_k=20),
        SamplingParams(temperature=1.0, top_p=0.999),
        SamplingParams(temperature=1.0, min_p=1e-9),
        SamplingParams(temperature=1.0),
    ):
        sampler = TokenSampler(replace(params, seed=1), QWEN_VOCAB)
        assert {sampler.sample(masked) for _ in range(200)} <= set(allowed.tolist())
