"""Pooling of per-token states into one vector, and the normalisation OpenAI-style clients expect."""

from __future__ import annotations

import numpy as np


def mean_pool(hidden: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """[B, S, H] states and a [B, S] 0/1 mask → [B, H] means over the real tokens (padding excluded)."""
    weights = mask.astype(np.float32)[:, :, None]
    summed = (hidden * weights).sum(axis=1)
    counts = np.clip(weights.sum(axis=1), 1e-9, None)  # sentence-transformers' clamp, for identical results
    return (summed / counts).astype(np.float32)


def cls_pool(hidden: np.ndarray) -> np.ndarray:
    return hidden[:, 0, :].astype(np.float32)


def l2_normalize(vectors: np.ndarray) -> np.ndarray:
    """Row-wise unit length; torch.nn.functional.normalize's eps so zero rows stay zero, as sentence-transformers."""
    norms = np.linalg.norm(vectors, axis=-1, keepdims=True)
    return (vectors / np.maximum(norms, 1e-12)).astype(np.float32)


def shorten(vectors: np.ndarray, dimensions: int) -> np.ndarray:
    """OpenAI's `dimensions`: keep the first `dimensions` values, then make each row unit length again."""
    return l2_normalize(vectors[:, :dimensions])
