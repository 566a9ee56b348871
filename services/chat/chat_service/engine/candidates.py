"""What top_k, min_p and top_p keep of one logits row, and a draw from it, without a pass that sorts the vocabulary.

Every filter keeps a prefix of the tokens ordered by logit, so only the top of the row is ever sorted: the k largest
(top_k), those above a logit bound (min_p), or a top-M that is widened until its mass reaches top_p. Only top_p on
its own needs a pass over the whole vocabulary (its total mass decides where the nucleus ends); plain temperature
sampling draws by inverse CDF over column sums, then inside one column. The kept set and its weights are those of
the full float64 computation (the rows are sorted by logit, then by id, and weighed in float64); the passes over
the whole vocabulary run in float32.
"""

from __future__ import annotations

import math

import numpy as np

# The vocabulary is viewed as ROWS × (V // ROWS) (tokens j, j + C, j + 2C, ... form column j): one vectorised
# maximum over the rows gives each column's max, which bounds all ROWS of its tokens. 128 rows keep the column pass
# as cheap as one over contiguous memory and leave ~1,200 columns for Qwen's 151,936 tokens.
ROWS = 128
# A top_p nucleus is first looked for among this many tokens, then among WIDEN times as many, and so on.
FIRST_NUCLEUS = 64
WIDEN = 4


def top_indices(x: np.ndarray, k: int) -> np.ndarray:
    """The ids of the k largest logits, in no order (exact; with ties at the k-th value, some k of them; -inf ones
    may be left out).

    np.argpartition over 151,936 float32 costs 0.25–1 ms here; instead the k-th largest column max is a bound that
    at least k tokens reach (each of those columns' own max), so the k largest are all at or above it, and so only in
    the columns whose max reaches it: k columns × ROWS tokens (and the few past the last whole column) are
    partitioned.
    """
    n = x.shape[0]
    cols = n // ROWS
    if k >= n:
        return np.arange(n)
    if cols < 4 * k:  # a small vocabulary, or a k so large the columns would not narrow it
        return _partitioned(x, k)
    grid = x[: ROWS * cols].reshape(ROWS, cols)
    col_max = np.maximum.reduce(grid, axis=0)
    bound = np.partition(col_max, cols - k)[cols - k]
    chosen = np.flatnonzero(col_max >= bound)
    if chosen.size > 2 * k:  # many columns tie at the bound (a row mostly -inf): they would not narrow it
        return _partitioned(x, k)
    ids = (np.arange(ROWS, dtype=np.int64)[:, None] * cols + chosen).ravel()
    if ROWS * cols < n:
        ids = np.concatenate([ids, np.arange(ROWS * cols, n)])
    return ids[np.argpartition(x[ids], ids.size - k)[ids.size - k :]]


def _partitioned(x: np.ndarray, k: int) -> np.ndarray:
    """np.argpartition's k largest, leaving out -inf (masked) logits first: partitioning a row of ties is ~40×
    slower, and a masked token weighs 0 anyway (so fewer than k ids may come back)."""
    if np.isneginf(x.min()):
        ids = np.flatnonzero(x > -np.inf)
        return ids if ids.size <= k else ids[np.argpartition(x[ids], ids.size - k)[ids.size - k :]]
    return np.argpartition(x, x.shape[0] - k)[x.shape[0] - k :]


def _ordered(x: np.ndarray, ids: np.ndarray, peak: float, temperature: float) -> tuple[np.ndarray, np.ndarray]:
    """ids most likely first (ties by id, so the order never depends on how they were found), and their weights
    exp((logit - peak) / T) in float64: the unnormalised probabilities, 1 for the most likely token."""
    ids = np.sort(ids)
    values = x[ids].astype(np.float64)
    order = np.argsort(-values, kind="stable")
    return ids[order], np.exp((values[order] - peak) / temperature)


def nucleus(
    x: np.ndarray, temperature: float, top_k: int, min_p: float, top_p: float, scratch: np.ndarray
) -> tuple[np.ndarray, np.ndarray] | None:
    """(ids, weights) of the tokens the filters keep, most likely first, zero weights dropped; None when no filter
    applies (every token may be drawn: see draw_full). `scratch`, float32 like x, is written when top_p is alone."""
    n = x.shape[0]
    peak = float(x.max())
    k = top_k if 0 < top_k < n else 0
    if not k and min_p <= 0 and top_p >= 1.0:
        return None
    if k:
        ids, weights = _ordered(x, top_indices(x, k), peak, temperature)
    elif min_p > 0:
        # p >= min_p * p_max  <=>  logit >= peak + T log(min_p); a little below, so rounding cannot leave one out
        # (the float64 test below decides).
        bound = peak + temperature * math.log(min_p)
        ids, weights = _ordered(x, np.flatnonzero(x >= bound - 1e-3 * max(1.0, abs(bound))), peak, temperature)
    else:
        return _top_p_alone(x, peak, temperature, top_p, scratch)
    if min_p > 0:
        ids, weights = ids[weights >= min_p], weights[weights >= min_p]  # the most likely token's weight is 1
    nonzero = weights > 0  # tokens masked to -inf (guidance) weigh 0 and are never drawn
    ids, weights = ids[nonzero], weights[nonzero]
    if top_p < 1.0:
        # Relative to the mass top_k and min_p kept, as they are applied first (renormalised).
        cumulative = np.cumsum(weights)
        keep = int(np.searchsorted(cumulative, top_p * cumulative[-1], side="left")) + 1
        ids, weights = ids[:keep], weights[:keep]
    return ids, weights


def _exp_scaled(x: np.ndarray, peak: float, temperature: float, out: np.ndarray) -> np.ndarray:
    """out = exp((x - peak) / T) in float32, in place: three passes, no allocation."""
    np.subtract(x, np.float32(peak), out=out)
    np.multiply(out, np.float32(1.0 / temperature), out=out)
    return np.exp(out, out=out)


def _mass(weights: np.ndarray) -> float:
    """The sum of float32 weights, accumulated in float64 over the columns (vectorised, unlike a float64 sum)."""
    n = weights.shape[0]
    cols = n // ROWS
    body = np.add.reduce(weights[: ROWS * cols].reshape(ROWS, cols), axis=0, dtype=np.float64)
    return float(body.sum()) + float(weights[ROWS * cols :].sum(dtype=np.float64))


def _top_p_alone(
    x: np.ndarray, peak: float, temperature: float, top_p: float, scratch: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """The nucleus is the shortest prefix whose mass reaches top_p of the whole vocabulary's: the total takes one
    float32 pass, then the top M tokens are sorted, M widened until their mass reaches it."""
    n = x.shape[0]
    total = _mass(_exp_scaled(x, peak, temperature, scratch))
    goal = top_p * total
    size = FIRST_NUCLEUS
    while True:
        whole = size * 4 >= n  # past a quarter of the vocabulary, partitioning saves less than it costs
        ids, weights = _ordered(x, np.arange(n) if whole else top_indices(x, size), peak, temperature)
        cumulative = np.cumsum(weights)
        if whole or cumulative[-1] >= goal or weights[-1] <= 0:
            keep = min(int(np.searchsorted(cumulative, goal, side="left")) + 1, ids.size)
            return ids[:keep], weights[:keep]
        # Every token left weighs at most the last one kept: at least this many more are needed to reach the goal.
        short = (goal - cumulative[-1]) / weights[-1]
        size = max(size * WIDEN, size + int(min(short, n)) + 1)


def draw(ids: np.ndarray, weights: np.ndarray, u: float) -> int:
    """Inverse CDF: the token whose slice of [0, total) holds u * total (u uniform on [0, 1))."""
    cumulative = np.cumsum(weights)
    i = int(np.searchsorted(cumulative, u * cumulative[-1], side="right"))
    if i >= ids.size:  # u * total rounded up to total itself: the last token that weighs anything
        i = int(np.flatnonzero(weights)[-1])
    return int(ids[i])


def draw_full(x: np.ndarray, temperature: float, u: float, scratch: np.ndarray) -> int:
    """A draw from softmax(x / T) over the whole vocabulary: a column by its mass (one float32 pass), then a token of
    that column in float64, with the same uniform rescaled to the column's slice. Masked (-inf) tokens weigh 0."""
    n = x.shape[0]
    peak = float(x.max())
    weights = _exp_scaled(x, peak, temperature, scratch)
    cols = n // ROWS
    masses = np.add.reduce(weights[: ROWS * cols].reshape(ROWS, cols), axis=0, dtype=np.float64)
    if ROWS * cols < n:
        masses = np.append(masses, weights[ROWS * cols :].sum(dtype=np.float64))
    cumulative = np.cumsum(masses)
    target = u * cumulative[-1]
    j = int(np.searchsorted(cumulative, target, side="right"))
    if j >= masses.size:  # target rounded up to the total: the last column that weighs anything
        j = int(np.flatnonzero(masses)[-1])
    members = np.arange(ROWS * cols, n) if j == cols else j + cols * np.arange(ROWS)
    start = cumulative[j - 1] if j else 0.0
    within = min(max((target - start) / masses[j], 0.0), 1.0)
    member_weights = np.exp((x[members].astype(np.float64) - peak) / temperature)
    return draw(members, member_weights, within)
