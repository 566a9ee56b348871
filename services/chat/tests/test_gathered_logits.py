"""The decoder graph whose lm_head runs only on the positions read (engine/batched/gathered_logits.py), on the real
SmolLM2 and on small hand-made graphs: it returns the full graph's rows for every kind of call, and a graph it does
not fit runs whole.

Why a bound and not equality: both sides run the same graph up to the lm_head, so the rows read are computed alike;
the lm_head (one int4 matmul over 576 inputs) then runs on 2 rows (1 for a lone token) where the full graph ran it on
every position of the call. A CPU's kernel may add in another order for another row count (float rounding, well
under 1e-3 of a logit), while a row from the wrong position differs by whole units. On the AVX-512 VNNI Xeon the
rows were bit-identical (the largest difference is logged).
"""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from chat_service.engine.batched import decoder as decoder_module
from chat_service.engine.batched.decoder import OnnxDecoder
from chat_service.engine.batched.engine import BatchedEngine
from chat_service.engine.batched.gathered_logits import POSITIONS_INPUT, VariantUnavailable, gathered_logits_model
from chat_service.engine.config import EngineConfig
from chat_service.engine.model_folder import ModelFolder
from chat_service.engine.types import GenerationRequest, SamplingParams
from onnx import TensorProto, helper
from ortserve_testing.numerics import assert_greedy_agrees

LM_HEAD_TOLERANCE = 1e-3
logger = logging.getLogger(__name__)


def _decoders(path: Path) -> tuple[OnnxDecoder, OnnxDecoder]:
    folder = ModelFolder(path, max_model_len=512)
    full = OnnxDecoder(path, folder.config, 2, 3, 512, gather_logits=False)
    gathered = OnnxDecoder(path, folder.config, 2, 3, 512)
    return full, gathered


def test_every_call_reads_the_full_graphs_rows(smollm_path) -> None:
    full, gathered = _decoders(smollm_path)
    assert gathered.gathers and not full.gathers
    assert POSITIONS_INPUT in {i.name for i in gathered.session.get_inputs()}
    tokens = [int(t) for t in np.random.default_rng(5).integers(100, 20000, 80)]
    calls = [
        # Rows of different lengths in one prefill: each row's own last position, not the padded width's.
        lambda d: d.prefill([tokens[:40], tokens[5:22], tokens[9:10]], 0),
        lambda d: d.extend(0, tokens[40:57], cached=40),  # a prompt chunk over a past
        lambda d: d.extend(0, tokens[57:58], cached=57),  # a chunk of one token (the lm_head on one row both ways)
        lambda d: d.verify(0, tokens[58:63], cached=58),  # speculation: every position's logits
        lambda d: d.decode([tokens[63], tokens[22], tokens[10]], [63, 17, 1]).copy(),
        lambda d: d.decode([tokens[64], tokens[23], tokens[11]], [64, 18, 2]).copy(),  # the kept binding
        lambda d: d.decode([tokens[65]], [65]).copy(),  # fewer rows: a new binding
        lambda d: d.prefill([tokens[70:71]], 2),  # a one-token prompt
    ]
    worst = 0.0
    for number, call in enumerate(calls):
        want, got = call(full), call(gathered)
        assert got.shape == want.shape, number
        difference = float(np.max(np.abs(got.astype(np.float32) - want.astype(np.float32))))
        assert difference <= LM_HEAD_TOLERANCE, (number, difference)
        worst = max(worst, difference)
    logger.info("largest |Δ logit| between the gathered and the full graph here: %.3g", worst)


def test_a_graph_the_edit_does_not_fit_runs_whole(smollm_path, plain, monkeypatch, caplog) -> None:
    def refuse(graph: onnx.ModelProto, logits_name: str) -> bytes:
        raise VariantUnavailable("made to fail by the test")

    monkeypatch.setattr(decoder_module, "gathered_logits_model", refuse)
    config = EngineConfig(threads=2, max_model_len=512, slots=2)
    with caplog.at_level(logging.WARNING, logger=decoder_module.__name__):
        engine = BatchedEngine(ModelFolder(smollm_path, config.max_model_len), config)
    assert "made to fail by the test" in caplog.text
    prompt = "def fibonacci(n):"

    async def generate() -> list[int]:
        request = GenerationRequest(plain.encode(prompt), 16, SamplingParams(temperature=0.0))
        return [event.token_id async for event in engine.generate(request)]

    try:
        assert not engine._scheduler._decoder.gathers
        tokens = asyncio.run(generate())
    finally:
        engine.close()
    assert_greedy_agrees(tokens, plain.greedy_with_margins(prompt, 16))


def test_a_variant_that_returns_every_position_is_caught_at_startup(smollm_path, monkeypatch, caplog) -> None:
    """A rewrite that fits in form but not in effect (here: the positions input added, nothing gathered) must not
    reach a request: the decoder's startup probe sees the shape and opens the graph as built."""

    def ignore_positions(graph: onnx.ModelProto, logits_name: str) -> bytes:
        model = onnx.ModelProto()
        model.CopyFrom(graph)
        model.graph.input.append(helper.make_tensor_value_info(POSITIONS_INPUT, TensorProto.INT64, ["b", "k"]))
        return model.SerializeToString()

    monkeypatch.setattr(decoder_module, "gathered_logits_model", ignore_positions)
    folder = ModelFolder(smollm_path, max_model_len=256)
    with caplog.at_level(logging.WARNING, logger=decoder_module.__name__):
        decoder = OnnxDecoder(smollm_path, folder.config, 2, 1, 256)
    assert "returned logits of shape (1, 3, 49152)" in caplog.text
    assert not decoder.gathers
    assert POSITIONS_INPUT not in {i.name for i in decoder.session.get_inputs()}
    assert decoder.prefill([[1, 2, 3]], 0).shape == (1, 49152)


# Small hand-made graphs: what the edit accepts and refuses ---------------------------------------------------------
HIDDEN, VOCAB = 4, 6


def _graph(tmp_path: Path, after_lm_head: list[onnx.NodeProto], extra_outputs: tuple[str, ...] = ()) -> Path:
    """hidden [b, s, 4] → MatMul by a constant [4, 6] → the nodes given (from `lm`) → `logits`."""
    weight = np.arange(HIDDEN * VOCAB, dtype=np.float32).reshape(HIDDEN, VOCAB) / 10
    nodes = [helper.make_node("MatMul", ["hidden", "weight"], ["lm" if after_lm_head else "logits"])]
    outputs = [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["b", "s", VOCAB])]
    outputs += [helper.make_tensor_value_info(name, TensorProto.FLOAT, None) for name in extra_outputs]
    graph = helper.make_graph(
        nodes + after_lm_head,
        "g",
        [helper.make_tensor_value_info("hidden", TensorProto.FLOAT, ["b", "s", HIDDEN])],
        outputs,
        [onnx.numpy_helper.from_array(weight, "weight"), onnx.numpy_helper.from_array(np.float32(3.0), "three")],
    )
    path = tmp_path / "model.onnx"
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), str(path))
    return path


@pytest.mark.unit
def test_the_edit_gathers_before_the_lm_head_and_keeps_row_wise_nodes_after_it(tmp_path) -> None:
    path = _graph(
        tmp_path,
        [helper.make_node("Div", ["lm", "three"], ["capped"]), helper.make_node("Tanh", ["capped"], ["logits"])],
    )
    session = ort.InferenceSession(gathered_logits_model(path, "logits"), providers=["CPUExecutionProvider"])
    hidden = np.random.default_rng(0).standard_normal((2, 5, HIDDEN)).astype(np.float32)
    positions = np.asarray([[4, 1], [0, 0]], np.int64)
    (logits,) = session.run(["logits"], {"hidden": hidden, POSITIONS_INPUT: positions})
    full = np.tanh(hidden @ (np.arange(HIDDEN * VOCAB, dtype=np.float32).reshape(HIDDEN, VOCAB) / 10) / 3)
    np.testing.assert_allclose(logits, np.take_along_axis(full, positions[:, :, None], axis=1), rtol=1e-5)


@pytest.mark.unit
@pytest.mark.parametrize(
    ("nodes", "extra_outputs", "why"),
    [
        ([helper.make_node("Softmax", ["lm"], ["logits"], axis=1)], (), "not row-wise"),
        ([helper.make_node("Add", ["lm", "lm"], ["logits"])], (), "not row-wise"),
        ([helper.make_node("Tanh", ["lm"], ["logits"])], ("lm",), "read elsewhere"),
    ],
)
def test_the_edit_refuses_what_would_change_other_results(tmp_path, nodes, extra_outputs, why) -> None:
    with pytest.raises(VariantUnavailable, match=why):
        gathered_logits_model(_graph(tmp_path, nodes, extra_outputs), "logits")


@pytest.mark.unit
def test_the_edit_refuses_a_graph_without_a_matmul_before_logits(tmp_path) -> None:
    with pytest.raises(VariantUnavailable, match="no MatMul"):
        gathered_logits_model(_graph(tmp_path, []), "other_name")
