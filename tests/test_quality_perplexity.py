"""The quality gate's arithmetic (bench/quality), no model: llama.cpp's strided windows, the negative log-likelihood of
a window, perplexity as exp of the mean, the parse of llama-perplexity's output, and the verdicts."""

from __future__ import annotations

import math

import numpy as np
import pytest

from bench.quality import llama, report
from bench.quality.perplexity import Score, score, window_nll, windows


def test_windows_score_every_token_after_the_first_context_minus_stride_once() -> None:
    n, context, stride = 1100, 512, 256
    found = windows(n, context, stride)
    assert len(found) == (n - context + stride - 1) // stride == 3  # llama.cpp's n_chunk_max
    scored = [w.start + row + 1 for w in found for row in w.scored_logit_rows]
    assert scored == list(range(context - stride, found[-1].start + context))  # contiguous, no token twice
    assert all(w.start + w.context <= n for w in found)
    assert all(row >= context - stride - 1 for w in found for row in w.scored_logit_rows)  # ≥ 256 tokens of context


@pytest.mark.parametrize(("n", "context", "stride"), [(1023, 512, 256), (2048, 512, 0), (2048, 512, 512)])
def test_windows_refuse_what_llama_perplexity_refuses(n: int, context: int, stride: int) -> None:
    with pytest.raises(ValueError):
        windows(n, context, stride)


def test_uniform_logits_give_the_vocabulary_size() -> None:
    vocab, context, stride = 50, 8, 4
    tokens = list(np.random.default_rng(0).integers(0, vocab, 40))
    total = score(tokens, context, stride, lambda window: np.zeros((len(window), vocab), dtype=np.float32))
    assert total.count == len(windows(40, context, stride)) * stride
    assert total.perplexity == pytest.approx(vocab)


def test_a_model_that_gives_the_next_token_probability_p_has_perplexity_one_over_p() -> None:
    vocab, p = 7, 0.6
    tokens = [i % vocab for i in range(64)]  # token t is always followed by t + 1

    def logits_of(window: list[int]) -> np.ndarray:
        logits = np.full((len(window), vocab), math.log((1 - p) / (vocab - 1)))
        for row, token in enumerate(window):
            logits[row, (token + 1) % vocab] = math.log(p)
        return logits + 3.0  # an offset changes nothing: log-softmax

    assert score(tokens, 16, 4, logits_of).perplexity == pytest.approx(1 / p)


def test_window_nll_is_the_log_softmax_of_the_scored_rows_by_hand() -> None:
    logits = np.array([[9.0, 9.0, 9.0], [1.0, 2.0, 3.0], [0.0, 0.0, 5.0], [4.0, 4.0, 4.0]])
    tokens = [0, 0, 2, 1, 0]
    window = windows(8, 4, 2)[0]  # rows 1 and 2 are scored: they predict tokens[2] = 2 and tokens[3] = 1
    expected = -(3.0 - math.log(math.e + math.e**2 + math.e**3)) - (0.0 - math.log(2 + math.e**5))
    assert window_nll(logits, tokens, window) == pytest.approx(expected)


def test_scores_add_up_over_texts_as_one_mean() -> None:
    a, b = Score(10 * math.log(4.0), 10), Score(30 * math.log(2.0), 30)
    assert (a + b).perplexity == pytest.approx(math.exp((10 * math.log(4) + 30 * math.log(2)) / 40))


def test_the_last_running_value_of_llama_perplexity_is_the_texts() -> None:
    output = "perplexity_v2: have 1100 tokens. Calculation chunk = 512\n[1]12.5000,[2]11.0000,[3]10.2500,\n"
    parsed = llama.parse(output, 512, 256)
    assert parsed["perplexity"] == 10.25 and parsed["count"] == 3 * 256 and parsed["tokens"] == 1100
    assert math.exp(parsed["nll"] / parsed["count"]) == pytest.approx(10.25)
    with pytest.raises(RuntimeError):  # fewer windows than the token count calls for: a truncated run
        llama.parse(output.replace("[3]10.2500,", ""), 512, 256)


def _model(ppl_int4: float, ppl_fp32: float, q4_0: float, f32: float) -> dict:
    def entry(ppl: float) -> dict:
        return {"t": {"nll": math.log(ppl) * 100, "count": 100}}

    return {
        "int4": entry(ppl_int4),
        "fp32": {"texts": entry(ppl_fp32)},
        "llama": {"Q4_0": entry(q4_0), "F32": entry(f32)},
    }


def test_verdicts_hold_int4_to_1_03_and_to_llama_cpps_q4_0_ratio() -> None:
    results = {
        "texts": [{"name": "t"}],
        "models": {
            "good": _model(10.2, 10.0, 10.5, 10.0),
            "over_target": _model(10.4, 10.0, 10.5, 10.0),
            "worse_than_llama": _model(10.2, 10.0, 10.1, 10.0),
        },
    }
    found = report.verdicts(results)
    assert found["good"]["ratio"] == pytest.approx(1.02) and found["good"]["met"]
    assert not found["over_target"]["met_target"] and found["over_target"]["met_llama"]
    assert found["worse_than_llama"]["met_target"] and not found["worse_than_llama"]["met"]


def test_the_report_names_each_sides_weight_types_where_the_run_recorded_them() -> None:
    model = _model(10.2, 10.0, 10.5, 10.0)
    assert report.types_lines(model) == [] and report.output_type(model, "Q4_0") == "?"
    model["int4_types"] = {"by_type": {"int4": 1.0}, "output": "int4", "elements": 10}
    model["llama"]["Q4_0"]["types"] = {"by_type": {"Q4_0": 0.8, "Q8_0": 0.2}, "output": "Q8_0", "elements": 10}
    assert report.types_lines(model)[-2:] == [
        "| int4 (ours) | int4 100.0 %; output matrix int4 |",
        "| llama.cpp Q4_0 | Q4_0 80.0 %, Q8_0 20.0 %; output matrix Q8_0 |",
    ]
    assert (report.output_type(model, "int4"), report.output_type(model, "Q4_0")) == ("int4", "Q8_0")
