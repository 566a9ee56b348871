"""The decoder graph with its lm_head run only on the positions whose logits are read, built in memory from the
model folder's graph (the same weight file; nothing is written to the folder, which may be read-only).

The builder's graph computes logits for every position of a call: a 512-token prefill chunk makes [1, 512, vocab]
floats (311 MB on Qwen2.5's 151,936 tokens) to read one row, and its lm_head (hidden × vocab, Qwen2.5-0.5B: 136 M
MACs per position against ~360 M for the rest of the model) runs on every one of them. The variant takes one more
input, `logits_positions` [batch, k] (int64, positions within the call), and gathers those rows of the lm_head's
input (GatherND, batch_dims=1) before the lm_head runs, so `logits` is [batch, k, vocab].

Only row-wise nodes may lie between the gather and the `logits` output: the lm_head itself (the MatMul-like node
found by walking up from the node that produces `logits`) and, after it, Casts or element-wise ops with constant
operands (a softcap, a bias), whose intermediate results nothing else reads.
"""

from __future__ import annotations

from pathlib import Path

import onnx
from google.protobuf.message import DecodeError
from onnx import TensorProto, helper

POSITIONS_INPUT = "logits_positions"
_AXES = "logits_positions/axes"
_INDICES = "logits_positions/indices"
_GATHERED = "logits_positions/lm_head_input"

# ONNX Runtime reads the external weights relative to this folder when the model comes as bytes (no path to go by).
EXTERNAL_DATA_FOLDER_KEY = "session.model_external_initializers_file_folder_path"

# Gemm is not among them: it takes 2-D inputs only, and the gathered input is [batch, k, hidden].
_LM_HEAD_OPS = {"MatMul", "MatMulNBits"}
# Ops that act on each position's row alone (given constant other operands): they may follow the lm_head.
_ROW_WISE_OPS = {"Cast", "Tanh", "Mul", "Div", "Add", "Sub"}


class VariantUnavailable(Exception):
    """The graph does not have the shape this edit expects; the message says what (the engine then runs the graph
    as it is)."""


def read_graph(onnx_path: Path) -> onnx.ModelProto:
    """The graph file alone (its external data referenced, not loaded)."""
    try:
        return onnx.load(str(onnx_path), load_external_data=False)
    except (OSError, DecodeError) as exc:
        raise VariantUnavailable(f"{onnx_path} could not be read: {exc}") from exc


def gathered_logits_model(source: Path | onnx.ModelProto, logits_name: str) -> bytes:
    """The serialized variant of the graph at `source` (a path, or a graph already read, which stays unchanged)."""
    model = onnx.ModelProto()
    model.CopyFrom(source if isinstance(source, onnx.ModelProto) else read_graph(source))
    graph = model.graph
    if any(i.name == POSITIONS_INPUT for i in graph.input):
        raise VariantUnavailable(f"the graph already has an input named {POSITIONS_INPUT}")
    lm_head = _lm_head(graph, logits_name)
    opset = next((op.version for op in model.opset_import if op.domain in ("", "ai.onnx")), 0)
    if opset < 13:  # GatherND's batch_dims is from 12, Unsqueeze's axes as an input from 13
        raise VariantUnavailable(f"the graph's ONNX opset is {opset}; the edit needs 13 or later")
    graph.input.append(
        helper.make_tensor_value_info(POSITIONS_INPUT, TensorProto.INT64, ["batch_size", "logits_positions_count"])
    )
    graph.initializer.append(helper.make_tensor(_AXES, TensorProto.INT64, [1], [-1]))
    gather = [
        helper.make_node("Unsqueeze", [POSITIONS_INPUT, _AXES], [_INDICES], name="/logits_positions/Unsqueeze"),
        helper.make_node(
            "GatherND", [lm_head.input[0], _INDICES], [_GATHERED], name="/logits_positions/GatherND", batch_dims=1
        ),
    ]
    lm_head.input[0] = _GATHERED
    # Nodes must stay in topological order: the gather goes just before the lm_head.
    at = list(graph.node).index(lm_head)
    for offset, node in enumerate(gather):
        graph.node.insert(at + offset, node)
    for output in graph.output:
        dims = output.type.tensor_type.shape.dim
        if output.name == logits_name and len(dims) == 3:
            dims[1].ClearField("dim_value")
            dims[1].dim_param = "logits_positions_count"
    return model.SerializeToString()


def _lm_head(graph: onnx.GraphProto, logits_name: str) -> onnx.NodeProto:
    """The MatMul-like node whose output becomes `logits` through row-wise nodes only."""
    producers = {output: node for node in graph.node for output in node.output}
    constants = {init.name for init in graph.initializer} | {
        output for node in graph.node if node.op_type == "Constant" for output in node.output
    }
    readers: dict[str, int] = {}
    for node in graph.node:
        for name in node.input:
            readers[name] = readers.get(name, 0) + 1
    graph_outputs = {output.name for output in graph.output}
    node = producers.get(logits_name)
    while node is not None and node.op_type not in _LM_HEAD_OPS:
        if node.op_type not in _ROW_WISE_OPS or any(name not in constants for name in node.input[1:]):
            raise VariantUnavailable(f"`{logits_name}` comes from a {node.op_type} node that is not row-wise")
        source = node.input[0]
        if readers.get(source, 0) > 1 or source in graph_outputs:
            raise VariantUnavailable(f"{source}, between the lm_head and `{logits_name}`, is read elsewhere too")
        node = producers.get(source)
    if node is None:
        raise VariantUnavailable(f"no MatMul or MatMulNBits node leads to the graph's `{logits_name}` output")
    if node.input[0] in constants:
        raise VariantUnavailable(f"the lm_head {node.name} takes a constant as its first input")
    return node
