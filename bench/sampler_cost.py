"""What choosing one token costs the scheduler thread: the sampler of this tree against the one of a baseline commit
(loaded from git, so the figure is the code that shipped), µs per token on Qwen2.5-Coder's 151,936-token rows.

Rows are synthetic: a peaked one (a handful of tokens far ahead, as a model's rows mostly are) and, for top_p alone,
a flat one too (N(0, 3): the nucleus runs to ~6,500 tokens, the costly case). The two samplers run in alternation,
round after round, so a neighbour's load falls on both; the report gives each side's median over the rounds.

    .venv/bin/python -m bench.sampler_cost                       # against e4def56, the last commit before it
    .venv/bin/python -m bench.sampler_cost --baseline HEAD~3 --rounds 15
"""

from __future__ import annotations

import argparse
import logging
import statistics
import subprocess
import sys
import time
import types
from collections.abc import Callable
from pathlib import Path

import numpy as np
from chat_service.engine.sampler import TokenSampler
from chat_service.engine.types import SamplingParams
from ortserve_common.cpu import host_cpu

logger = logging.getLogger("bench.sampler_cost")

ROOT = Path(__file__).resolve().parent.parent
SAMPLER_PATH = "services/chat/chat_service/engine/sampler.py"
BASELINE = "e4def56"
VOCAB = 151936
QWEN = SamplingParams(temperature=0.7, top_p=0.8, top_k=20, repetition_penalty=1.05)


def baseline_sampler(revision: str) -> type:
    """The TokenSampler class as `revision` had it (its module run from git's copy; it imports today's types)."""
    source = subprocess.run(
        ["git", "show", f"{revision}:{SAMPLER_PATH}"], cwd=ROOT, check=True, capture_output=True, text=True
    ).stdout
    module = types.ModuleType(f"baseline_sampler_{revision}")
    sys.modules[module.__name__] = module  # dataclasses and annotations look their module up
    exec(compile(source, f"{revision}:{SAMPLER_PATH}", "exec"), module.__dict__)
    return module.TokenSampler


def rows(kind: str, count: int = 8) -> list[np.ndarray]:
    rng = np.random.default_rng(0)
    out = []
    for _ in range(count):
        x = rng.normal(0, 3 if kind == "flat" else 2, VOCAB).astype(np.float32)
        if kind == "peaked":
            x[rng.choice(VOCAB, 6, replace=False)] = [19.0, 18.2, 17.5, 16.0, 15.1, 14.0]
        out.append(x)
    return out


CASES: list[tuple[str, SamplingParams, int, str]] = [
    ("greedy", SamplingParams(temperature=0.0), 0, "peaked"),
    ("Qwen defaults, 200 seen ids", QWEN, 200, "peaked"),
    ("Qwen defaults, 2000 seen ids", QWEN, 2000, "peaked"),
    ("greedy + repetition 1.1, 2000 seen ids", SamplingParams(temperature=0.0, repetition_penalty=1.1), 2000, "peaked"),
    ("top_p 0.9 alone (T 1)", SamplingParams(temperature=1.0, top_p=0.9), 0, "peaked"),
    ("top_p 0.9 alone (T 1), flat row", SamplingParams(temperature=1.0, top_p=0.9), 0, "flat"),
    ("temperature 1 alone", SamplingParams(temperature=1.0), 0, "peaked"),
]


def per_token_us(factory: Callable[[], object], logits: list[np.ndarray], calls: int) -> float:
    sampler = factory()
    start = time.perf_counter()
    for i in range(calls):
        sampler.sample(logits[i % len(logits)])  # type: ignore[attr-defined]
    return (time.perf_counter() - start) / calls * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--baseline", default=BASELINE, help="the commit whose sampler is the old side")
    parser.add_argument("--rounds", type=int, default=9)
    parser.add_argument("--calls", type=int, default=40, help="tokens sampled per side per round")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    old_class = baseline_sampler(args.baseline)
    row_sets = {kind: rows(kind) for kind in ("peaked", "flat")}
    logger.info("CPU: %s", host_cpu().describe())
    logger.info(
        "old: TokenSampler at %s; new: this tree; %d rounds × %d tokens a side, alternating",
        args.baseline,
        args.rounds,
        args.calls,
    )
    logger.info("| case | old µs/token | new µs/token | old / new |")
    logger.info("|---|---|---|---|")
    for name, params, seen_count, kind in CASES:
        seen = np.random.default_rng(1).choice(VOCAB, seen_count, replace=False).tolist()
        sides: dict[str, list[float]] = {"old": [], "new": []}
        factories = {
            "old": lambda p=params, s=seen: old_class(p, VOCAB, prompt_ids=s),
            "new": lambda p=params, s=seen: TokenSampler(p, VOCAB, prompt_ids=s),
        }
        for round_ in range(args.rounds):
            order = ("old", "new") if round_ % 2 == 0 else ("new", "old")
            for side in order:
                calls = max(4, args.calls // 10) if side == "old" and params.top_p < 1.0 else args.calls
                sides[side].append(per_token_us(factories[side], row_sets[kind], calls))
        old, new = statistics.median(sides["old"]), statistics.median(sides["new"])
        logger.info("| %s | %.0f | %.0f | %.1f× |", name, old, new, old / new)


if __name__ == "__main__":
    main()
