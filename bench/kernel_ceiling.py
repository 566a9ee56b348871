"""What the int4 kernels allow 8 streams to gain over one on this CPU: the plain ONNX Runtime GenAI loop, in this
process, timing decode steps of the same prompt at batch 1 and at batch `rows` (no server, no sampler, no scheduler).

    python -m bench.kernel_ceiling --model qwen2.5-coder-0.5b-instruct [--rows 8] [--steps 48]

A decode step costs t(1) for one row and t(rows) for `rows` rows; the aggregate speed-up the kernels allow is
rows · t(1) / t(rows). bench/traffic.py runs it after its servers have stopped and scores the measured 8-over-1
against it: a server can approach this ceiling, not pass it.
"""

from __future__ import annotations

import argparse
import json
import logging
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import onnxruntime_genai as og
from ortserve_common.cpu import usable_cores
from ortserve_common.models_dir import models_dir
from ortserve_testing.plain_engine import PlainGenerator

from bench import traffic_prompts

logger = logging.getLogger("bench.kernel_ceiling")


def step_times_ms(plain: PlainGenerator, ids: np.ndarray, steps: int) -> list[float]:
    """Each decode step's wall time after the prefill, greedy, for the rows of ids; min_length keeps EOS away so
    every step has every row in it."""
    params = og.GeneratorParams(plain.model)
    length = ids.shape[1] + steps + 1
    params.set_search_options(batch_size=ids.shape[0], max_length=length, min_length=length, do_sample=False)
    generator = og.Generator(plain.model, params)
    generator.append_tokens(ids)
    times = []
    for _ in range(steps):
        start = time.perf_counter()
        generator.generate_next_token()
        times.append(1000 * (time.perf_counter() - start))
    return times


def measure(model_path: Path, rows: int = 8, steps: int = 48, repeats: int = 3, threads: int | None = None) -> dict:
    """{step_ms_1, step_ms_rows, rows, ceiling}: median step times over interleaved repeats and the ceiling."""
    threads = threads or usable_cores()
    plain = PlainGenerator(model_path, threads=threads)
    prompt = np.asarray([plain.encode(plain.chat_prompt(traffic_prompts.question(0)))], dtype=np.int32)
    one, many = [], []
    step_times_ms(plain, prompt, 4)  # warm-up: allocation and prepacking
    for _ in range(repeats):
        one += step_times_ms(plain, prompt, steps)[1:]  # the first only samples the prefill's logits
        many += step_times_ms(plain, np.repeat(prompt, rows, axis=0), steps)[1:]
    t1, tn = statistics.median(one), statistics.median(many)
    result = {"rows": rows, "step_ms_1": t1, "step_ms_rows": tn, "ceiling": rows * t1 / tn, "threads": threads}
    logger.info("decode step %.2f ms at 1 row, %.2f ms at %d rows: ceiling %.2f×", t1, tn, rows, result["ceiling"])
    return result


def main() -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="qwen2.5-coder-0.5b-instruct")
    parser.add_argument("--rows", type=int, default=8)
    parser.add_argument("--steps", type=int, default=48)
    args = parser.parse_args()
    sys.stdout.write(json.dumps(measure(models_dir() / args.model, args.rows, args.steps), indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
