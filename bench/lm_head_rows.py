"""Whether a model's lm_head (its int4 MatMulNBits, its own weights, alone in a graph) gives a row the same logits at 1,
2 and 8 rows on this CPU: why the batched engine's prefill reads two positions where it needs one
(engine/batched/decoder.py, `_last_two`; docs/ENGINE_DESIGNS.md, "Logits only where they are read").

    .venv/bin/python -m bench.lm_head_rows --model ~/.cache/ortserve/models/r<recipe>/smollm2-135m-instruct
    qemu-x86_64 -cpu Haswell .venv/bin/python -m bench.lm_head_rows --model … --cpu "Haswell (qemu)"   # AVX2 only
"""

from __future__ import annotations

import argparse
import json
import logging
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
from onnx import TensorProto, helper
from ortserve_common.cpu import host_cpu

logger = logging.getLogger("bench.lm_head_rows")
ROWS = 8


def lm_head_session(model_path: Path) -> tuple[ort.InferenceSession, int]:
    """A session of the lm_head node alone (the node producing `logits`), and its input width."""
    config = json.loads((model_path / "genai_config.json").read_text(encoding="utf-8"))
    model = onnx.load(str(model_path / config["model"]["decoder"]["filename"]))
    lm_head = next(node for node in model.graph.node if "logits" in node.output)
    attributes = {a.name: helper.get_attribute_value(a) for a in lm_head.attribute}
    width, vocab = int(attributes["K"]), int(attributes["N"])
    weights = [init for init in model.graph.initializer if init.name in lm_head.input[1:]]
    node = helper.make_node(lm_head.op_type, ["a", *lm_head.input[1:]], ["y"], domain=lm_head.domain, **attributes)
    graph = helper.make_graph(
        [node],
        "lm_head",
        [helper.make_tensor_value_info("a", TensorProto.FLOAT, ["m", width])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["m", vocab])],
        weights,
    )
    alone = helper.make_model(graph, opset_imports=list(model.opset_import), ir_version=model.ir_version)
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    return ort.InferenceSession(alone.SerializeToString(), options, providers=["CPUExecutionProvider"]), width


def measure(model_path: Path, cpu_label: str) -> dict:
    session, width = lm_head_session(model_path)
    rows = np.random.default_rng(0).standard_normal((ROWS, width)).astype(np.float32)
    (full,) = session.run(["y"], {"a": rows})
    (two,) = session.run(["y"], {"a": rows[-2:]})
    (one,) = session.run(["y"], {"a": rows[-1:]})
    return {
        "model": model_path.name,
        "cpu": cpu_label,
        f"max_abs_diff_2_rows_vs_{ROWS}": float(np.max(np.abs(two - full[-2:]))),
        f"max_abs_diff_1_row_vs_{ROWS}": float(np.max(np.abs(one - full[-1:]))),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", type=Path, required=True, help="an int4 model folder (genai_config.json)")
    parser.add_argument("--cpu", help="what to call the CPU (under qemu, /proc/cpuinfo still shows the host's)")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    result = measure(args.model.expanduser(), args.cpu or host_cpu().describe())
    logger.info("%s", json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
