"""Perplexity over sliding windows, scored the way llama.cpp's `llama-perplexity --ppl-stride` scores them.

A text of n tokens is read in windows of `context` tokens that start every `stride` tokens; each window is run from
scratch (no KV carried over) and only its last `stride` predictions are scored, so every scored token sees at least
`context - stride` tokens before it. That is llama.cpp's `perplexity_v2`: `(n - context + stride - 1) // stride`
windows, window i over tokens [i*stride, i*stride + context), the logits at positions context-stride-1 … context-2
predicting the tokens after them. Using the same windows on both sides is what makes the two engines' figures
comparable (each on its own tokenization). This module needs numpy only: it also runs in the model-build venv.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Window:
    start: int  # the first token fed
    context: int  # tokens fed
    stride: int  # predictions scored, the last ones of the window

    @property
    def scored_logit_rows(self) -> range:
        """The rows of the window's logits that are scored: row j predicts token start + j + 1."""
        return range(self.context - self.stride - 1, self.context - 1)


def windows(n_tokens: int, context: int, stride: int) -> list[Window]:
    """llama.cpp's windows for n_tokens; it refuses a text shorter than 2 × context, and so does this."""
    if not 0 < stride < context:
        raise ValueError(f"stride must be in (0, context): stride {stride}, context {context}")
    if n_tokens < 2 * context:
        raise ValueError(f"{n_tokens} tokens: at least {2 * context} are needed for a context of {context}")
    count = (n_tokens - context + stride - 1) // stride
    return [Window(i * stride, context, stride) for i in range(count)]


def window_nll(logits: np.ndarray, tokens: list[int] | np.ndarray, window: Window) -> float:
    """The summed negative log-likelihood of a window's scored tokens, from its logits [context, vocab] (float64
    log-softmax, so a large vocabulary loses nothing to rounding)."""
    rows = np.asarray(logits[window.scored_logit_rows.start : window.scored_logit_rows.stop], dtype=np.float64)
    targets = np.asarray(tokens[window.start + window.scored_logit_rows.start + 1 : window.start + window.context])
    peak = rows.max(axis=1)
    log_z = peak + np.log(np.exp(rows - peak[:, None]).sum(axis=1))
    return float((log_z - rows[np.arange(len(targets)), targets]).sum())


@dataclass(frozen=True)
class Score:
    """Summed NLL over scored tokens; texts and windows add up, perplexity is exp of the mean."""

    nll: float
    count: int

    def __add__(self, other: Score) -> Score:
        return Score(self.nll + other.nll, self.count + other.count)

    @property
    def perplexity(self) -> float:
        return math.exp(self.nll / self.count)


def score(tokens: list[int], context: int, stride: int, logits_of) -> Score:
    """Perplexity of tokens; logits_of(window_tokens) -> [len, vocab] logits, run from an empty cache."""
    total = Score(0.0, 0)
    for window in windows(len(tokens), context, stride):
        logits = logits_of(tokens[window.start : window.start + window.context])
        total = total + Score(window_nll(logits, tokens, window), window.stride)
    return total
