"""The float16 KV cache's cost in answer quality: perplexity over the quality gate's corpus and windows, the batched
engine's graph with its KV in float32 (as built) and in float16 (engine/batched/half_kv.py), the same token ids.

    python -m bench.quality.kv_dtype [--models ID …] [--context 512] [--stride 256]

Each window runs from an empty cache in one call, so every attention in it reads keys and values the float16 graph
has rounded, as a decode step over a float16 cache does. Prints a markdown table (model, text, both perplexities
and their ratio) with the CPU; the int4 model's own gate against fp32 and llama.cpp is `make quality`.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
from chat_service.engine.batched.decoder import float_type
from chat_service.engine.batched.gathered_logits import EXTERNAL_DATA_FOLDER_KEY, read_graph
from chat_service.engine.batched.half_kv import half_kv_model
from ortserve_common.cpu import engine_threads, host_cpu
from ortserve_common.models_dir import models_dir

from bench.quality.corpus import corpus
from bench.quality.int4 import Int4Model
from bench.quality.perplexity import Score, score

MODELS = ["smollm2-135m-instruct", "qwen2.5-coder-0.5b-instruct"]
logger = logging.getLogger("bench.quality.kv_dtype")


class GraphLogits:
    """Every position's logits of one window, from the model folder's graph run directly (no past)."""

    def __init__(self, folder: Path, graph: onnx.ModelProto, threads: int) -> None:
        decoder = json.loads((folder / "genai_config.json").read_text())["model"]["decoder"]
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        options.add_session_config_entry(EXTERNAL_DATA_FOLDER_KEY, str(folder))
        self.session = ort.InferenceSession(graph.SerializeToString(), options, providers=["CPUExecutionProvider"])
        shape = (1, int(decoder["num_key_value_heads"]), 0, int(decoder["head_size"]))
        self.empty = {
            i.name: np.zeros(shape, float_type(i))
            for i in self.session.get_inputs()
            if i.name.startswith("past_key_values.")
        }

    def logits(self, window: list[int]) -> np.ndarray:
        ids = np.asarray([window], np.int64)
        feeds = {"input_ids": ids, "attention_mask": np.ones_like(ids), **self.empty}
        return self.session.run(["logits"], feeds)[0][0]


def measure(model: str, context: int, stride: int, threads: int) -> list[tuple[str, Score, Score]]:
    folder = models_dir() / model
    graph = read_graph(folder / "model.onnx")
    tokenizer = Int4Model(folder, threads)  # the served tokenizer, as make quality tokenizes
    full, half = GraphLogits(folder, graph, threads), GraphLogits(folder, half_kv_model(graph), threads)
    rows = []
    for text in corpus():
        ids = tokenizer.encode(text.body)
        rows.append((text.name, score(ids, context, stride, full.logits), score(ids, context, stride, half.logits)))
        logger.info("%s %s: %.4f → %.4f", model, text.name, rows[-1][1].perplexity, rows[-1][2].perplexity)
    return rows


def main() -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", default=MODELS)
    parser.add_argument("--context", type=int, default=512, help="tokens per window, as make quality")
    parser.add_argument("--stride", type=int, default=256, help="tokens scored per window, as make quality")
    args = parser.parse_args()
    threads = engine_threads(None)
    lines = [
        f"CPU: {host_cpu().describe()}; windows of {args.context} tokens, the last {args.stride} scored",
        "",
        "| model | text | KV float32 | KV float16 | float16 / float32 |",
        "|---|---|---|---|---|",
    ]
    for model in args.models:
        rows = measure(model, args.context, args.stride, threads)
        total = [Score(0.0, 0), Score(0.0, 0)]
        for name, full, half in rows:
            lines.append(
                f"| {model} | {name} | {full.perplexity:.4f} | {half.perplexity:.4f} | "
                f"{half.perplexity / full.perplexity:.4f} |"
            )
            total = [total[0] + full, total[1] + half]
        lines.append(
            f"| {model} | all | {total[0].perplexity:.4f} | {total[1].perplexity:.4f} | "
            f"{total[1].perplexity / total[0].perplexity:.4f} |"
        )
    sys.stdout.write("\n".join(lines) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
