"""Why the int4 build does not carry a GGUF's own grid: MatMulNBits with float zero points on this CPU.

    python -m bench.quality.zero_points [--k 896] [--n 4864] [--threads 2] [--rounds 15]

Q4_1 and Q4_K store blocks of 32 as x = q · scale + min. MatMulNBits reads x = (q − zp) · scale, so keeping that
grid exactly takes zp = −min / scale, which is no integer: a float zero point. ONNX Runtime's CPU kernel prepacks
its weights only with uint8 zero points; with float ones it dequantizes the whole weight on every call. One node of
one layer's size (Qwen2.5-Coder-0.5B's MLP up projection by default), random weights, both kinds of zero point,
timed interleaved at 1, 8 and 256 rows: the medians and their ratio.
"""

from __future__ import annotations

import argparse
import logging
import statistics
import time

import numpy as np
import onnxruntime as ort
from onnx import TensorProto, helper, numpy_helper
from ortserve_common.cpu import host_cpu

logger = logging.getLogger("bench.quality.zero_points")
BLOCK = 32


def session(k: int, n: int, zero_points: np.ndarray, weights: np.ndarray, scales: np.ndarray, threads: int):
    initializers = [numpy_helper.from_array(a, name) for a, name in ((weights, "B"), (scales, "s"), (zero_points, "z"))]
    node = helper.make_node(
        "MatMulNBits", ["A", "B", "s", "z"], ["Y"], domain="com.microsoft",
        K=k, N=n, bits=4, block_size=BLOCK, accuracy_level=4,
    )  # fmt: skip
    graph = helper.make_graph(
        [node],
        "one_layer",
        [helper.make_tensor_value_info("A", TensorProto.FLOAT, ["M", k])],
        [helper.make_tensor_value_info("Y", TensorProto.FLOAT, ["M", n])],
        initializers,
    )
    model = helper.make_model(
        graph, opset_imports=[helper.make_opsetid("", 17), helper.make_opsetid("com.microsoft", 1)]
    )
    model.ir_version = 9
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    return ort.InferenceSession(model.SerializeToString(), options, providers=["CPUExecutionProvider"])


def main() -> None:
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--k", type=int, default=896)
    parser.add_argument("--n", type=int, default=4864)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=15)
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    blocks = args.k // BLOCK
    weights = rng.integers(0, 256, size=(args.n, blocks, BLOCK // 2), dtype=np.uint8)
    scales = (rng.random(args.n * blocks, dtype=np.float32) * 0.01 + 0.001).astype(np.float32)
    kinds = {
        "uint8": rng.integers(0, 256, size=(args.n * ((blocks + 1) // 2),), dtype=np.uint8),
        "float": (rng.random(args.n * blocks, dtype=np.float32) * 15).astype(np.float32),
    }
    sessions = {kind: session(args.k, args.n, zp, weights, scales, args.threads) for kind, zp in kinds.items()}
    logger.info(
        "CPU: %s; one MatMulNBits of K=%d, N=%d, %d threads", host_cpu().describe(), args.k, args.n, args.threads
    )
    logger.info("| rows | uint8 zero points, ms | float zero points, ms | float / uint8 |")
    logger.info("|---|---|---|---|")
    for rows in (1, 8, 256):
        a = rng.standard_normal((rows, args.k), dtype=np.float32)
        times: dict[str, list[float]] = {kind: [] for kind in sessions}
        for warm in range(args.rounds + 3):
            for kind, s in sessions.items():
                start = time.perf_counter()
                s.run(None, {"A": a})
                if warm >= 3:
                    times[kind].append(time.perf_counter() - start)
        uint8, floats = (statistics.median(times[kind]) * 1e3 for kind in ("uint8", "float"))
        logger.info("| %d | %.3f | %.3f | %.1f× |", rows, uint8, floats, floats / uint8)


if __name__ == "__main__":
    main()
