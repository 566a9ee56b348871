"""The traffic run scored against the speed issue's targets: each ratio paired within a repeat, then the median;
each row says met, not met, or what is missing. Read by bench/traffic_report.py."""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

from bench.peers import PROMPT_CACHE_MIB
from bench.tables import ChatTable

PROXY = "ours, through the proxy"


@dataclass(frozen=True)
class Target:
    """One row: what is compared, the goal as the issue writes it, and the test the figure must pass."""

    name: str
    goal: str
    figure: float
    passes: Callable[[float], bool]
    against: str = ""

    def row(self) -> str:
        if math.isnan(self.figure):
            verdict, shown = "not measured in this run", "-"
        else:
            verdict, shown = ("met" if self.passes(self.figure) else "**not met**"), f"{self.figure:.2f}×"
        against = f" ({self.against})" if self.against else ""
        return f"| {self.name}{against} | {shown} | {self.goal} | {verdict} |"


def peers(table: ChatTable) -> list[str]:
    return [t for t in table.targets if t.startswith("llama-server")]


def best_peer(table: ChatTable, c: int, arm: str) -> str | None:
    """llama-server's fastest variant for this arm and concurrency (aggregate tok/s)."""
    measured = [t for t in peers(table) if table.values(t, c, arm, "aggregate")]
    return max(measured, key=lambda t: table.figure(t, c, arm, "aggregate")) if measured else None


def arm_ratio(table: ChatTable, target: str, c: int, arm: str, base: str, metric: str = "aggregate") -> float:
    """One target's arm over another arm of it, output tok/s paired within a repeat, the median."""
    return table.ratio_of_arms(target, c, arm, base, metric)


def _arms(table: ChatTable, c: int, arm: str, base: str, name: str, at_least: float) -> list[Target]:
    """Our arm over another, by aggregate output tok/s and by per-stream decode tok/s. Sampled answers' lengths differ
    between two arms by chance (a median of 17 tokens in one, 86 in the other, in one run), and a short answer's
    aggregate is mostly its TTFT; the decode rate, after the first token, is what the sampler or the lookup changes."""
    aggregate, decode = (arm_ratio(table, PROXY, c, arm, base, m) for m in ("aggregate", "decode"))
    return [
        Target(name, f"≥ {at_least}", aggregate, lambda f: f >= at_least),
        Target(f"{name}, per-stream decode tok/s", f"≥ {at_least}", decode, lambda f: f >= at_least),
    ]


def _versus_best(table: ChatTable, c: int, arm: str, at_least: float) -> list[Target]:
    """Ours over llama-server's fastest variant by aggregate tok/s (the target), and against the same variant by
    per-stream decode tok/s: the two servers' sampled answers differ in length (in one 8-request burst ours came to
    637 tokens, Q4_0's to 1,024), and a burst's wall time is its longest answer, so fewer tokens over the same wall
    time read as a slower server; the decode rate is the speed of the steps themselves."""
    peer = best_peer(table, c, arm)
    streams = "1 stream" if c == 1 else f"{c} streams"
    name = f"{streams}, {arm}: ours / llama-server's best"
    return [
        Target(
            f"{name}{suffix}",
            f"≥ {at_least}",
            table.ratio(PROXY, peer, c, arm, metric) if peer else math.nan,
            lambda f: f >= at_least,
            peer or "",
        )
        for suffix, metric in (("", "aggregate"), (", per-stream decode tok/s", "decode"))
    ]


def _ttft(table: ChatTable, arm: str) -> Target:
    """TTFT p50 at one stream against llama-server's quickest variant: the stricter of the two comparisons."""
    measured = [t for t in peers(table) if table.values(t, 1, arm, "ttft_p50")]
    quickest = min(measured, key=lambda t: table.figure(t, 1, arm, "ttft_p50")) if measured else None
    figure = table.ratio(PROXY, quickest, 1, arm, "ttft_p50") if quickest else math.nan
    return Target(f"TTFT p50, 1 stream, {arm}: ours / llama-server", "≤ 1", figure, lambda f: f <= 1.0, quickest or "")


def _memory(memory: dict) -> list[Target]:
    """Peak RSS (VmHWM at the end of the run) of our chat service over each llama-server variant's."""
    ours = memory.get(PROXY, {}).get("peak_mb")
    out = []
    for name, figures in memory.items():
        if name != PROXY and ours is not None:
            out.append(
                Target(
                    "peak RSS: our chat service / llama-server",
                    "≤ 1",
                    ours / figures["peak_mb"],
                    lambda f: f <= 1.0,
                    name,
                )
            )
    return out


def targets(table: ChatTable, memory: dict) -> list[Target]:
    rows = []
    for c, goal in ((1, 1.05), (8, 1.3)):
        rows += [t for arm in ("greedy", "defaults") for t in _versus_best(table, c, arm, goal)]
    for c in (1, 8):
        rows += _arms(table, c, "defaults", "greedy", f"ours, {c} stream(s): default samplers / greedy", 0.95)
    rows += _arms(
        table, 1, "code-edit+lookup", "code-edit", "ours, 1 stream: code edit with prompt lookup / without", 1.5
    )
    rows += _arms(
        table, 1, "defaults+lookup", "defaults", "ours, 1 stream: open chat with prompt lookup / without", 0.97
    )
    rows += [_ttft(table, "greedy"), _ttft(table, "defaults")]
    rows += _memory(memory)
    return rows


def ceiling_lines(table: ChatTable, ceiling: dict | None) -> list[str]:
    """8 streams over 1 for each target and arm, beside what the kernels allow (bench/kernel_ceiling.py)."""
    if not ceiling:
        return ["- kernel ceiling: not measured in this run"]
    rows = ceiling["rows"]
    later = " (measured after the run, on its own)" if ceiling.get("measured_later") else ""
    lines = [
        f"- kernel ceiling{later}: a decode step of the plain GenAI loop takes {ceiling['step_ms_1']:.1f} ms at 1 "
        f"row and {ceiling['step_ms_rows']:.1f} ms at {rows} rows ({ceiling['threads']} threads), so {rows} streams "
        f"can give at most **{ceiling['ceiling']:.2f}×** one stream's tokens per second on this CPU.",
    ]
    if {1, rows} <= set(table.concurrencies):
        for target in table.targets:
            for arm in ("greedy", "defaults"):
                figure = table.across_concurrency(target, rows, 1, arm, "aggregate")
                if not math.isnan(figure):
                    share = figure / ceiling["ceiling"]
                    lines.append(f"  - {target}, {arm}: {rows} over 1 = {figure:.2f}×, {share:.0%} of the ceiling")
    return lines


def write(table: ChatTable, memory: dict, ceiling: dict | None) -> list[str]:
    lines = ["## Scorecard", "", "| target | figure | goal | verdict |", "|---|---|---|---|"]
    lines += [t.row() for t in targets(table, memory)]
    lines += ["", *ceiling_lines(table, ceiling)]
    if memory:
        lines += [
            "",
            "Peak RSS at the end of the run (VmHWM). llama-server runs with -np 8 -c 8192 (its KV cache for 8192 "
            f"tokens) and its prompt cache in RAM held to our prefix cache's default budget (`--cache-ram "
            f"{PROMPT_CACHE_MIB}`, as CHAT_PREFIX_CACHE_MB): its own default, 8192 MiB, grows with every new prompt "
            "(reports older than this sentence ran with it). RSS loaded: each server's, before any traffic.",
        ]
        for name, figures in memory.items():
            loaded = f", {figures['loaded_mb']:.0f} MB loaded" if "loaded_mb" in figures else ""
            lines.append(
                f"- {'our chat service' if name == PROXY else name}: {figures['peak_mb']:.0f} MB peak, "
                f"{figures['rss_mb']:.0f} MB now{loaded}"
            )
    return lines + [""]
