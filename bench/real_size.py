"""The scorecard of a run on a real-size model (`python -m bench.run --model qwen2.5-coder-0.5b-instruct --peers`):
the targets of issue #17, as ratios measured in the same run, against llama-server's best variant on the same GGUF
(the file the model was built from, and its Q4_0 requantization), and the resident memory of each server."""

from __future__ import annotations

import re
from pathlib import Path

from bench import marked_section
from bench.tables import ChatTable
from bench.targets import (
    DIRECT,
    PROXY,
    Measure,
    across_concurrency,
    decode_against_engine,
    scorecard_row,
    ttft_across_concurrency,
)

PEER_PREFIX = "llama-server "
# The part of docs/BENCHMARKS.md that gathers the real-size scorecards; a real-size run rewrites only what is between.
INDEX_BEGIN, INDEX_END = "<!-- real-size scorecards: begin -->", "<!-- real-size scorecards: end -->"


def _best_peer(table: ChatTable, c: int, prompt: str, metric: str) -> tuple[str, float]:
    peers = [t for t in table.targets if t.startswith(PEER_PREFIX)]
    figures = {p: table.figure(p, c, prompt, metric) for p in peers}
    if not figures:
        return "", float("nan")
    best = max(figures, key=lambda p: figures[p])
    return best, figures[best]


def section(table: ChatTable, rss: dict[str, dict[str, float]], prompt: str = "short") -> list[str]:
    top = max(table.concurrencies)
    ours = [t for t in (PROXY, DIRECT) if t in table.targets]
    if not ours or top == 1:
        return []
    peer_top, peer_top_figure = _best_peer(table, top, prompt, "aggregate")
    peer_one, peer_one_figure = _best_peer(table, 1, prompt, "decode")
    judged = top == 8

    def row(measure: Measure) -> str:
        return scorecard_row(measure, ours, judged)

    lines = [
        f"## Targets at real size ({prompt} prompts)",
        "",
        "| measure | " + " | ".join(ours) + " | target |",
        "|---|" + "---|" * len(ours) + "---|",
    ]
    if peer_top:
        lines.append(
            row(
                Measure(
                    f"aggregate at {top} concurrent / the best llama-server ({peer_top.removeprefix(PEER_PREFIX)})",
                    "≥ 1.2× at 8",
                    lambda t: table.figure(t, top, prompt, "aggregate") / peer_top_figure,
                    lambda v: v >= 1.2,
                )
            )
        )
    lines.append(
        row(
            Measure(
                f"aggregate at {top} concurrent / our own at 1",
                "≥ 3× at 8",
                lambda t: across_concurrency(table, t, top, 1, prompt, "aggregate"),
                lambda v: v >= 3,
            )
        )
    )
    if peer_one:
        lines.append(
            row(
                Measure(
                    f"single-stream decode / the best llama-server ({peer_one.removeprefix(PEER_PREFIX)})",
                    "≥ 1.0×",
                    lambda t: table.figure(t, 1, prompt, "decode") / peer_one_figure,
                    lambda v: v >= 1.0,
                )
            )
        )
    lines += [
        row(decode_against_engine(table, prompt)),
        row(ttft_across_concurrency(table, top, prompt)),
    ]
    lines += ["", *memory_lines(rss)]
    return lines


def memory_lines(rss: dict[str, dict[str, float]]) -> list[str]:
    if not rss:
        return []
    lines = [
        "Resident memory of each server at the end of the run (the chat service serves this one model alone):",
        "",
        "| server | RSS MB | peak RSS MB | chat direct's / this one's peak |",
        "|---|---|---|---|",
    ]
    ours = rss.get(DIRECT)
    for name, figures in rss.items():
        ratio = ""
        if ours and name != DIRECT:
            value = ours["peak_mb"] / figures["peak_mb"]
            ratio = f"{value:.2f}×" + (" met" if value <= 1.0 else " **not met**") + " (target ≤ 1.0×)"
        lines.append(f"| {name} | {figures['rss_mb']:.0f} | {figures['peak_mb']:.0f} | {ratio} |")
    return [*lines, ""]


def index_lines(reports_dir: Path, relative_to: Path) -> list[str]:
    """Every real-size report's scorecard and memory table (docs/benchmarks/<model>.md), each under a link to the
    report, for the summary in docs/BENCHMARKS.md; nothing where no real-size run has been reported."""
    cards = []
    for path in sorted(reports_dir.glob("*.md")):
        text = path.read_text()
        head, _, rest = text.partition("\n## Targets at real size")
        if not head.startswith("# Benchmarks: ") or not rest:
            continue
        model = head.splitlines()[0].removeprefix("# Benchmarks: ")
        title, _, card = rest.partition("\n")  # " (short prompts)", then the tables
        facts = [re.search(rf"^\| {key} \| (.+?) \|$", text, re.MULTILINE) for key in ("date", "plan", "cpu")]
        date, plan, cpu = (m.group(1) if m else "?" for m in facts)
        quick = "**Quick run**" in head
        where = f" on {cpu}" if cpu != "?" else ""  # reports from before the CPU was recorded have no cpu row
        cards += [
            f"### [{model}]({path.relative_to(relative_to).as_posix()}){title}",
            "",
            f"Measured {date}{where}; plan: {plan}." + (" A quick run: not figures to quote." if quick else ""),
            "",
            card.partition("\n## ")[0].strip(),
            "",
        ]
    if not cards:
        return []
    return [
        INDEX_BEGIN,
        "## Real size: each chat model against llama-server on the same GGUF",
        "",
        "Qwen2.5-Coder 0.5B and 1.5B (`make bench-real-size`, part of `make bench`), or any model run with `--model`: "
        "alone in its own chat service, against llama-server on the GGUF it was built from and on that GGUF "
        "requantized to Q4_0. Each model's full report is linked.",
        "",
        *cards,
        INDEX_END,
        "",
    ]


def refresh_index(summary: Path, reports_dir: Path) -> None:
    """Rewrite the real-size part of an existing docs/BENCHMARKS.md after a real-size run, leaving the rest as the
    last SmolLM2 run wrote it (inserted before its Setup section where it has none yet)."""
    section = "\n".join(index_lines(reports_dir, summary.parent))
    marked_section.refresh(summary, INDEX_BEGIN, INDEX_END, section)
