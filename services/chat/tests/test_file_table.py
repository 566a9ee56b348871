"""A tied embedding gathers from the weight file (engine/batched/file_table.py): the edit on a small graph of plain
ONNX ops, then on the real SmolLM2, whose logits stay bit-identical while its session holds one copy less of the
table in anonymous memory."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
from chat_service.engine.batched.decoder import OnnxDecoder
from chat_service.engine.batched.file_table import SUFFIX, gather_from_file
from chat_service.engine.model_folder import ModelFolder
from onnx import TensorProto, helper, numpy_helper

EXTERNAL_DATA_FOLDER_KEY = "session.model_external_initializers_file_folder_path"


def _tied_graph(folder: Path) -> onnx.ModelProto:
    """ids -> Gather(Reshape(table [8, 2, 3] -> [8, 6])) and x -> MatMul(x, the same table as [6, 8]) as the
    builder ties them; the table in an external file."""
    table = np.arange(8 * 6, dtype=np.float32).reshape(8, 2, 3)
    weight = numpy_helper.from_array(table, "table")
    onnx.external_data_helper.set_external_data(weight, "weights.data", offset=0, length=table.nbytes)
    (folder / "weights.data").write_bytes(table.tobytes())
    weight.ClearField("raw_data")
    weight.data_location = TensorProto.EXTERNAL
    shape = helper.make_tensor("shape_value", TensorProto.INT64, [2], [8, 6])
    nodes = [
        helper.make_node("Constant", [], ["shape"], value=shape, name="/constant/shape"),
        helper.make_node("Reshape", ["table", "shape"], ["rows"], name="/embed/Reshape"),
        helper.make_node("Gather", ["rows", "ids"], ["embedded"], name="/embed/Gather", axis=0),
    ]
    graph = helper.make_graph(
        nodes,
        "tied",
        [helper.make_tensor_value_info("ids", TensorProto.INT64, ["n"])],
        [helper.make_tensor_value_info("embedded", TensorProto.FLOAT, ["n", 6])],
        [weight],
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


def _run(model: onnx.ModelProto, folder: Path, ids: np.ndarray) -> np.ndarray:
    options = ort.SessionOptions()
    options.add_session_config_entry(EXTERNAL_DATA_FOLDER_KEY, str(folder))
    session = ort.InferenceSession(model.SerializeToString(), options, providers=["CPUExecutionProvider"])
    return session.run(None, {"ids": ids})[0]


def test_the_gather_reads_its_own_initializer_over_the_same_bytes_and_the_reshape_goes(tmp_path: Path) -> None:
    model = _tied_graph(tmp_path)
    ids = np.asarray([7, 0, 3, 3], np.int64)
    before = _run(model, tmp_path, ids)
    assert gather_from_file(model) == ["/embed/Gather"]
    table = next(i for i in model.graph.initializer if i.name == "table" + SUFFIX)
    assert list(table.dims) == [8, 6] and table.data_location == TensorProto.EXTERNAL
    source = next(i for i in model.graph.initializer if i.name == "table")
    assert list(table.external_data) == list(source.external_data)
    assert [node.op_type for node in model.graph.node] == ["Gather"]  # the Reshape and its shape: nothing reads them
    np.testing.assert_array_equal(_run(model, tmp_path, ids), before)
    assert before[0].tolist() == list(range(42, 48))  # row 7 of the table, as the reshape laid it out


def test_a_graph_without_a_reshaped_external_table_is_left_as_it_is(tmp_path: Path) -> None:
    model = _tied_graph(tmp_path)
    model.graph.node[1].input[1] = "computed_shape"  # the shape no longer a constant: nothing to go by
    unchanged = model.SerializeToString()
    assert gather_from_file(model) == []
    assert model.SerializeToString() == unchanged


PROBE = """
import json, re, sys
from pathlib import Path
from chat_service.engine.batched.decoder import OnnxDecoder
from chat_service.engine.model_folder import ModelFolder
path = Path(sys.argv[1])
config = ModelFolder(path, max_model_len=256).config
decoder = OnnxDecoder(path, config, 2, 2, 256, gather_from_weight_file=sys.argv[2] == "1")
anonymous = int(re.search(r"RssAnon:\\s+(\\d+)", open("/proc/self/status").read()).group(1))
print(json.dumps({"anonymous_kb": anonymous, "tables": decoder.file_tables}))
"""


def _anonymous_after_load(path: Path, from_file: bool) -> dict:
    done = subprocess.run(
        [sys.executable, "-c", PROBE, str(path), "1" if from_file else "0"], capture_output=True, text=True, check=True
    )
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_smollm2_gathers_from_the_file_with_bit_identical_logits_and_one_table_less(smollm_path: Path) -> None:
    # Exact on every CPU: both decoders run the same kernels on the same bytes; only where the Gather reads them from
    # differs.
    folder = ModelFolder(smollm_path, max_model_len=256)
    copied = OnnxDecoder(smollm_path, folder.config, 2, 2, 256, gather_from_weight_file=False)
    from_file = OnnxDecoder(smollm_path, folder.config, 2, 2, 256)
    assert copied.file_tables == [] and from_file.file_tables == ["/model/embed_tokens/GatherBlockQuantized"]
    # Ids across the whole vocabulary, so rows from all over the table are gathered.
    tokens = [int(t) for t in np.random.default_rng(5).integers(0, 49152, 48)]
    calls = [
        lambda d: d.prefill([tokens[:40], tokens[8:30]], 0),
        lambda d: d.decode([tokens[40], tokens[30]], [40, 22]).copy(),
        lambda d: d.extend(1, tokens[32:44], cached=24),
    ]
    for number, call in enumerate(calls):
        np.testing.assert_array_equal(call(from_file), call(copied), err_msg=f"call {number}")
    # The folded copy is the whole int4 table: 49152 rows of 576 weights at half a byte (13.5 MiB). Each side in a
    # fresh process, so that nothing the other allocated is counted.
    table_kb = 49152 * 576 // 2 // 1024
    kept = _anonymous_after_load(smollm_path, from_file=False)
    dropped = _anonymous_after_load(smollm_path, from_file=True)
    assert dropped["tables"] and not kept["tables"]
    saved = kept["anonymous_kb"] - dropped["anonymous_kb"]
    assert saved > 0.8 * table_kb, f"{saved} KB less anonymous memory, the table is {table_kb} KB"
