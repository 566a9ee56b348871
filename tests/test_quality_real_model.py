"""The quality gate on the real SmolLM2 (bench/quality): the served int4 folder and its fp32 weights (torch, in the
model-build venv) score the same tokens of a short text; both perplexities are finite and the int4 one is within a
generous factor of the fp32 one. No timing is measured or asserted."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import onnxruntime_genai as og
import pytest

from bench.quality import run
from bench.quality.corpus import prose_text
from bench.quality.int4 import Int4Model
from bench.quality.perplexity import score

pytestmark = pytest.mark.model

MODEL = "smollm2-135m-instruct"
CONTEXT, STRIDE = 64, 32
# The full corpus measured 1.40 (docs/QUALITY.md); 2 leaves room for a short text at a short context on any CPU, and
# still fails on a broken model, a wrong output read or tokens scored against the wrong positions.
FACTOR = 2.0


@pytest.fixture(scope="module")
def int4() -> Int4Model:
    folder = run.MODELS_DIR / MODEL
    if not (folder / "genai_config.json").exists():
        pytest.fail(f"{folder} is missing: make model builds it")
    return Int4Model(folder, 2)


def test_the_logits_read_for_every_position_end_with_the_generators_own_last_row(int4: Int4Model) -> None:
    window = int4.encode(prose_text().body)[:CONTEXT]
    params = og.GeneratorParams(int4.model)
    params.set_search_options(max_length=len(window) + 1)
    generator = og.Generator(int4.model, params)
    generator.append_tokens(np.asarray(window, dtype=np.int32))
    last = np.asarray(generator.get_logits()).reshape(-1)
    assert np.allclose(int4.logits(window)[-1], last, atol=1e-4)


@pytest.mark.timeout(900)  # a torch process of its own; transformers' import alone took minutes on a busy 2-core box
def test_int4_perplexity_is_finite_and_near_fp32(int4: Int4Model, tmp_path: Path) -> None:
    if not run.BUILD_PYTHON.exists():
        pytest.fail(f"{run.BUILD_PYTHON} is missing: make build-venv creates it")
    tokens = int4.encode(prose_text().body[:800])
    assert len(tokens) >= 2 * CONTEXT
    quantized = score(tokens, CONTEXT, STRIDE, int4.logits)
    job = {"context": CONTEXT, "stride": STRIDE, "texts": {"prose": tokens}}
    reference = run.fp32_reference(MODEL, job, tmp_path, 2)["texts"]["prose"]
    assert reference["count"] == quantized.count
    fp32 = math.exp(reference["nll"] / reference["count"])
    assert math.isfinite(quantized.perplexity) and math.isfinite(fp32)
    assert fp32 < 1000  # far below the 49,152-token vocabulary: the reference really predicts the text
    assert 1 / FACTOR < quantized.perplexity / fp32 < FACTOR, (quantized.perplexity, fp32)
