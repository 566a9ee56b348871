"""Which kind of traffic grows the chat service's resident memory, how much stays, and what glibc's malloc settings
(CHAT_MALLOC_MMAP_THRESHOLD_KB, CHAT_MALLOC_TRIM_THRESHOLD_KB, CHAT_MALLOC_ARENA_MAX) cost in speed: one chat service
serving one model alone, the traffic bench's phases one after another (bench/traffic_prompts.py), its RSS and peak
RSS read from /proc after each, once the engine is idle again, and each phase's output tokens per second.

    python -m bench.memory_phases [--model qwen2.5-coder-0.5b-instruct] [--repeats 2] [--arms default thresholds …]

Arms: `default` runs the service's defaults (8 MB malloc thresholds, two arenas, a float16 KV cache; `kv-float32`
the graph's float32 one); `glibc` glibc's own thresholds and arenas (its mmap threshold rises to 32 MB; 8 arenas a
core), the service's defaults until 2026-12-08, which the arms below changed one by one. `thresholds` sets a 64 KB
mmap threshold and a 128 KB trim threshold (arenas as glibc's); `thresholds-8m` 8 MB for both; `arenas-2` caps
glibc's arenas at two (MALLOC_ARENA_MAX, thresholds as glibc's); `thresholds-8m-arenas-2` (today's defaults, named)
and `-4` the 8 MB thresholds with the service's own cap (CHAT_MALLOC_ARENA_MAX) at two or four. Each repeat starts a
fresh service per arm, the order rotated repeat to repeat. Sampled phases send a fixed seed. Prints a markdown table
per arm (the last repeat's memory) and each phase's tok/s ratio, each arm over default, median over repeats.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import statistics
import sys
import tempfile
from pathlib import Path

import httpx
from ortserve_common.models_dir import models_dir

from bench import clients, traffic_prompts
from bench.clients import ChatTarget
from bench.local_stack import SoloChat
from bench.peers import rss_mb

JEMALLOC = "/usr/lib/x86_64-linux-gnu/libjemalloc.so.2"
SEED = {"seed": 11}  # the model's default samplers, with a seed: both arms decode the same answers
LOOKUP = {"speculative": {"method": "ngram"}, **SEED}
PHASES = [  # name, prompt maker, streams, max_tokens, sampler fields (None: greedy)
    ("short questions, 8 streams, greedy", traffic_prompts.question, 8, 128, None),
    ("short questions, 8 streams, defaults", traffic_prompts.question, 8, 128, SEED),
    ("long answers, 8 streams", traffic_prompts.long_answer, 8, 320, SEED),
    ("long answers, 1 stream", traffic_prompts.long_answer, 1, 320, SEED),
    ("code edits, 8 streams", traffic_prompts.code_edit, 8, 400, SEED),
    ("code edits, 1 stream, prompt lookup", traffic_prompts.code_edit, 1, 400, LOOKUP),
    ("code edits, 8 streams, prompt lookup", traffic_prompts.code_edit, 8, 400, LOOKUP),
]
GLIBC_THRESHOLDS = {"CHAT_MALLOC_MMAP_THRESHOLD_KB": "", "CHAT_MALLOC_TRIM_THRESHOLD_KB": ""}
GLIBC_ARENAS = {"CHAT_MALLOC_ARENA_MAX": ""}
# Above a verify call's logits (5.5 MB at 8 drafts on Qwen's vocabulary), below a 512-token chunk's activations.
THRESHOLDS_8M = {"CHAT_MALLOC_MMAP_THRESHOLD_KB": "8192", "CHAT_MALLOC_TRIM_THRESHOLD_KB": "8192"}
ARMS = {
    "default": {},  # the service's defaults
    # glibc's own thresholds and arenas: the service's defaults before 2026-12-08 (the earlier "default" rows).
    "glibc": {**GLIBC_THRESHOLDS, **GLIBC_ARENAS},
    "thresholds": {"CHAT_MALLOC_MMAP_THRESHOLD_KB": "64", "CHAT_MALLOC_TRIM_THRESHOLD_KB": "128", **GLIBC_ARENAS},
    "thresholds-8m": {**THRESHOLDS_8M, **GLIBC_ARENAS},
    # glibc's arenas: one per thread that allocates, up to 8 per core, each keeping what its thread freed.
    "arenas-2": {**GLIBC_THRESHOLDS, **GLIBC_ARENAS, "MALLOC_ARENA_MAX": "2"},
    "thresholds-8m-arenas-2": {**THRESHOLDS_8M, "CHAT_MALLOC_ARENA_MAX": "2"},
    "thresholds-8m-arenas-4": {**THRESHOLDS_8M, "CHAT_MALLOC_ARENA_MAX": "4"},
    # jemalloc (Debian's libjemalloc2) in glibc's place: it gives freed pages back after a decay time (10 s by default).
    "jemalloc": {**GLIBC_THRESHOLDS, **GLIBC_ARENAS, "LD_PRELOAD": JEMALLOC},
    "jemalloc-1s": {
        **GLIBC_THRESHOLDS,
        **GLIBC_ARENAS,
        "LD_PRELOAD": JEMALLOC,
        "MALLOC_CONF": "background_thread:true,dirty_decay_ms:1000",
    },
    # The KV cache (and the prefix cache's blocks) in the graph's float32, twice the bytes a position of the service's
    # float16 default (kv-float16 names that default explicitly, for runs that compare the two).
    "kv-float32": {"CHAT_KV_CACHE_DTYPE": "float32"},
    "kv-float16": {"CHAT_KV_CACHE_DTYPE": "float16"},
}


def prefix_blocks(url: str) -> str:
    for line in httpx.get(url + "/metrics", timeout=10).text.splitlines():
        if line.startswith("ortserve_engine_prefix_cache_blocks"):
            return line.rsplit(" ", 1)[1]
    return "-"


async def measure(model: str, arm: str) -> list[dict]:
    """One fresh service under `arm`: a row per phase (and one after start) with RSS, peak, blocks and tok/s."""
    settings = {"CHAT_MODEL_ID": model, "CHAT_MAX_MODEL_LEN": "4096", **ARMS[arm]}  # as the manifest serves Qwen
    with tempfile.TemporaryDirectory() as run_dir, SoloChat(Path(run_dir), models_dir() / model, settings) as chat:
        target = ChatTarget("chat", chat.url + "/v1", model)
        rows = [{"phase": "after start", **rss_mb(chat.pid), "blocks": "0", "tok_s": None}]
        for name, prompt, streams, max_tokens, sampling in PHASES:
            conversations = [prompt(i) for i in range(max(4, streams))]
            phase = await clients.closed_loop_chat(target, conversations, streams, max_tokens, sampling)
            failed = [r.error for r in phase.records if r.error]
            if failed:
                raise RuntimeError(f"{name}: {failed[0]}")
            rows.append(
                {"phase": name, **rss_mb(chat.pid), "blocks": prefix_blocks(chat.url), "tok_s": phase.output_tok_s}
            )
        return rows


def main() -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="qwen2.5-coder-0.5b-instruct")
    parser.add_argument("--repeats", type=int, default=1)
    parser.add_argument("--arms", nargs="+", choices=sorted(ARMS), default=["thresholds", "default"])
    args = parser.parse_args()
    runs: dict[str, list[list[dict]]] = {arm: [] for arm in args.arms}
    for repeat in range(args.repeats):
        order = args.arms[repeat % len(args.arms) :] + args.arms[: repeat % len(args.arms)]
        for arm in order:
            logging.info("repeat %d, arm %s", repeat + 1, arm)
            runs[arm].append(asyncio.run(measure(args.model, arm)))
    out = []
    for arm, repeats in runs.items():
        out += [
            f"\n{arm}:",
            "| after | RSS MB | peak RSS MB | prefix cache blocks | output tok/s |",
            "|---|---|---|---|---|",
        ]
        for row in repeats[-1]:
            tok_s = "" if row["tok_s"] is None else f"{row['tok_s']:.1f}"
            out.append(f"| {row['phase']} | {row['rss_mb']:.0f} | {row['peak_mb']:.0f} | {row['blocks']} | {tok_s} |")
    for arm in (arm for arm in runs if arm != "default" and "default" in runs):
        out += [
            f"\ntok/s, {arm} / default (median of paired repeats):",
            "| phase | ratio | per repeat |",
            "|---|---|---|",
        ]
        for index, (name, *_) in enumerate(PHASES, start=1):
            ratios = [t[index]["tok_s"] / g[index]["tok_s"] for t, g in zip(runs[arm], runs["default"], strict=True)]
            per_repeat = ", ".join(f"{ratio:.3f}" for ratio in ratios)
            out.append(f"| {name} | {statistics.median(ratios):.3f} | {per_repeat} |")
    sys.stdout.write("\n".join(out) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
