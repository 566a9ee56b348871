"""multilingual-e5-small as an ONNX encoder graph, written node by node from the E5S1 tensors (no torch).

Inputs input_ids and attention_mask (int64 [batch, sequence]); output last_hidden_state (float32 [batch, sequence,
384]). It computes what e5.c's forward_batch computes: word + position (0-based, as e5.c counts) + token-type-0
embeddings, LayerNorm, then 12 post-norm BERT layers (erf GELU), with padding masked out of attention.

Precision, per part:
- the 250,037 x 384 word-embedding table ("table"): "q4" keeps the file's 4-bit blocks (packed nibbles and fp16
  scales, unpacked in the graph for the gathered rows only: exact, 54 MB), "fp16" or "fp32" store it dequantized;
- the layers' matrices ("matmul"): "fp32" stores them dequantized (exact values, fp32 products), "q4" keeps the
  4-bit blocks in com.microsoft MatMulNBits (exact weights; `accuracy_level` 4 quantizes activations to int8 per
  block, as e5.c does).
"""

from __future__ import annotations

import numpy as np
import onnx
from e5_format import BLOCK, E5File
from onnx import TensorProto, helper, numpy_helper

OPSET = 17
MS_DOMAIN = "com.microsoft"


class _Graph:
    def __init__(self) -> None:
        self.nodes: list[onnx.NodeProto] = []
        self.inits: list[onnx.TensorProto] = []
        self._n = 0

    def const(self, name: str, value: np.ndarray) -> str:
        self.inits.append(numpy_helper.from_array(np.ascontiguousarray(value), name))
        return name

    def op(self, op_type: str, inputs: list[str], domain: str | None = None, **attrs) -> str:
        self._n += 1
        out = f"{op_type.lower()}_{self._n}"
        self.nodes.append(helper.make_node(op_type, inputs, [out], name=f"n{self._n}", domain=domain, **attrs))
        return out


def _word_embeddings(g: _Graph, f: E5File, ids: str, table: str) -> str:
    h = f.hidden
    if table in ("fp32", "fp16"):
        dtype = np.float32 if table == "fp32" else np.float16
        rows = g.op("Gather", [g.const("word", f.dequantize("emb.word", f.vocab_rows, h).astype(dtype)), ids])
        return rows if table == "fp32" else g.op("Cast", [rows], to=TensorProto.FLOAT)
    if table != "q4":
        raise ValueError(f"unknown table precision {table!r}")
    nibbles, scales = f.q4("emb.word", f.vocab_rows, h)
    blocks = h // BLOCK
    # Two nibbles a byte, weight j of a block low and j + 16 high (the file's own order, so 0..15 then 16..31).
    pairs = nibbles.reshape(f.vocab_rows, blocks, 2, 16)
    packed = (pairs[:, :, 0, :] | (pairs[:, :, 1, :] << 4)).astype(np.uint8).reshape(f.vocab_rows, blocks * 16)
    got = g.op("Gather", [g.const("word_q4", packed), ids])  # [b, s, blocks*16] uint8
    got = g.op("Reshape", [got, g.const("blocks_shape", np.array([0, 0, blocks, 16], np.int64))])
    x = g.op("Cast", [got], to=TensorProto.FLOAT)
    high = g.op("Floor", [g.op("Mul", [x, g.const("sixteenth", np.array(1 / 16, np.float32))])])
    low = g.op("Sub", [x, g.op("Mul", [high, g.const("sixteen", np.array(16, np.float32))])])
    q = g.op("Concat", [low, high], axis=-1)  # [b, s, blocks, 32]
    q = g.op("Sub", [q, g.const("eight", np.array(8, np.float32))])
    scale = g.op("Cast", [g.op("Gather", [g.const("word_scale", scales), ids])], to=TensorProto.FLOAT)
    scale = g.op("Unsqueeze", [scale, g.const("last_axis", np.array([-1], np.int64))])
    values = g.op("Mul", [q, scale])
    return g.op("Reshape", [values, g.const("hidden_shape", np.array([0, 0, h], np.int64))])


def _linear(g: _Graph, f: E5File, x: str, name: str, rows: int, cols: int, matmul: str, accuracy: int) -> str:
    """x @ W^T + b for the file's W [rows=out, cols=in]."""
    bias = g.const(f"{name}.b", f.f32(f"{name}.b", (rows,)))
    if matmul == "fp32":
        weight = g.const(f"{name}.w", np.ascontiguousarray(f.dequantize(f"{name}.w", rows, cols).T))
        return g.op("Add", [g.op("MatMul", [x, weight]), bias])
    if matmul != "q4":
        raise ValueError(f"unknown matmul precision {matmul!r}")
    nibbles, scales = f.q4(f"{name}.w", rows, cols)
    blocks = cols // BLOCK
    pairs = nibbles.reshape(rows, blocks, BLOCK // 2, 2)  # MatMulNBits: element 2i low nibble, 2i + 1 high
    packed = (pairs[..., 0] | (pairs[..., 1] << 4)).astype(np.uint8)
    weight = g.const(f"{name}.w_q4", packed)
    scale = g.const(f"{name}.w_scale", scales.astype(np.float32).reshape(-1))
    out = g.op(
        "MatMulNBits", [x, weight, scale], domain=MS_DOMAIN,
        K=cols, N=rows, bits=4, block_size=BLOCK, accuracy_level=accuracy,
    )  # fmt: skip
    return g.op("Add", [out, bias])


def _layer_norm(g: _Graph, f: E5File, x: str, name: str) -> str:
    h = f.hidden
    return g.op(
        "LayerNormalization",
        [x, g.const(f"{name}.w", f.f32(f"{name}.w", (h,))), g.const(f"{name}.b", f.f32(f"{name}.b", (h,)))],
        axis=-1,
        epsilon=f.eps,
    )


def build_graph(f: E5File, table: str = "q4", matmul: str = "fp32", accuracy: int = 0) -> onnx.ModelProto:
    g = _Graph()
    h, heads = f.hidden, f.heads
    head_dim = h // heads
    ids, mask = "input_ids", "attention_mask"

    x = _word_embeddings(g, f, ids, table)
    # Rows 0 .. sequence-1 of the position table (1-D Slice bounds: ORT's Gather-to-Slice rewrite of a Range with
    # scalar bounds fails at run time).
    one, two = g.const("one", np.array([1], np.int64)), g.const("two", np.array([2], np.int64))
    seq = g.op("Slice", [g.op("Shape", [ids]), one, two])
    pos_table = f.f32("emb.pos", (f.max_positions, h)) + f.f32("emb.type", (f.type_rows, h))[0]  # type id is 0
    zero = g.const("zero", np.array([0], np.int64))
    x = g.op("Add", [x, g.op("Slice", [g.const("pos_and_type", pos_table), zero, seq, zero])])
    x = _layer_norm(g, f, x, "emb.ln")

    # Additive mask [b, 1, 1, s]: 0 where attended, the float minimum where padding.
    keep = g.op("Cast", [mask], to=TensorProto.FLOAT)
    padding = g.op("Sub", [g.const("f_one", np.array(1, np.float32)), keep])
    bias = g.op("Mul", [padding, g.const("f_min", np.array(np.finfo(np.float32).min, np.float32))])
    bias = g.op("Unsqueeze", [bias, g.const("mask_axes", np.array([1, 2], np.int64))])
    split_heads = g.const("heads_shape", np.array([0, 0, heads, head_dim], np.int64))
    merged = g.const("merged_shape", np.array([0, 0, h], np.int64))
    scale = g.const("attn_scale", np.array(1 / np.sqrt(head_dim), np.float32))
    g.const("sqrt2", np.array(np.sqrt(2), np.float32))
    g.const("half", np.array(0.5, np.float32))

    for layer in range(f.layers):
        p = f"l{layer}"

        def lin(inp: str, part: str, rows: int, cols: int, _p: str = p) -> str:
            return _linear(g, f, inp, f"{_p}.{part}", rows, cols, matmul, accuracy)

        q = g.op("Transpose", [g.op("Reshape", [lin(x, "q", h, h), split_heads])], perm=[0, 2, 1, 3])
        k = g.op("Transpose", [g.op("Reshape", [lin(x, "k", h, h), split_heads])], perm=[0, 2, 3, 1])
        v = g.op("Transpose", [g.op("Reshape", [lin(x, "v", h, h), split_heads])], perm=[0, 2, 1, 3])
        scores = g.op("Add", [g.op("Mul", [g.op("MatMul", [q, k]), scale]), bias])
        context = g.op("MatMul", [g.op("Softmax", [scores], axis=-1), v])
        context = g.op("Reshape", [g.op("Transpose", [context], perm=[0, 2, 1, 3]), merged])
        x = _layer_norm(g, f, g.op("Add", [x, lin(context, "ao", h, h)]), f"{p}.aln")
        mid = lin(x, "fi", f.ffn, h)
        # erf GELU in the form ORT fuses (with the bias before it) into one BiasGelu.
        erf = g.op("Erf", [g.op("Div", [mid, "sqrt2"])])
        gelu = g.op("Mul", [g.op("Mul", [mid, g.op("Add", [erf, "f_one"])]), "half"])
        x = _layer_norm(g, f, g.op("Add", [x, lin(gelu, "fo", h, f.ffn)]), f"{p}.oln")

    g.nodes.append(helper.make_node("Identity", [x], ["last_hidden_state"], name="output"))
    graph = helper.make_graph(
        g.nodes,
        "multilingual-e5-small",
        [helper.make_tensor_value_info(n, TensorProto.INT64, ["batch", "sequence"]) for n in (ids, mask)],
        [helper.make_tensor_value_info("last_hidden_state", TensorProto.FLOAT, ["batch", "sequence", h])],
        g.inits,
    )
    opsets = [helper.make_opsetid("", OPSET)] + ([helper.make_opsetid(MS_DOMAIN, 1)] if matmul == "q4" else [])
    model = helper.make_model(graph, opset_imports=opsets, producer_name="ortserve model_build e5")
    model.ir_version = 8
    return model
