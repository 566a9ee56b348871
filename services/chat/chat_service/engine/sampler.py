"""Next-token choice from raw logits: OpenAI's penalties, temperature, nucleus sampling, greedy at temperature 0."""

from __future__ import annotations

import numpy as np

from chat_service.engine.types import SamplingParams


class TokenSampler:
    """Per-request sampler; owns the RNG (seeded for reproducibility) and the counts that the penalties need."""

    def __init__(self, params: SamplingParams, vocab_size: int) -> None:
        self.params = params
        self._rng = np.random.default_rng(params.seed)
        self._penalised = params.frequency_penalty != 0.0 or params.presence_penalty != 0.0
        self._counts = np.zeros(vocab_size, dtype=np.int32) if self._penalised else None

    def apply_penalties(self, logits: np.ndarray) -> np.ndarray:
        """OpenAI's formula: mu[j] -= c[j] * frequency_penalty + (c[j] > 0) * presence_penalty (c: sampled so far)."""
        if self._counts is None:
            return logits
        counts = self._counts[: logits.shape[-1]]
        return logits - counts * self.params.frequency_penalty - (counts > 0) * self.params.presence_penalty

    def sample(self, logits: np.ndarray) -> int:
        logits = self.apply_penalties(logits.astype(np.float32, copy=False))
        if self.params.greedy:
            token = int(np.argmax(logits))
        else:
            token = self._sample_nucleus(logits)
        if self._counts is not None and token < self._counts.shape[0]:
            self._counts[token] += 1
        return token

    def _sample_nucleus(self, logits: np.ndarray) -> int:
        scaled = logits.astype(np.float64) / self.params.temperature
        scaled -= scaled.max()
        probs = np.exp(scaled)
        probs /= probs.sum()
        top_p = self.params.top_p
        if top_p < 1.0:
            order = np.argsort(-probs, kind="stable")
            cumulative = np.cumsum(probs[order])
            # Keep the smallest prefix whose mass reaches top_p (always at least the most likely token).
            keep = int(np.searchsorted(cumulative, top_p, side="left")) + 1
            kept = order[:keep]
            kept_probs = probs[kept] / probs[kept].sum()
            return int(kept[self._rng.choice(keep, p=kept_probs)])
        return int(self._rng.choice(probs.shape[0], p=probs))
