"""Next-token choice from one row of raw logits, all in one place so every engine samples the same way.

In order: the repetition penalty, OpenAI's penalties and logit_bias, logprobs (the model's distribution after those
and temperature), the guidance mask, then greedy argmax at temperature 0, or sampling from what top_k, min_p and
top_p keep. The engine loop only hands each step's
logits row in and feeds the chosen token back to the model.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from chat_service.engine.guidance import GuidanceMatcher
from chat_service.engine.types import SamplingParams, TokenLogprobs
from chat_service.engine.vocabulary import Vocabulary


class TokenSampler:
    """Per-request sampler; owns the RNG (seeded for reproducibility), the penalty counts and the grammar state."""

    def __init__(
        self,
        params: SamplingParams,
        vocab_size: int,
        vocabulary: Vocabulary | None = None,
        prompt_ids: Sequence[int] = (),
    ) -> None:
        self.params = params
        # Tokens seen so far (the prompt's, then each one sampled), for the repetition penalty.
        self._seen: np.ndarray | None = None
        if params.repetition_penalty != 1.0:
            self._seen = np.zeros(vocab_size, dtype=bool)
            self._seen[[t for t in prompt_ids if 0 <= t < vocab_size]] = True
        self._rng = np.random.default_rng(params.seed)
        self._penalised = params.frequency_penalty != 0.0 or params.presence_penalty != 0.0
        self._counts = np.zeros(vocab_size, dtype=np.int32) if self._penalised else None
        self._bias_ids = np.array([t for t, _ in params.logit_bias], dtype=np.int64) if params.logit_bias else None
        self._bias_values = np.array([b for _, b in params.logit_bias], dtype=np.float32) if params.logit_bias else None
        self._guidance: GuidanceMatcher | None = None
        if params.guidance is not None:
            if vocabulary is None:
                raise ValueError("guided decoding needs the model's vocabulary")
            self._guidance = GuidanceMatcher(params.guidance, vocabulary)
        # The chosen token's logprobs, after each sample() when params.logprobs is set.
        self.logprobs: TokenLogprobs | None = None

    def apply_penalties(self, logits: np.ndarray) -> np.ndarray:
        """OpenAI's formula: mu[j] -= c[j] * frequency_penalty + (c[j] > 0) * presence_penalty (c: sampled so far)."""
        if self._counts is None:
            return logits
        counts = self._counts[: logits.shape[-1]]
        return logits - counts * self.params.frequency_penalty - (counts > 0) * self.params.presence_penalty

    def _repetition(self, logits: np.ndarray) -> np.ndarray:
        """HF's and vLLM's repetition penalty: a seen token's logit is divided by it if positive, multiplied if not."""
        if self._seen is None:
            return logits
        seen = self._seen[: logits.shape[-1]]
        penalty = self.params.repetition_penalty
        return np.where(seen, np.where(logits > 0, logits / penalty, logits * penalty), logits).astype(np.float32)

    def sample(self, logits: np.ndarray) -> int:
        model_logits = self.apply_penalties(self._repetition(logits.astype(np.float32, copy=False)))
        if self._bias_ids is not None:
            model_logits = model_logits.copy()  # never write into the engine's logits buffer
            model_logits[self._bias_ids] += self._bias_values
        logits = model_logits
        if self._guidance is not None:
            allowed = self._guidance.allowed()
            logits = np.where(allowed[: logits.shape[-1]], logits, -np.inf)
        if self.params.greedy:
            token = int(np.argmax(logits))
        else:
            token = self._sample_nucleus(logits)
        if self._guidance is not None:
            self._guidance.accept(token)
        if self._counts is not None and token < self._counts.shape[0]:
            self._counts[token] += 1
        if self._seen is not None and token < self._seen.shape[0]:
            self._seen[token] = True
        if self.params.logprobs is not None:
            # From the model's distribution (penalties and temperature applied), not the guidance mask or top_p:
            # what the model thought of each token, always finite.
            self.logprobs = self._token_logprobs(model_logits, token, self.params.logprobs)
        return token

    def _token_logprobs(self, logits: np.ndarray, token: int, top: int) -> TokenLogprobs:
        """log softmax(logits / T) of the chosen and the `top` best tokens; greedy (T = 0) reports T = 1."""
        scale = 1.0 if self.params.greedy else 1.0 / self.params.temperature
        peak = float(logits.max())
        log_total = float(np.log(np.exp((logits - peak) * scale).sum(dtype=np.float64)))

        def logprob(t: int) -> float:
            # min(0.0, ...) guards float rounding: a near-certain token must still report a logprob <= 0.
            return min(0.0, (float(logits[t]) - peak) * scale - log_total)

        best: list[int] = []
        if top:
            candidates = np.argpartition(logits, -top)[-top:]
            best = [int(t) for t in candidates[np.argsort(-logits[candidates], kind="stable")]]
        return TokenLogprobs(logprob(token), tuple((t, logprob(t)) for t in best))

    def _sample_nucleus(self, logits: np.ndarray) -> int:
        scaled = logits.astype(np.float64) / self.params.temperature
        scaled -= scaled.max()
        probs = np.exp(scaled)
        probs /= probs.sum()
        if self.params.min_p > 0:  # relative to the most likely token (probs.max() == 1 / sum before the division)
            probs = np.where(probs >= self.params.min_p * probs.max(), probs, 0.0)
        k = self.params.top_k
        if 0 < k < probs.shape[0]:
            kept = np.zeros(probs.shape[0], dtype=bool)
            kept[np.argpartition(-probs, k - 1)[:k]] = True  # the k most likely
            probs = np.where(kept, probs, 0.0)
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
