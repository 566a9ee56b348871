"""A tied embedding that gathers from the weight file, not from a copy.

With the lm_head and the embedding tied (shared_embeddings), the builder's graph feeds the embedding's
GatherBlockQuantized a Reshape of the lm_head's int4 weight. ONNX Runtime's constant folding runs that Reshape once
at load and keeps its output as a new initializer in anonymous memory: a second copy of the whole table (65 MB on
Qwen2.5-Coder-0.5B, 14 MB on SmolLM2), beside MatMulNBits' own packed copy, for an op that reads a few rows per token.
Disabling constant folding instead leaves the Reshape to run in every call.

The edit gives the Gather an initializer of its own over the very same bytes of the weight file (the same external
location, offset and length, the Gather's shape): nothing is folded or copied, onnxruntime maps those bytes like any
other external initializer, and weight_pages.py gives the mapping's pages back after loading, so only the rows
gathered since are resident. The values the Gather reads are the same bytes either way.
"""

from __future__ import annotations

import logging
import math

import onnx
from onnx import TensorProto, numpy_helper

logger = logging.getLogger(__name__)

GATHER_OPS = {"GatherBlockQuantized", "Gather"}
SUFFIX = "/gathered_from_file"


def _constant(graph: onnx.GraphProto, name: str) -> list[int] | None:
    """The int64 values of `name` when a Constant node or an inline initializer holds them."""
    for node in graph.node:
        if node.op_type == "Constant" and node.output[0] == name:
            value = next((a.t for a in node.attribute if a.name == "value"), None)
            return None if value is None else [int(v) for v in numpy_helper.to_array(value).ravel()]
    for init in graph.initializer:
        if init.name == name and init.data_location != TensorProto.EXTERNAL:
            return [int(v) for v in numpy_helper.to_array(init).ravel()]
    return None


def _drop_unread(graph: onnx.GraphProto) -> None:
    """Remove the nodes nothing reads any more (the Reshape, its shape constant): left in, constant folding would
    still fold the Reshape into a copy."""
    while True:
        read = {name for node in graph.node for name in node.input} | {output.name for output in graph.output}
        unread = [node for node in graph.node if not any(output in read for output in node.output)]
        if not unread:
            return
        for node in unread:
            graph.node.remove(node)


def gather_from_file(model: onnx.ModelProto) -> list[str]:
    """Point every Gather that reads a Reshape of an external initializer at an initializer of its own over the
    same bytes (in place). Returns the Gathers edited; a graph of another shape is left as it is."""
    graph = model.graph
    initializers = {init.name: init for init in graph.initializer}
    producers = {output: node for node in graph.node for output in node.output}
    edited = []
    for node in graph.node:
        if node.op_type not in GATHER_OPS or not node.input:
            continue
        reshape = producers.get(node.input[0])
        if reshape is None or reshape.op_type != "Reshape":
            continue
        source = initializers.get(reshape.input[0])
        shape = _constant(graph, reshape.input[1])
        if source is None or source.data_location != TensorProto.EXTERNAL or shape is None:
            continue
        if any(d <= 0 for d in shape) or math.prod(shape) != math.prod(source.dims):
            continue  # a -1 or a 0 in the shape would need the source's dims resolved: not met in built graphs
        table = TensorProto(name=source.name + SUFFIX, data_type=source.data_type, dims=shape)
        table.data_location = TensorProto.EXTERNAL
        table.external_data.extend(source.external_data)
        graph.initializer.append(table)
        node.input[0] = table.name
        edited.append(node.name)
    if edited:
        _drop_unread(graph)
        logger.debug("gathering from the weight file: %s", ", ".join(edited))
    return edited
