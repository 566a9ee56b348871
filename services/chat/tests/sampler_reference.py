"""The sampler's target distribution, computed the slow way: the whole vocabulary in float64, as the sampler did before
it narrowed to candidates (kept only here, as the reference the fast one is tested against), and a chi-square test
of draws against it."""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
from chat_service.engine.types import SamplingParams


def penalised(
    logits: np.ndarray, params: SamplingParams, prompt_ids: Sequence[int] = (), sampled: Sequence[int] = ()
) -> np.ndarray:
    """The row after the repetition penalty (prompt and sampled tokens), OpenAI's penalties (sampled tokens) and
    logit_bias, each with np.where over the whole vocabulary, in float64."""
    x = logits.astype(np.float64)
    n = x.shape[0]
    if params.repetition_penalty != 1.0:
        seen = np.zeros(n, dtype=bool)
        seen[[t for t in [*prompt_ids, *sampled] if 0 <= t < n]] = True
        p = params.repetition_penalty
        x = np.where(seen, np.where(x > 0, x / p, x * p), x)
    counts = np.bincount(np.asarray(sampled, dtype=np.int64), minlength=n)[:n]
    x = x - counts * params.frequency_penalty - (counts > 0) * params.presence_penalty
    for token, bias in params.logit_bias:
        x[token] += bias
    return x


def target(logits: np.ndarray, params: SamplingParams) -> np.ndarray:
    """P(token) over the whole vocabulary: softmax(x / T), then min_p, top_k (renormalised), then top_p."""
    scaled = logits.astype(np.float64) / params.temperature
    scaled -= scaled.max()
    probs = np.exp(scaled)
    probs /= probs.sum()
    if params.min_p > 0:
        probs = np.where(probs >= params.min_p * probs.max(), probs, 0.0)
    k = params.top_k
    if 0 < k < probs.shape[0]:
        kept = np.zeros(probs.shape[0], dtype=bool)
        kept[np.argpartition(-probs, k - 1)[:k]] = True
        probs = np.where(kept, probs, 0.0)
    probs /= probs.sum()
    if params.top_p < 1.0:
        order = np.argsort(-probs, kind="stable")
        cumulative = np.cumsum(probs[order])
        keep = int(np.searchsorted(cumulative, params.top_p, side="left")) + 1
        nucleus = np.zeros_like(probs)
        nucleus[order[:keep]] = probs[order[:keep]]
        probs = nucleus / nucleus.sum()
    return probs


class ReferenceSampler:
    """The former implementation's draw (a full stable argsort and rng.choice), for the same test as the new one."""

    def __init__(self, params: SamplingParams) -> None:
        self.params = params
        self._rng = np.random.default_rng(params.seed)

    def sample(self, logits: np.ndarray) -> int:
        probs = target(logits, self.params)
        return int(self._rng.choice(probs.shape[0], p=probs))


def chi_square_p(draws: Sequence[int], probs: np.ndarray) -> float:
    """The p-value of draws against probs: tokens pooled, most likely first, into bins expecting >= 5 draws each
    (so the approximation holds); any draw outside the support gives 0. Wilson-Hilferty for the chi-square tail."""
    n = len(draws)
    observed = np.bincount(np.asarray(draws, dtype=np.int64), minlength=probs.shape[0])
    if observed[probs == 0].sum():
        return 0.0
    order = np.argsort(-probs, kind="stable")
    order = order[probs[order] > 0]
    bins_expected, bins_observed = [], []
    expected_sum = observed_sum = 0.0
    for token in order:
        expected_sum += probs[token] * n
        observed_sum += observed[token]
        if expected_sum >= 5:
            bins_expected.append(expected_sum)
            bins_observed.append(observed_sum)
            expected_sum = observed_sum = 0.0
    if bins_expected:  # a last bin short of 5 joins the one before it
        bins_expected[-1] += expected_sum
        bins_observed[-1] += observed_sum
    df = len(bins_expected) - 1
    if df < 1:
        return 1.0
    e, o = np.asarray(bins_expected), np.asarray(bins_observed)
    chi2 = float(((o - e) ** 2 / e).sum())
    z = ((chi2 / df) ** (1 / 3) - (1 - 2 / (9 * df))) / math.sqrt(2 / (9 * df))
    return 0.5 * math.erfc(z / math.sqrt(2))
