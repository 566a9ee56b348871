"""docs/BENCHMARKS.md's traffic part: each model's traffic scorecard (docs/benchmarks/<model>-traffic.md, written by
bench/traffic.py) under a link to its report, rewritten after every traffic run and kept when `make bench-peers`
writes the file anew (bench/report.py)."""

from __future__ import annotations

from pathlib import Path

from bench import marked_section

BEGIN, END = "<!-- traffic scorecards: begin -->", "<!-- traffic scorecards: end -->"
TITLE = "# Traffic phases: "


def index_lines(reports_dir: Path, relative_to: Path) -> list[str]:
    cards = []
    for path in sorted(reports_dir.glob("*-traffic.md")):
        text = path.read_text()
        if not text.startswith(TITLE) or "\n## Scorecard\n" not in text:
            continue
        model = text.splitlines()[0].removeprefix(TITLE)
        card = text.partition("\n## Scorecard\n")[2].partition("\n## ")[0].strip()
        facts = [line for line in text.splitlines() if line.startswith(("- **CPU:", "- run:"))]
        cards += [f"### [{model}]({path.relative_to(relative_to).as_posix()})", "", *facts, "", card, ""]
    if not cards:
        return []
    return [
        BEGIN,
        "## Traffic: default samplers, long answers and code edits against llama-server",
        "",
        "`make bench-traffic MODEL=…`: through the proxy, our chat service serving the model alone, beside "
        "llama-server on the same GGUF and on it requantized to Q4_0, at 1 and 8 streams. Each model's scorecard "
        "against the speed issue's targets; the full reports are linked.",
        "",
        *cards,
        END,
        "",
    ]


def refresh(summary: Path, reports_dir: Path) -> None:
    """Rewrite the traffic part of an existing docs/BENCHMARKS.md (before its Setup section where it has none)."""
    marked_section.refresh(summary, BEGIN, END, "\n".join(index_lines(reports_dir, summary.parent)))
