"""The decoder graph with its KV cache in float16, built in memory from the model folder's fp32-activation graph (the
same weight file): half the KV memory, as llama.cpp keeps its cache by default.

GroupQueryAttention takes its past and present in the activations' type, so the edit gives each attention node
float16 operands instead: its query/key/value input (packed or not) and the rotary cos/sin tables are cast to float16
on the way in, its output back to float32 on the way out, and the graph's past_key_values.* inputs and present.*
outputs become float16. Everything else still runs in float32.

onnxruntime's CPU kernel for float16 widens Q, K and V to float32 and computes the scores, softmax and weighted sum in
float32 (contrib_ops/cpu/bert/gqa_attention_base.h), on every ISA alike. What changes is the rounding of Q, K, V and
the attention output to float16, and the rotary embedding applied in float16: Qwen2.5-Coder-0.5B's perplexity rises
by 0.1 % (Python sources) and 0.2 % (prose), docs/ENGINE_DESIGNS.md.
"""

from __future__ import annotations

import onnx
from onnx import TensorProto, helper

from chat_service.engine.batched.gathered_logits import VariantUnavailable

ATTENTION_OP = "GroupQueryAttention"
# GroupQueryAttention's inputs: query, key, value, past_key, past_value, seqlens_k, total_sequence_length,
# cos_cache, sin_cache, position_ids, attention_bias, head_sink.
_ACTIVATIONS = (0, 1, 2)
_PAST = (3, 4)
_ROTARY = (7, 8)
_FLOAT_EXTRAS = (10, 11)  # attention_bias, head_sink: in T too, not cast here (no builder graph of ours has them)


def half_kv_model(source: onnx.ModelProto) -> onnx.ModelProto:
    """A copy of `source` whose attention nodes keep their KV in float16 (`source` stays unchanged).

    VariantUnavailable when the graph is not the float32 GroupQueryAttention shape this edit expects."""
    model = onnx.ModelProto()
    model.CopyFrom(source)
    graph = model.graph
    attention = [node for node in graph.node if node.op_type == ATTENTION_OP]
    if not attention:
        raise VariantUnavailable(f"the graph has no {ATTENTION_OP} node")
    kv_inputs = {name for node in attention for index in _PAST for name in node.input[index : index + 1]}
    kv_outputs = {name for node in attention for name in node.output[1:3]}
    float_io = {info.name: info for info in [*graph.input, *graph.output]}
    for name in kv_inputs | kv_outputs:
        info = float_io.get(name)
        if info is None:
            raise VariantUnavailable(f"{name}, a past or present of the attention, is not a graph input or output")
        if info.type.tensor_type.elem_type != TensorProto.FLOAT:
            raise VariantUnavailable(f"{name} is not float32")
    read_elsewhere = {name for node in graph.node if node.op_type != ATTENTION_OP for name in node.input}
    if read_elsewhere & kv_inputs:
        raise VariantUnavailable("a past KV input is read by a node other than the attention")

    halves: dict[str, str] = {}  # a float32 tensor → its float16 cast, made once however many nodes read it
    nodes: list[onnx.NodeProto] = []

    def half(name: str) -> str:
        if name not in halves:
            halves[name] = f"{name}/float16"
            nodes.append(helper.make_node("Cast", [name], [halves[name]], to=TensorProto.FLOAT16, name=f"{name}/Cast"))
        return halves[name]

    for node in graph.node:
        if node.op_type != ATTENTION_OP:
            nodes.append(node)
            continue
        if any(node.input[index] for index in _FLOAT_EXTRAS if index < len(node.input)):
            raise VariantUnavailable(f"{node.name} takes an attention bias or head sink")
        for index in (*_ACTIVATIONS, *_ROTARY):
            if index < len(node.input) and node.input[index]:
                node.input[index] = half(node.input[index])
        output = node.output[0]
        node.output[0] = f"{output}/float16"
        nodes.append(node)
        nodes.append(
            helper.make_node("Cast", [node.output[0]], [output], to=TensorProto.FLOAT, name=f"{node.name}/CastOut")
        )
    del graph.node[:]
    graph.node.extend(nodes)  # each cast sits just before its first reader: the order stays topological
    for name in kv_inputs | kv_outputs:
        float_io[name].type.tensor_type.elem_type = TensorProto.FLOAT16
    return model
