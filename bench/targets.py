"""The throughput issue's targets, scored from one run: each ratio paired within a repeat, then the median."""

from __future__ import annotations

import statistics
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from bench.report import ChatTable

PROXY = "chat via proxy (TLS)"
BEFORE = "chat direct, generator engine (before)"
DIRECT = "chat direct"


def _across_concurrency(table: ChatTable, target: str, high: int, low: int, prompt: str, metric: str) -> float:
    from bench.report import phase_value

    pairs = []
    for repeat in table.repeats:
        a, b = (table.rows.get((target, c, prompt, repeat)) for c in (high, low))
        if a is not None and b is not None:
            pairs.append(phase_value(a, metric) / phase_value(b, metric))
    pairs = [p for p in pairs if np.isfinite(p)]
    return statistics.median(pairs) if pairs else float("nan")


def _row(measure: str, value: float, goal: str, met: bool | None) -> str:
    """`met` None: not judged (a run that stopped short of 8 concurrent streams)."""
    verdict = "-" if met is None or np.isnan(value) else "met" if met else "**not met**"
    return f"| {measure} | {'-' if np.isnan(value) else f'{value:.2f}×'} | {goal} | {verdict} |"


def section(table: ChatTable, prompt: str = "short") -> list[str]:
    """The scorecard, for the proxy (as clients use it) and, when measured, the generator engine (before)."""
    top = max(table.concurrencies)
    if PROXY not in table.targets or top == 1:
        return []
    lines = [
        f"## Throughput targets ({prompt} prompts, through the proxy)",
        "",
        "| measure | ratio | target | |",
        "|---|---|---|---|",
    ]
    judged = top == 8  # the targets are set at 8 concurrent streams; a quick run shows its ratios unjudged
    aggregate = _across_concurrency(table, PROXY, top, 1, prompt, "aggregate")
    ttft = _across_concurrency(table, PROXY, top, 1, prompt, "ttft_p50")
    decode = table.ratio(PROXY, "engine", 1, prompt, "decode")
    lines.append(
        _row(
            f"aggregate tok/s at {top} concurrent / at 1",
            aggregate,
            "≥ 2.4× at 8",
            aggregate >= 2.4 if judged else None,
        )
    )
    lines.append(_row(f"TTFT p50 at {top} concurrent / at 1", ttft, "≤ 2× at 8", ttft <= 2 if judged else None))
    lines.append(_row("single-stream decode / the plain engine", decode, "≥ 0.95×", decode >= 0.95))
    for peer in ("llama-server Q4_1", "llama-server Q4_0"):
        if peer in table.targets:
            versus = table.ratio(PROXY, peer, top, prompt, "aggregate")
            lines.append(
                _row(
                    f"aggregate at {top} concurrent / {peer}", versus, "≥ 1.0× at 8", versus >= 1.0 if judged else None
                )
            )
    if BEFORE in table.targets and DIRECT in table.targets:
        lines += ["", "Before and after, side by side (chat direct, batched engine / generator engine):", ""]
        lines += ["| measure | after / before |", "|---|---|"]
        for c in table.concurrencies:
            gain = table.ratio(DIRECT, BEFORE, c, prompt, "aggregate")
            lines.append(f"| aggregate tok/s at {c} concurrent | {gain:.2f}× |")
        ttft_gain = table.ratio(DIRECT, BEFORE, top, prompt, "ttft_p50")
        lines.append(f"| TTFT p50 at {top} concurrent | {ttft_gain:.2f}× (below 1 is better) |")
    return [*lines, ""]
