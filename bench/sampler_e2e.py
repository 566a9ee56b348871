"""What sampling costs a real model's throughput: the batched engine in-process (no HTTP), Qwen2.5-Coder-0.5B, with
the model's default samplers (temperature 0.7, top_p 0.8, top_k 20, repetition_penalty 1.05) against greedy, with
this tree's sampler against a baseline commit's (bench.sampler_cost loads it from git), at 1 and 8 streams.

Every configuration runs once per round, in an order rotated round to round, so a neighbour's load falls on all of
them; the report gives each one's median aggregate tok/s (tokens over the wall time from the first request sent to
the last token) and the ratios that matter: sampled over greedy with each sampler, and new over old. The aggregate
also counts answer lengths: a sampled answer that stops early leaves its streams' last steps with fewer rows. So the
report gives each configuration's time per token after the first too (the median stream's, median over rounds),
which counts only what each step cost while the stream decoded.

    .venv/bin/python -m bench.sampler_e2e
    .venv/bin/python -m bench.sampler_e2e --rounds 5 --max-tokens 128
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import math
import statistics
import time
from dataclasses import dataclass, replace
from pathlib import Path

from chat_service.engine.batched import scheduler
from chat_service.engine.batched.engine import BatchedEngine
from chat_service.engine.config import EngineConfig
from chat_service.engine.model_folder import ModelFolder
from chat_service.engine.sampler import TokenSampler
from chat_service.engine.types import GenerationRequest, SamplingParams
from ortserve_common.cpu import engine_threads, host_cpu
from ortserve_common.models_dir import models_dir

from bench.sampler_cost import BASELINE, QWEN, baseline_sampler

logger = logging.getLogger("bench.sampler_e2e")

MODEL = models_dir() / "qwen2.5-coder-0.5b-instruct"
PROMPTS = [
    "Write a Python class for a bank account with deposit, withdraw, transfer and a history of transactions.",
    "Implement a linked list in Python with insert, delete, reverse and search, with docstrings.",
    "Write a JavaScript function that debounces another function, and explain how it works step by step.",
    "Write a SQL schema for a library: books, authors, members and loans, with indexes, then three queries.",
    "Implement binary search, merge sort and quicksort in Python, each with a short explanation.",
    "Write a Rust program that reads a file line by line and counts the words, with error handling.",
    "Write a small Flask application with routes to create, list, update and delete todo items.",
    "Explain the difference between processes and threads, then show a Python example of each.",
]


@dataclass(frozen=True)
class Run:
    tok_s: float  # aggregate: every stream's tokens over the wall time of the run
    ms_per_token: float  # the median stream's time per token after its first (NaN when no stream made two)


async def _one(engine: BatchedEngine, prompt: list[int], sampling: SamplingParams, max_tokens: int) -> list[float]:
    """When each token arrived."""
    return [time.perf_counter() async for _ in engine.generate(GenerationRequest(prompt, max_tokens, sampling))]


def run_once(engine, prompts: list[list[int]], sampling: SamplingParams | None, max_tokens: int) -> Run:
    """len(prompts) concurrent streams; sampled streams seeded, so each round repeats its work."""

    async def together() -> list[list[float]]:
        jobs = [
            _one(engine, p, SamplingParams(temperature=0.0) if sampling is None else _seeded(sampling, i), max_tokens)
            for i, p in enumerate(prompts)
        ]
        return await asyncio.gather(*jobs)

    start = time.perf_counter()
    arrivals = asyncio.run(together())
    wall = time.perf_counter() - start
    per_token = [(a[-1] - a[0]) / (len(a) - 1) * 1000 for a in arrivals if len(a) > 1]
    return Run(sum(map(len, arrivals)) / wall, statistics.median(per_token) if per_token else math.nan)


def _seeded(sampling: SamplingParams, seed: int) -> SamplingParams:
    return replace(sampling, seed=seed)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", type=Path, default=MODEL)
    parser.add_argument("--baseline", default=BASELINE)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--max-tokens", type=int, default=96)
    parser.add_argument("--streams", type=int, nargs="+", default=[1, 8])
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    samplers = {"old": baseline_sampler(args.baseline), "new": TokenSampler}
    threads = engine_threads(None)
    config = EngineConfig(threads=threads, max_model_len=1024, slots=max(args.streams))
    inner = ModelFolder(args.model, config.max_model_len)
    engine = BatchedEngine(inner, config)
    tokenizer = inner.tokenizer
    prompts = [tokenizer.encode(tokenizer.apply_chat_template([{"role": "user", "content": p}])) for p in PROMPTS]
    configs = [(n, mode, side) for n in args.streams for mode in ("greedy", "defaults") for side in ("old", "new")]
    results: dict[tuple[int, str, str], list[Run]] = {c: [] for c in configs}
    logger.info("CPU: %s; %d engine threads", host_cpu().describe(), threads)
    logger.info(
        "model %s, %d tokens a stream, %d rounds; old: TokenSampler at %s",
        args.model.name,
        args.max_tokens,
        args.rounds,
        args.baseline,
    )
    try:
        run_once(engine, prompts[:1], None, 8)  # warm-up: sessions, allocator, KV growth
        for round_ in range(args.rounds):
            shift = round_ % len(configs)
            for n, mode, side in configs[shift:] + configs[:shift]:
                scheduler.TokenSampler = samplers[side]  # type: ignore[misc,assignment]  # read at each admission
                run = run_once(engine, prompts[:n], None if mode == "greedy" else QWEN, args.max_tokens)
                results[(n, mode, side)].append(run)
                logger.info(
                    "round %d: %d streams, %s, %s sampler: %.1f tok/s, %.1f ms a token after the first",
                    round_, n, mode, side, run.tok_s, run.ms_per_token,
                )  # fmt: skip
    finally:
        scheduler.TokenSampler = TokenSampler  # type: ignore[misc]
        engine.close()
    median = {c: statistics.median(r.tok_s for r in v) for c, v in results.items()}
    ms = {c: statistics.median(r.ms_per_token for r in v) for c, v in results.items()}
    logger.info(
        "| streams | sampler | greedy tok/s | defaults tok/s | defaults / greedy "
        "| greedy ms/token | defaults ms/token | defaults / greedy by time per token |"
    )
    logger.info("|---|---|---|---|---|---|---|---|")
    for n in args.streams:
        for side in ("old", "new"):
            g, d = median[(n, "greedy", side)], median[(n, "defaults", side)]
            g_ms, d_ms = ms[(n, "greedy", side)], ms[(n, "defaults", side)]
            logger.info(
                "| %d | %s | %.1f | %.1f | %.2f× | %.1f | %.1f | %.2f× |", n, side, g, d, d / g, g_ms, d_ms, g_ms / d_ms
            )
        logger.info(
            "| %d | new / old | %.2f× | %.2f× | | | | %.2f× |",
            n,
            median[(n, "greedy", "new")] / median[(n, "greedy", "old")],
            median[(n, "defaults", "new")] / median[(n, "defaults", "old")],
            ms[(n, "defaults", "old")] / ms[(n, "defaults", "new")],
        )


if __name__ == "__main__":
    main()
