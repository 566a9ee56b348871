"""Decode tok/s of the chat image in a one-CPU container (`docker run --cpus 1`), with its default engine threads
(from the cgroup quota: 1) against threads forced higher (CHAT_ENGINE_THREADS=4, what a count of the host's cores
would give on a bigger host).

    make bench-threads                                       # or: .venv/bin/python -m bench.threads_cgroup
    .venv/bin/python -m bench.threads_cgroup --repeats 5 --forced 2

Each repeat starts one container per setting, the two in alternating order, and streams `--requests` greedy replies
one after the other (single-stream decode: (completion tokens - 1) / (last token - first token), the definition of
bench/clients.py). The CPU that other processes used meanwhile is recorded beside each figure: on a shared machine
it moves them. Raw results: results/bench/threads-cgroup-<time>.json.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import re
import statistics
import sys
import time
from pathlib import Path

from ortserve_testing.containers import IMAGE, MODELS_DIR, ChatContainer

from bench import environment
from bench.clients import ChatTarget, stream_chat
from bench.cpu_monitor import CpuMonitor, wait_for_quiet

ROOT = Path(__file__).resolve().parent.parent
MODEL = "smollm2-135m-instruct"
# Greedy counting runs far past 128 tokens on SmolLM2 without an end of sequence: every reply is max_tokens long.
PROMPT = [{"role": "user", "content": "Count from 1 to 500, separated by commas."}]
logger = logging.getLogger("bench.threads_cgroup")


async def measure(chat: ChatContainer, requests: int, max_tokens: int, quiet_s: float) -> dict:
    target = ChatTarget("one-cpu chat", chat.base_url + "/v1", MODEL)
    monitor = CpuMonitor(lambda: chat.pids() | {os.getpid()})  # the container and this client are "own"
    async with target.client(1) as client:
        await stream_chat(client, target, PROMPT, 8)  # warm-up: first-run allocations are not decode
        await wait_for_quiet(monitor, quiet_s)
        before = chat.cpu_stat()
        monitor.start()
        records = [await stream_chat(client, target, PROMPT, max_tokens) for _ in range(requests)]
        cpu = monitor.stop()
        after = chat.cpu_stat()
    errors = [r.error for r in records if r.error]
    rates = [r.decode_tok_s for r in records if r.decode_tok_s is not None]
    return {
        "decode_tok_s": rates,
        "completion_tokens": [r.completion_tokens for r in records],
        "errors": errors,
        "cpu": cpu.as_dict(),
        # The quota's periods (100 ms each) that ran out before they ended: the process then waits for the next one.
        "periods": after.get("nr_periods", 0) - before.get("nr_periods", 0),
        "throttled": after.get("nr_throttled", 0) - before.get("nr_throttled", 0),
    }


def resolved_threads(chat: ChatContainer) -> tuple[int, str]:
    """(engine threads, usable cores) as the container itself reports them: its startup log and its info metric."""
    startup = next(r for r in chat.log_records() if r["message"].startswith("cpu "))
    usable = re.search(r'usable_cores="(\d+)"', chat.metrics())
    return int(startup["engine_threads"]), usable.group(1) if usable else "?"


async def main_async(args: argparse.Namespace) -> int:
    settings = {"default": {}, f"forced {args.forced}": {"CHAT_ENGINE_THREADS": str(args.forced)}}
    rows = []
    for repeat in range(args.repeats):
        order = list(settings) if repeat % 2 == 0 else list(reversed(settings))  # drift falls on both alike
        for name in order:
            with ChatContainer(MODELS_DIR / MODEL, cpus=args.cpus, env=settings[name], image=args.image) as chat:
                threads, usable = resolved_threads(chat)
                row = await measure(chat, args.requests, args.max_tokens, args.quiet_s)
            row |= {"setting": name, "repeat": repeat, "engine_threads": threads, "usable_cores": usable}
            logger.info(
                "repeat %d, %s: %d threads, decode %s tok/s, other processes %.2f cores",
                repeat, name, threads, [round(r, 1) for r in row["decode_tok_s"]], row["cpu"]["other_cores"],
            )  # fmt: skip
            rows.append(row)
    results = {
        "environment": environment.describe(None),
        "image": args.image,
        "cpus": args.cpus,
        "max_tokens": args.max_tokens,
        "rows": rows,
    }
    out = ROOT / "results/bench" / f"threads-cgroup-{time.strftime('%Y%m%d-%H%M%S')}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=1))
    sys.stdout.write("\n".join(table(results)) + f"\nraw results: {out}\n")
    return 1 if any(row["errors"] for row in rows) else 0


def table(results: dict) -> list[str]:
    """The markdown the doc section quotes: per setting, threads, the median decode and the noise beside it."""
    env = results["environment"]
    lines = [
        f"{env['date']}, git {env['git']}. CPU: {env['cpu']['describe']} (the host); container: "
        f"`--cpus {results['cpus']:g}`, {results['image']}, {MODEL}, greedy, {results['max_tokens']} tokens a reply.",
        "",
        "| setting | engine threads | usable cores (info metric) | decode tok/s, median (min–max) | "
        "cores used: container + client / other processes | periods throttled |",
        "|---|---|---|---|---|---|",
    ]
    for name in dict.fromkeys(row["setting"] for row in results["rows"]):
        mine = [row for row in results["rows"] if row["setting"] == name]
        rates = [rate for row in mine for rate in row["decode_tok_s"]]
        own, others = (statistics.median(row["cpu"][key] for row in mine) for key in ("own_cores", "other_cores"))
        figure = f"{statistics.median(rates):.1f} ({min(rates):.1f}–{max(rates):.1f})" if rates else "—"
        threads, usable = mine[0]["engine_threads"], mine[0]["usable_cores"]
        periods, throttled = (sum(row.get(key, 0) for row in mine) for key in ("periods", "throttled"))
        share = f"{throttled} of {periods}" if periods else "—"
        lines.append(f"| {name} | {threads} | {usable} | {figure} | {own:.2f} / {others:.2f} | {share} |")
    return lines


def main() -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    logging.getLogger("httpx").setLevel(logging.WARNING)
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cpus", type=float, default=1.0, help="the container's CPU limit (docker run --cpus)")
    parser.add_argument("--forced", type=int, default=4, help="CHAT_ENGINE_THREADS of the forced setting")
    parser.add_argument("--repeats", type=int, default=3, help="containers per setting, interleaved")
    parser.add_argument("--requests", type=int, default=4, help="streamed replies per container, one at a time")
    parser.add_argument("--max-tokens", type=int, default=128)
    parser.add_argument("--quiet-s", type=float, default=30, help="wait up to this long for other processes to calm")
    parser.add_argument("--image", default=IMAGE)
    return asyncio.run(main_async(parser.parse_args()))


if __name__ == "__main__":
    sys.exit(main())
