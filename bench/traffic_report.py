"""The traffic phases' report (bench/traffic.py): per phase and concurrency, each target's figures and our ratios to
llama-server's best variant, and default samplers against greedy on each side; every ratio paired within a repeat."""

from __future__ import annotations

import math
from pathlib import Path

from bench import traffic_scorecard
from bench.tables import ChatTable
from bench.traffic_scorecard import arm_ratio, best_peer

PROXY = traffic_scorecard.PROXY  # the target the ratios are ours over


def _f(value: float, digits: int = 1) -> str:
    return "-" if math.isnan(value) else f"{value:.{digits}f}"


def requests_per_phase(concurrency: int, rounds: int, min_requests: int) -> int:
    """How many requests a phase sends: `rounds` a stream, at least `min_requests` (bench/traffic.py's measure)."""
    return max(min_requests, concurrency * rounds)


def _requests(results: dict, table: ChatTable) -> str:
    """How many requests each phase sent, by concurrency (runs before --rounds was recorded sent 1 a stream, 4 at
    least)."""
    args = results["args"]
    rounds, least = args.get("rounds", 1), args.get("min_requests", 4)
    each = ", ".join(f"{requests_per_phase(c, rounds, least)} at {c}" for c in table.concurrencies)
    return f"requests a phase by streams: {each}"


def write(results: dict, out: Path) -> str:
    table = ChatTable(results["chat"])
    arms = list(dict.fromkeys(row["prompt"] for row in results["chat"]))
    env = results["environment"]
    defaults = ", ".join(f"{k} {v}" for k, v in results["defaults"].items()) or "none"
    chat_env = ", ".join(f"`{item}`" for item in results["args"].get("chat_env") or []) or "none"
    others = max((row["cpu"]["other_cores"] for row in results["chat"]), default=0.0)
    quiet = f"other processes used at most {others:.2f} cores during a phase" + (
        ": **the machine was shared with other jobs**, absolute figures are noisy" if others > 0.3 else ""
    )
    lines = [
        f"# Traffic phases: {results['model']}",
        "",
        "Produced by `make bench-traffic` (bench/traffic.py); do not edit by hand.",
        "",
        f"- **CPU: {env['cpu']['describe']}**",
        f"- run: {results['started']}, repeats {results['args']['repeats']}; {_requests(results, table)}; load average "
        f"{results['load_1m_at_start']} at the start, {results['load_1m_at_end']} at the end; {quiet}. Read the "
        "ratios, paired within a repeat (targets interleaved, the order rotated each repeat).",
        f"- default samplers (manifest; llama-server started with the same as its defaults): {defaults}",
        f"- our chat service's settings beyond its defaults: {chat_env}",
        f"- llama.cpp: {env['llama.cpp'] or 'not run'}",
        "",
        "| phase | streams | target | aggregate tok/s | per-stream decode tok/s | TTFT p50 ms | tokens out (median) "
        "| ours / this | others' CPU (median / max) |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    summary = []
    for arm in arms:
        for c in table.concurrencies:
            for target in table.targets:
                if not table.values(target, c, arm, "aggregate"):
                    continue
                ratio = "" if target == PROXY else _f(table.ratio(PROXY, target, c, arm, "aggregate"), 2)
                keys = [k for k in table.rows if k[0] == target and k[1] == c and k[2] == arm]
                tokens = sorted(t for k in keys for t in table.rows[k]["completion_tokens"])
                cpu = sorted(table.rows[k]["cpu"]["other_cores"] for k in keys)
                aggregate, decode, ttft = (table.figure(target, c, arm, m) for m in ("aggregate", "decode", "ttft_p50"))
                lines.append(
                    f"| {arm} | {c} | {target} | {_f(aggregate)} | {_f(decode)} | {_f(ttft, 0)} "
                    f"| {tokens[len(tokens) // 2] if tokens else '-'} | {ratio} "
                    f"| {cpu[len(cpu) // 2]:.2f} / {cpu[-1]:.2f} |"
                )
            peer = best_peer(table, c, arm)
            if peer is not None and table.values(PROXY, c, arm, "aggregate"):
                mine = table.ratio(PROXY, peer, c, arm, "aggregate")
                summary.append(f"- {arm}, {c} stream(s): ours / {peer} (its best here) = **{_f(mine, 2)}×** aggregate")
    if "greedy" in arms and "defaults" in arms:
        for target in table.targets:
            for c in table.concurrencies:
                median = arm_ratio(table, target, c, "defaults", "greedy")
                if not math.isnan(median):
                    summary.append(f"- {target}, {c} stream(s): default samplers / greedy = **{median:.2f}×**")
    for with_lookup, without in (("code-edit+lookup", "code-edit"), ("defaults+lookup", "defaults")):
        for c in table.concurrencies:
            lookup_ratio = arm_ratio(table, PROXY, c, with_lookup, without)
            decode_ratio = arm_ratio(table, PROXY, c, with_lookup, without, "decode")
            if not math.isnan(lookup_ratio):
                summary.append(
                    f"- ours, {c} stream(s): {with_lookup} / {without} = **{lookup_ratio:.2f}×** aggregate, "
                    f"{decode_ratio:.2f}× per-stream decode"
                )
    scorecard = traffic_scorecard.write(table, results.get("memory", {}), results.get("kernel_ceiling"))
    lines[4:4] = [*scorecard, "## Summary", "", *summary, ""]
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text("\n".join(lines) + "\n")
    return "\n".join(summary)
