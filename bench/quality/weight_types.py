"""What each side of the quality gate stores its weight matrices in: the share of the weights per type, and the
output matrix's (lm_head) type, the single largest matrix and the one a 4-bit recipe most often keeps wider.

llama-quantize keeps the output matrix at Q6_K (or Q8_0 where rows are no multiple of 256) in a "Q4_0" file, and a
"Q4_K_M" file of rows that are no multiple of 256 is mostly Q5_0: the names alone say less than the files hold.
GGUF files are read with the `gguf` package of the model-build venv (it has no place in the service's), the int4
build's graph with `onnx` (MatMulNBits' and GatherBlockQuantized's `bits`).
"""

from __future__ import annotations

import json
import subprocess
from collections import Counter
from pathlib import Path

import onnx

GGUF_SCRIPT = """
import json, sys
import gguf
reader = gguf.GGUFReader(sys.argv[1])
names = {t.name: (t.tensor_type.name, int(t.n_elements)) for t in reader.tensors if len(t.shape) >= 2}
print(json.dumps(names))
"""


def summary(matrices: dict[str, tuple[str, int]], output: str) -> dict:
    """{"by_type": {type: share of the weights}, "output": the output matrix's type, "elements": weights in all}."""
    counts: Counter[str] = Counter()
    for kind, elements in matrices.values():
        counts[kind] += elements
    total = sum(counts.values())
    shares = {kind: round(count / total, 4) for kind, count in counts.most_common()}
    return {"by_type": shares, "output": matrices[output][0] if output in matrices else "none", "elements": total}


def gguf_types(path: Path, build_python: Path) -> dict:
    done = subprocess.run([str(build_python), "-c", GGUF_SCRIPT, str(path)], capture_output=True, text=True, check=True)
    matrices = {name: (kind, elements) for name, (kind, elements) in json.loads(done.stdout).items()}
    # A model that ties its output to the embedding stores only token_embd.
    output = "output.weight" if "output.weight" in matrices else "token_embd.weight"
    return summary(matrices, output)


def onnx_types(folder: Path) -> dict:
    """The int4 build's MatMulNBits and GatherBlockQuantized weights by bit width; a plain MatMul's fp32 weight
    counts as fp32. The output matrix is the last MatMul-like node (the lm_head, whose table a tied embedding
    shares)."""
    graph = onnx.load(folder / "model.onnx", load_external_data=False).graph
    initializers = {i.name: list(i.dims) for i in graph.initializer}
    matrices: dict[str, tuple[str, int]] = {}
    last = ""
    for node in graph.node:
        attrs = {a.name: onnx.helper.get_attribute_value(a) for a in node.attribute}
        if node.op_type == "MatMulNBits":
            matrices[node.name] = (f"int{attrs['bits']}", int(attrs["K"]) * int(attrs["N"]))
            last = node.name
        elif node.op_type == "MatMul" and node.input[1] in initializers:
            k, n = initializers[node.input[1]][-2:]
            matrices[node.name] = ("fp32", k * n)
            last = node.name
        elif node.op_type == "GatherBlockQuantized" and node.input[0] in initializers:
            rows, packed = initializers[node.input[0]][:2]
            bits = int(attrs.get("bits", 4))
            matrices[node.name] = (f"int{bits}", rows * packed * 8 // bits)
    return summary(matrices, last)


def describe(types: dict) -> str:
    """'int4 92.0 %, int8 8.0 %; output int8'."""
    shares = ", ".join(f"{kind} {share * 100:.1f} %" for kind, share in types["by_type"].items())
    return f"{shares}; output matrix {types['output']}"
