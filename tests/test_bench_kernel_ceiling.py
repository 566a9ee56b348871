"""bench/kernel_ceiling.py on the real SmolLM2: every timed decode step has every row in it (min_length keeps EOS
away), so the ceiling compares like with like. No timing is asserted: only that each figure exists and is finite."""

from __future__ import annotations

import math

import numpy as np
import pytest
from ortserve_common.models_dir import models_dir
from ortserve_testing.plain_engine import PlainGenerator

from bench import kernel_ceiling, traffic_prompts

pytestmark = pytest.mark.model

MODEL = models_dir() / "smollm2-135m-instruct"


def test_each_timed_step_decodes_every_row_to_the_length_asked() -> None:
    plain = PlainGenerator(MODEL, threads=2)
    text = plain.chat_prompt(traffic_prompts.question(0))
    steps = len(plain.greedy(text, 200)) + 8  # past the step where greedy decoding alone reaches EOS
    prompt = np.asarray([plain.encode(text)], dtype=np.int32)
    assert len(kernel_ceiling.step_times_ms(plain, np.repeat(prompt, 3, axis=0), steps)) == steps


def test_the_ceiling_is_rows_times_one_rows_step_over_the_batchs_step() -> None:
    result = kernel_ceiling.measure(MODEL, rows=2, steps=6, repeats=1)
    assert result["rows"] == 2 and result["threads"] >= 1
    assert all(math.isfinite(result[k]) and result[k] > 0 for k in ("step_ms_1", "step_ms_rows", "ceiling"))
    assert result["ceiling"] == pytest.approx(2 * result["step_ms_1"] / result["step_ms_rows"])
