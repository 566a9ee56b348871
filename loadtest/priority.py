"""`make loadtest-priority`: what a batch flood does to an interactive user's time to first token, with and without
the KV slots kept for interactive requests (CHAT_INTERACTIVE_RESERVED_SLOTS).

    python -m loadtest.priority                           # alone 30 s, the flood with reserve 1, 0 and fifo, 60 s each
    python -m loadtest.priority --run-time 90s --scenarios reserve-1 reserve-0 fifo

Each scenario runs against a chat service of its own (SmolLM2 by default, started on a free port and stopped at the
end), with priority_locustfile.py in a Locust subprocess (loadtest.run's), so it stops by itself:
- alone: the interactive user with no flood: its TTFT is the request's own prefill and the HTTP around it;
- reserve-N: the flood (batch priority) beside it, N slots kept for interactive requests;
- fifo: the same flood sent with no priority header, so every request is interactive: first come, first served.
The bound the reserve gives: the request's own prefill plus the scheduler turn under way when it arrives (at worst
one batch prompt's prefill and one decode step), so the run checks interactive TTFT p95 under the flood with a
reserve against twice alone p95 plus two mean turns (a turn's mean is the flood's wall time over its decode steps,
from /metrics). Figures go to results/loadtest/
priority-<time>/ (summary.json, each scenario's Locust CSV and service log); exit status 1 if a request failed or the
bound was not held.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import time
from pathlib import Path
from typing import Any

import httpx
from ortserve_common.cpu import host_cpu
from ortserve_common.models_dir import models_dir
from ortserve_testing import metrics

from bench.local_stack import SoloChat
from loadtest.run import ROOT, read_stats, run_until_done

LOCUSTFILE = Path(__file__).with_name("priority_locustfile.py")
logger = logging.getLogger("loadtest.priority")


def scenario_settings(name: str, args: argparse.Namespace) -> tuple[dict[str, str], dict[str, str], list[str]]:
    """(chat settings, Locust environment, user classes) for one scenario."""
    chat = {
        "CHAT_MODEL_ID": args.model.name,
        "CHAT_MAX_BATCH_SIZE": str(args.slots),
        "CHAT_MAX_CONCURRENCY": str(args.slots),
        "CHAT_MAX_QUEUE": str(4 * (args.batch_users + args.interactive_users)),  # the flood queues, never refused
        "CHAT_QUEUE_TIMEOUT_S": "600",
        "CHAT_LOG_LEVEL": "warning",
        **({"CHAT_ENGINE_THREADS": str(args.threads)} if args.threads else {}),
    }
    env = {
        "LOADTEST_CHAT_MODEL": args.model.name,
        "LOADTEST_BATCH_USERS": str(args.batch_users),
        "LOADTEST_INTERACTIVE_USERS": str(args.interactive_users),
        "LOADTEST_BATCH_MAX_TOKENS": str(args.batch_max_tokens),
        "LOADTEST_INTERACTIVE_MAX_TOKENS": str(args.interactive_max_tokens),
    }
    if name == "alone":
        return chat, env, ["InteractiveUser"]
    if name == "fifo":
        return {**chat, "CHAT_INTERACTIVE_RESERVED_SLOTS": "0"}, {**env, "LOADTEST_BATCH_PRIORITY": ""}, []
    reserved = name.removeprefix("reserve-")
    return {**chat, "CHAT_INTERACTIVE_RESERVED_SLOTS": reserved}, env, []


def engine_counters(url: str, model_id: str) -> tuple[float, float]:
    """(decode steps, completion tokens) so far."""
    text = httpx.get(url + "/metrics", timeout=30).text
    steps = metrics.sample(text, "ortserve_engine_decode_steps_total", model=model_id)
    return steps, metrics.sample(text, "ortserve_completion_tokens_total", model=model_id)


def warm_up(url: str, model_id: str) -> None:
    """One request before the clock starts: the first prefill and decode step pay for ONNX Runtime's first runs."""
    body = {"model": model_id, "messages": [{"role": "user", "content": "Hello"}], "max_tokens": 4}
    httpx.post(url + "/v1/chat/completions", json=body, timeout=120).raise_for_status()


def run_scenario(name: str, args: argparse.Namespace, out: Path) -> dict[str, Any]:
    chat_settings, locust_env, classes = scenario_settings(name, args)
    classes = classes or ["BatchFloodUser", "InteractiveUser"]
    users = args.interactive_users + (args.batch_users if "BatchFloodUser" in classes else 0)
    run_time = args.alone_run_time if name == "alone" else args.run_time
    folder = out / name
    with SoloChat(folder / "run", args.model, chat_settings) as chat:
        warm_up(chat.url, args.model.name)
        before, started = engine_counters(chat.url, args.model.name), time.monotonic()
        command = [sys.executable, "-m", "locust", "-f", str(LOCUSTFILE), *classes, "--headless"]
        command += ["--users", str(users), "--spawn-rate", str(users), "--run-time", run_time, "--stop-timeout", "120"]
        command += ["--csv", str(folder / "locust"), "--only-summary", "--host", chat.url]
        logger.info("%s: %s for %s against %s", name, " + ".join(classes), run_time, chat.url)
        returncode = run_until_done(command, {**os.environ, **locust_env})
        after, elapsed = engine_counters(chat.url, args.model.name), time.monotonic() - started
    rows = {(row["Type"], row["Name"]): row for row in read_stats(folder / "locust_stats.csv")}
    ttft = rows.get(("SSE", "TTFT [interactive]"), {})
    batch = rows.get(("POST", "batch"), {})
    steps, tokens = after[0] - before[0], after[1] - before[1]
    return {
        "scenario": name,
        "settings": chat_settings,
        "run_s": round(elapsed, 1),
        "interactive_requests": int(ttft.get("Request Count", 0)),
        "interactive_ttft_ms": {q: _number(ttft.get(q)) for q in ("50%", "95%", "Max Response Time")},
        "batch_requests": int(batch.get("Request Count", 0)),
        "batch_latency_ms_p50": _number(batch.get("50%")),
        "tokens_per_s": round(tokens / elapsed, 1),
        "mean_turn_ms": round(1000 * elapsed / steps, 1) if steps else None,
        # The machine's run queue over the last minute, at the end: on a shared machine the figures are its share.
        "load_average_1m": round(os.getloadavg()[0], 1),
        "failures": sum(int(row["Failure Count"]) for row in rows.values()),
        "locust_status": returncode,
    }


def _number(value: str | None) -> float | None:
    return None if value in (None, "", "N/A") else float(value)


def table(results: list[dict[str, Any]]) -> str:
    head = (
        f"{'scenario':<11} {'TTFT p50':>9} {'p95':>7} {'max':>7} {'n':>4} {'batch p50':>10} {'tok/s':>7} {'turn ms':>8}"
    )
    lines = [head, "(interactive TTFT in ms; batch p50: a whole batch answer, ms; tok/s: every completion token)"]
    for r in results:
        t = r["interactive_ttft_ms"]
        lines.append(
            f"{r['scenario']:<11} {t['50%'] or 0:>9.0f} {t['95%'] or 0:>7.0f} {t['Max Response Time'] or 0:>7.0f} "
            f"{r['interactive_requests']:>4} {r['batch_latency_ms_p50'] or 0:>10.0f} {r['tokens_per_s']:>7.1f} "
            f"{r['mean_turn_ms'] or 0:>8.1f}"
        )
    return "\n".join(lines)


def check_bound(results: list[dict[str, Any]]) -> list[str]:
    """With a reserve, interactive TTFT p95 under the flood is at most its own prefill plus the turn under way when it
    arrived: at worst one batch prompt's prefill (the flood's prompts come from the same set, so alone p95 again)
    and one decode step (two mean turns of the flood, for margin)."""
    by_name = {r["scenario"]: r for r in results}
    alone = by_name.get("alone")
    verdicts = []
    for r in results:
        if not r["scenario"].startswith("reserve-") or r["scenario"] == "reserve-0" or alone is None:
            continue
        bound = 2 * alone["interactive_ttft_ms"]["95%"] + 2 * (r["mean_turn_ms"] or 0)
        held = r["interactive_ttft_ms"]["95%"] <= bound
        r["bound_ms"], r["bound_held"] = round(bound), held
        verdicts.append(
            f"{r['scenario']}: TTFT p95 {r['interactive_ttft_ms']['95%']:.0f} ms, bound {bound:.0f} ms: "
            f"{'held' if held else 'NOT held'}"
        )
    return verdicts


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scenarios", nargs="+", default=["alone", "reserve-1", "reserve-0", "fifo"])
    parser.add_argument("--run-time", default="60s", help="each flood scenario (Locust syntax)")
    parser.add_argument("--alone-run-time", default="30s")
    parser.add_argument("--model", type=Path, default=models_dir() / "smollm2-135m-instruct")
    parser.add_argument("--slots", type=int, default=4, help="KV slots and admitted requests (max_batch_size)")
    parser.add_argument("--batch-users", type=int, default=6, help="more than the slots: the flood always queues")
    parser.add_argument("--interactive-users", type=int, default=1)
    parser.add_argument("--threads", type=int, help="CHAT_ENGINE_THREADS (default: the usable cores)")
    parser.add_argument("--batch-max-tokens", type=int, default=96)
    parser.add_argument("--interactive-max-tokens", type=int, default=8)
    parser.add_argument("--results", type=Path, help="default results/loadtest/priority-<time>")
    args = parser.parse_args(argv)
    out = args.results or ROOT / "results/loadtest" / time.strftime("priority-%Y%m%d-%H%M%S")
    out.mkdir(parents=True, exist_ok=True)
    results = [run_scenario(name, args, out) for name in args.scenarios]
    verdicts = check_bound(results)
    cpu = host_cpu()
    summary = {"cpu": cpu.labels(), "args": {k: str(v) for k, v in vars(args).items()}, "results": results}
    (out / "summary.json").write_text(json.dumps(summary, indent=2))
    sys.stdout.write(f"{table(results)}\n" + "".join(f"{v}\n" for v in verdicts) + f"CPU: {cpu.labels()}\n")
    sys.stdout.write(f"figures in {out}\n")
    failed = any(r["failures"] or r["locust_status"] for r in results)
    return 1 if failed or not all(r.get("bound_held", True) for r in results) else 0


if __name__ == "__main__":
    sys.exit(main())
