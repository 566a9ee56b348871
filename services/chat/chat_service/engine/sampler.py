"""Next-token choice from one row of raw logits, all in one place so every engine samples the same way.

In order: the repetition penalty, OpenAI's penalties and logit_bias, logprobs (the model's distribution after those
and temperature), the guidance mask, then greedy argmax at temperature 0, or sampling from what top_k, min_p and
top_p keep. The engine loop only hands each step's logits row in and feeds the chosen token back to the model.

It runs on the scheduler thread between two model steps, for every row, so it touches the whole vocabulary as
little as it can (151,936 logits for Qwen): the penalties and the bias are applied to the ids they concern only, on
a float32 copy of the row, and the filters sort only the top of the row (candidates.py). Greedy is one argmax.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from chat_service.engine.candidates import draw, draw_full, nucleus
from chat_service.engine.guidance import GuidanceMatcher
from chat_service.engine.types import SamplingParams, TokenLogprobs
from chat_service.engine.vocabulary import Vocabulary


class TokenSet:
    """Distinct token ids in the order first seen, as an array to index a logits row with (a mask answers "seen?")."""

    def __init__(self, vocab_size: int, ids: Sequence[int] = ()) -> None:
        self._mask = np.zeros(vocab_size, dtype=bool)
        first = np.unique(np.asarray([t for t in ids if 0 <= t < vocab_size], dtype=np.int64))
        self._mask[first] = True
        self._ids = np.empty(max(64, 2 * first.size), dtype=np.int64)
        self._ids[: first.size] = first
        self._size = first.size

    def add(self, token: int) -> None:
        if 0 <= token < self._mask.shape[0] and not self._mask[token]:
            self._mask[token] = True
            if self._size == self._ids.shape[0]:
                self._ids = np.concatenate([self._ids, np.empty_like(self._ids)])
            self._ids[self._size] = token
            self._size += 1

    def ids(self, limit: int) -> np.ndarray:
        """The ids below `limit` (the logits row's length, when the model's row is shorter than the vocabulary)."""
        ids = self._ids[: self._size]
        return ids if limit >= self._mask.shape[0] else ids[ids < limit]


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
        self._seen = TokenSet(vocab_size, prompt_ids) if params.repetition_penalty != 1.0 else None
        self._rng = np.random.default_rng(params.seed)
        # Tokens sampled so far and how often, for OpenAI's frequency and presence penalties.
        penalised = params.frequency_penalty != 0.0 or params.presence_penalty != 0.0
        self._sampled = TokenSet(vocab_size) if penalised else None
        self._counts = np.zeros(vocab_size, dtype=np.int32) if penalised else None
        self._bias_ids = np.array([t for t, _ in params.logit_bias], dtype=np.int64) if params.logit_bias else None
        self._bias_values = np.array([b for _, b in params.logit_bias], dtype=np.float32) if params.logit_bias else None
        self._guidance: GuidanceMatcher | None = None
        if params.guidance is not None:
            if vocabulary is None:
                raise ValueError("guided decoding needs the model's vocabulary")
            self._guidance = GuidanceMatcher(params.guidance, vocabulary)
        # The penalised row and the filters' float32 work space, reused step after step (no allocation per token).
        self._row = np.empty(0, dtype=np.float32)
        self._scratch = np.empty(0, dtype=np.float32)
        # The chosen token's logprobs, after each sample() when params.logprobs is set.
        self.logprobs: TokenLogprobs | None = None

    def model_logits(self, logits: np.ndarray) -> np.ndarray:
        """The row after the repetition penalty, then OpenAI's penalties, then logit_bias, each on the ids it concerns:
        the row itself when none applies, else a copy (valid until the next call; the engine's buffer is never
        written). Repetition is HF's and vLLM's: a seen token's logit divided by it if positive, multiplied if not.
        OpenAI's: mu[j] -= c[j] * frequency_penalty + (c[j] > 0) * presence_penalty (c: sampled so far)."""
        logits = logits.astype(np.float32, copy=False)
        if self._seen is None and self._sampled is None and self._bias_ids is None:
            return logits
        n = logits.shape[-1]
        if self._row.shape[0] != n:
            self._row = np.empty(n, dtype=np.float32)
        row = self._row
        np.copyto(row, logits)
        params = self.params
        if self._seen is not None:
            ids = self._seen.ids(n)
            seen = row[ids]
            penalty = np.float32(params.repetition_penalty)
            row[ids] = np.where(seen > 0, seen / penalty, seen * penalty)
        if self._sampled is not None and self._counts is not None:
            ids = self._sampled.ids(n)
            counts = self._counts[ids]
            frequency, presence = np.float32(params.frequency_penalty), np.float32(params.presence_penalty)
            row[ids] -= counts * frequency + (counts > 0) * presence
        if self._bias_ids is not None and self._bias_values is not None:
            row[self._bias_ids] += self._bias_values
        return row

    def sample(self, logits: np.ndarray) -> int:
        model_logits = self.model_logits(logits)
        if self._guidance is not None:
            token = self._choose_allowed(model_logits, self._guidance.allowed())
        elif self.params.greedy:
            token = int(np.argmax(model_logits))
        else:
            token = self._sample(model_logits)
        if self._guidance is not None:
            self._guidance.accept(token)
        if self._sampled is not None and self._counts is not None and token < self._counts.shape[0]:
            self._counts[token] += 1
            self._sampled.add(token)
        if self._seen is not None:
            self._seen.add(token)
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

    def _choose_allowed(self, logits: np.ndarray, allowed: np.ndarray) -> int:
        """The choice among the tokens the grammar allows: the same as masking the others to -inf (they would weigh
        0 under every filter), done on the allowed ones alone when they are few (a grammar mostly allows a few)."""
        n = logits.shape[-1]
        ids = np.flatnonzero(allowed[:n])
        if ids.size * 4 > n:
            masked = np.where(allowed[:n], logits, np.float32(-np.inf)).astype(np.float32, copy=False)
            return int(np.argmax(masked)) if self.params.greedy else self._sample(masked)
        subset = logits[ids]
        return int(ids[np.argmax(subset) if self.params.greedy else self._sample(subset)])

    def _sample(self, logits: np.ndarray) -> int:
        if self._scratch.shape[0] < logits.shape[0]:
            self._scratch = np.empty(logits.shape[0], dtype=np.float32)
        scratch = self._scratch[: logits.shape[0]]
        # One uniform per token whatever the filters keep, so a seed's stream of draws lines up step for step.
        u = float(self._rng.random())
        params = self.params
        kept = nucleus(logits, params.temperature, params.top_k, params.min_p, params.top_p, scratch)
        if kept is None:
            return draw_full(logits, params.temperature, u, scratch)
        return draw(*kept, u)
