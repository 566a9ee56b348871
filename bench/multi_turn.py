"""A chain of turns through the Responses API (`previous_response_id`), against the same chat service with and
without its prefix cache, side by side: each turn's time to first token, and how much of its prompt the cache served.

    python -m bench.multi_turn [--turns 6] [--repeats 3] [--out docs/benchmarks/multi-turn.md]

`make bench` runs it too (its report gets the same section). Each turn's prompt is the whole chain so far (the
earlier inputs and replies), so without the cache every turn prefills more; with it, only the newest input and the
last reply's final block.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import statistics
import sys
import time
import uuid
from contextlib import ExitStack
from pathlib import Path

from ortserve_common.models_dir import models_dir

from bench.clients import ChatTarget
from bench.targets import DIRECT as CACHED
from bench.targets import NO_REUSE as UNCACHED

ROOT = Path(__file__).resolve().parent.parent
PROMPTS = json.loads((ROOT / "loadtest/prompts.json").read_text())
logger = logging.getLogger("bench.multi_turn")


async def _turn(target: ChatTarget, session, body: dict) -> dict:
    """One streamed turn: time to its first text delta, and the usage of its completed response."""
    sent = time.perf_counter()
    first: float | None = None
    async with session.post(target.url("responses"), json=body) as response:
        response.raise_for_status()
        async for raw in response.content:
            line = raw.decode().strip()
            if not line.startswith("data: "):
                continue
            event = json.loads(line[len("data: ") :])
            if event["type"] == "response.output_text.delta" and first is None:
                first = time.perf_counter() - sent
            elif event["type"] in ("response.completed", "response.incomplete"):
                usage = event["response"]["usage"]
                return {
                    "id": event["response"]["id"],
                    "ttft_s": first,
                    "input_tokens": usage["input_tokens"],
                    "cached_tokens": usage["input_tokens_details"]["cached_tokens"],
                }
            elif event["type"] in ("response.failed", "error"):
                raise RuntimeError(f"turn failed: {event}")
    raise RuntimeError("the stream ended without a terminal event")


async def chain(target: ChatTarget, turns: int, max_tokens: int) -> list[dict]:
    """One conversation of `turns` turns, each continuing the last (a fresh nonce: nothing cached from before)."""
    nonce = uuid.uuid4().hex[:8]
    questions = PROMPTS["questions"]
    previous: str | None = None
    rows = []
    async with target.client(1) as session:
        for turn in range(turns):
            text = (
                f"[{nonce}] {PROMPTS['passage']}\n\n{questions[0]}" if turn == 0 else questions[turn % len(questions)]
            )
            body = {"model": target.model, "input": text, "max_output_tokens": max_tokens, "temperature": 0}
            body |= {"stream": True, "previous_response_id": previous} if previous else {"stream": True}
            row = await _turn(target, session, body)
            previous = row.pop("id")
            rows.append({"target": target.name, "turn": turn + 1, **row})
    return rows


async def measure(cached: ChatTarget, uncached: ChatTarget, turns: int, repeats: int, max_tokens: int) -> list[dict]:
    """Chains on both targets, interleaved (the order swaps every repeat), one at a time."""
    rows: list[dict] = []
    for repeat in range(repeats):
        order = (cached, uncached) if repeat % 2 == 0 else (uncached, cached)
        for target in order:
            for row in await chain(target, turns, max_tokens):
                rows.append({**row, "repeat": repeat})
    return rows


def section(rows: list[dict]) -> list[str]:
    """The report's table: per turn, TTFT p50 with and without the cache, their ratio, and the share cached."""
    if not rows:
        return []
    lines = [
        "## Multi-turn: a response chain with and without the prefix cache",
        "",
        "Each turn continues the last through `previous_response_id`, so its prompt holds every earlier input and "
        "reply. Greedy, streamed, one chain at a time, the two services interleaved; medians over the repeats.",
        "",
        "| turn | prompt tokens | cached (with cache) | TTFT p50 with cache | TTFT p50 without | with / without |",
        "|---|---|---|---|---|---|",
    ]
    for turn in sorted({r["turn"] for r in rows}):
        with_cache = [r for r in rows if r["turn"] == turn and r["target"] == CACHED]
        without = [r for r in rows if r["turn"] == turn and r["target"] == UNCACHED]
        ttft_with = statistics.median(r["ttft_s"] for r in with_cache if r["ttft_s"] is not None)
        ttft_without = statistics.median(r["ttft_s"] for r in without if r["ttft_s"] is not None)
        prompt = statistics.median(r["input_tokens"] for r in with_cache)
        cached = statistics.median(r["cached_tokens"] for r in with_cache)
        lines.append(
            f"| {turn} | {prompt:.0f} | {cached:.0f} | {1000 * ttft_with:.0f} ms | {1000 * ttft_without:.0f} ms "
            f"| {ttft_with / ttft_without:.2f}× |"
        )
    return [*lines, ""]


def main() -> int:
    from bench.local_stack import SoloChat  # the services start only when run as a script

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--turns", type=int, default=6)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--max-tokens", type=int, default=48)
    parser.add_argument("--out", default=str(ROOT / "docs/benchmarks/multi-turn.md"))
    args = parser.parse_args()
    cache = Path(os.environ.get("ORTSERVE_CACHE_DIR", Path.home() / ".cache/ortserve"))
    model = models_dir(cache) / "smollm2-135m-instruct"
    run_dir = ROOT / "results/bench" / f"multi-turn-{time.strftime('%Y%m%d-%H%M%S')}"
    with ExitStack() as stack:
        on = stack.enter_context(SoloChat(run_dir / "cache", model, {}))
        off = stack.enter_context(SoloChat(run_dir / "no-cache", model, {"CHAT_PREFIX_CACHE_MB": "0"}))
        targets = ChatTarget(CACHED, on.url + "/v1", model.name), ChatTarget(UNCACHED, off.url + "/v1", model.name)
        rows = asyncio.run(measure(*targets, args.turns, args.repeats, args.max_tokens))
    (run_dir / "results.json").write_text(json.dumps(rows, indent=1))
    text = "\n".join(
        [
            "# Benchmarks: multi-turn",
            "",
            f"Generated by `python -m bench.multi_turn` on "
            f"{time.strftime('%Y-%m-%d')}, load average {os.getloadavg()[0]:.1f} at the end.",
            "",
            *section(rows),
        ]
    )
    Path(args.out).write_text(text)
    sys.stdout.write(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
