"""bench/quality/kv_dtype.py on the real SmolLM2: both graphs score the same ids over the gate's windows, and the
float16 cache's graph really reads a float16 past. No threshold on the figure it exists to report beyond "the same
model": a broken cache (keys or values misplaced) scores like noise, perplexity in the thousands, not within 5 %."""

from __future__ import annotations

import math

import numpy as np
import pytest

from bench.quality import kv_dtype

pytestmark = pytest.mark.model


def test_both_caches_score_every_text_of_the_corpus_alike() -> None:
    rows = kv_dtype.measure("smollm2-135m-instruct", context=64, stride=32, threads=2)
    assert [name for name, *_ in rows] == ["python-stdlib", "prose"]
    for _name, full, half in rows:
        assert full.count == half.count > 0
        assert math.isfinite(full.perplexity) and math.isfinite(half.perplexity)
        assert abs(half.perplexity / full.perplexity - 1) < 0.05


def test_the_float16_graph_takes_a_float16_past() -> None:
    folder = kv_dtype.models_dir() / "smollm2-135m-instruct"
    graph = kv_dtype.read_graph(folder / "model.onnx")
    half = kv_dtype.GraphLogits(folder, kv_dtype.half_kv_model(graph), threads=2)
    assert {array.dtype for array in half.empty.values()} == {np.dtype(np.float16)}
    assert half.logits([1, 2, 3]).shape[0] == 3
