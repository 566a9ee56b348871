"""Which kind of traffic grows the chat service's resident memory, and how much stays: one chat service serving one
model alone, the traffic bench's phases one after another (bench/traffic_prompts.py), its RSS and peak RSS read from
/proc after each, once the engine is idle again.

    python -m bench.memory_phases [--model qwen2.5-coder-0.5b-instruct]
    MALLOC_MMAP_THRESHOLD_=65536 MALLOC_TRIM_THRESHOLD_=131072 python -m bench.memory_phases   # glibc told to give back

The service inherits this process's environment, so glibc's malloc tunables set here reach it. Prints one line per
phase: RSS and peak in MB, and the prefix cache's blocks.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
import tempfile
from pathlib import Path

import httpx
from ortserve_common.models_dir import models_dir

from bench import clients, traffic_prompts
from bench.clients import ChatTarget
from bench.local_stack import SoloChat
from bench.peers import rss_mb

LOOKUP = {"speculative": {"method": "ngram"}}
PHASES = [  # name, prompt maker, streams, max_tokens, sampler fields (None: greedy; {}: the model's defaults)
    ("short questions, 8 streams, greedy", traffic_prompts.question, 8, 128, None),
    ("short questions, 8 streams, defaults", traffic_prompts.question, 8, 128, {}),
    ("long answers, 8 streams", traffic_prompts.long_answer, 8, 320, {}),
    ("code edits, 8 streams", traffic_prompts.code_edit, 8, 400, {}),
    ("code edits, 1 stream, prompt lookup", traffic_prompts.code_edit, 1, 400, LOOKUP),
    ("code edits, 8 streams, prompt lookup", traffic_prompts.code_edit, 8, 400, LOOKUP),
]


def prefix_blocks(url: str) -> str:
    for line in httpx.get(url + "/metrics", timeout=10).text.splitlines():
        if line.startswith("ortserve_engine_prefix_cache_blocks"):
            return line.rsplit(" ", 1)[1]
    return "-"


async def measure(model: str) -> list[str]:
    settings = {"CHAT_MODEL_ID": model, "CHAT_MAX_MODEL_LEN": "4096"}  # as the manifest serves the Qwen models
    with tempfile.TemporaryDirectory() as run_dir, SoloChat(Path(run_dir), models_dir() / model, settings) as chat:
        target = ChatTarget("chat", chat.url + "/v1", model)
        lines = [f"| after start | {rss_mb(chat.pid)['rss_mb']:.0f} | {rss_mb(chat.pid)['peak_mb']:.0f} | 0 |"]
        for name, prompt, streams, max_tokens, sampling in PHASES:
            conversations = [prompt(i) for i in range(max(4, streams))]
            await clients.closed_loop_chat(target, conversations, streams, max_tokens, sampling)
            memory = rss_mb(chat.pid)
            lines.append(f"| {name} | {memory['rss_mb']:.0f} | {memory['peak_mb']:.0f} | {prefix_blocks(chat.url)} |")
        return lines


def main() -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="qwen2.5-coder-0.5b-instruct")
    args = parser.parse_args()
    rows = asyncio.run(measure(args.model))
    header = ["| after | RSS MB | peak RSS MB | prefix cache blocks |", "|---|---|---|---|"]
    sys.stdout.write("\n".join([*header, *rows]) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
