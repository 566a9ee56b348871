"""Time to first token of short chat requests by prefix-cache block size (CHAT_PREFIX_BLOCK_TOKENS), through the
proxy, one request at a time: each request is the model's default system prompt (the chat template adds it when the
request has none) and a new question that starts with a nonce, as bench/traffic.py sends them. Only the system
prompt's whole blocks can be reused, so the block size decides how much of it is.

    python -m bench.prefix_block_size [--model qwen2.5-coder-0.5b-instruct] [--blocks 32 16 8] [--rounds 2]

Each block size gets a stack of its own, the sizes interleaved round by round; the first request of a stack is a
warm-up (it fills the cache). Prints a Markdown table: TTFT p50, prompt and cached tokens (medians).
"""

from __future__ import annotations

import argparse
import json
import logging
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx
from ortserve_common.cpu import host_cpu

from bench import traffic_prompts
from bench.local_stack import LocalStack

logger = logging.getLogger("bench.prefix_block_size")


def ask(client: httpx.Client, url: str, model: str, index: int) -> dict:
    """One streamed greedy request of 8 tokens: TTFT (to the first content delta) and the usage it reports."""
    body = {"model": model, "messages": traffic_prompts.question(index), "max_tokens": 8, "temperature": 0}
    body |= {"stream": True, "stream_options": {"include_usage": True}}
    sent, first, usage = time.perf_counter(), None, dict[str, Any]()
    with client.stream("POST", f"{url}/v1/chat/completions", json=body) as response:
        response.raise_for_status()
        for line in response.iter_lines():
            if not line.startswith("data: {"):
                continue
            chunk = json.loads(line[6:])
            if first is None and chunk["choices"] and chunk["choices"][0]["delta"].get("content"):
                first = time.perf_counter()
            usage = chunk.get("usage") or usage
    if first is None:
        raise RuntimeError("the stream had no content")
    cached = (usage.get("prompt_tokens_details") or {}).get("cached_tokens", 0)
    return {"ttft_ms": 1000 * (first - sent), "prompt_tokens": usage["prompt_tokens"], "cached_tokens": cached}


def measure(model: str, block: int, requests: int) -> list[dict]:
    with (
        tempfile.TemporaryDirectory() as run_dir,
        LocalStack(Path(run_dir), {"CHAT_PREFIX_BLOCK_TOKENS": str(block)}) as stack,
    ):
        headers = {"Authorization": f"Bearer {stack.api_key}"}
        with httpx.Client(timeout=120, verify=stack.ca, headers=headers) as client:
            ask(client, stack.proxy_url, model, 0)  # warm-up: connections, and the system prompt's blocks cached
            return [ask(client, stack.proxy_url, model, i) for i in range(requests)]


def main() -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="qwen2.5-coder-0.5b-instruct")
    parser.add_argument("--blocks", type=int, nargs="+", default=[32, 16, 8])
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--requests", type=int, default=8, help="requests per block size and round")
    args = parser.parse_args()
    runs: dict[int, list[dict]] = {block: [] for block in args.blocks}
    for round_no in range(args.rounds):
        order = args.blocks[round_no % len(args.blocks) :] + args.blocks[: round_no % len(args.blocks)]
        for block in order:
            runs[block] += measure(args.model, block, args.requests)
            logger.info("round %d block %d: TTFT p50 so far %.0f ms", round_no, block, _median(runs[block], "ttft_ms"))
    lines = [
        f"{args.model}, {args.rounds} rounds × {args.requests} requests per block size; CPU: {host_cpu().describe()}",
        "",
        "| CHAT_PREFIX_BLOCK_TOKENS | TTFT p50 ms | prompt tokens | cached tokens |",
        "|---|---|---|---|",
    ]
    for block, rows in runs.items():
        figures = (_median(rows, key) for key in ("ttft_ms", "prompt_tokens", "cached_tokens"))
        lines.append(f"| {block} | " + " | ".join(f"{value:.0f}" for value in figures) + " |")
    sys.stdout.write("\n".join(lines) + "\n")
    return 0


def _median(rows: list[dict], key: str) -> float:
    return statistics.median(row[key] for row in rows)


if __name__ == "__main__":
    sys.exit(main())
