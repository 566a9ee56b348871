"""The scorecard of a run on a real-size model (`python -m bench.run --model qwen2.5-coder-0.5b-instruct --peers`):
the targets of issue #17, as ratios measured in the same run, against llama-server's best variant on the same GGUF
(the file the model was built from, and its Q4_0 requantization), and the resident memory of each server."""

from __future__ import annotations

from bench.report import ChatTable
from bench.targets import DIRECT, PROXY, _across_concurrency, _cell  # noqa: PLC2701 - the same scorecard cells

PEER_PREFIX = "llama-server "


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

    def row(measure: str, goal: str, value, passes) -> str:
        cells = []
        for target in ours:
            figure = value(target)
            cells.append(_cell(figure, passes(figure) if judged or "at 8" not in goal else None))
        return f"| {measure} | " + " | ".join(cells) + f" | {goal} |"

    lines = [
        f"## Targets at real size ({prompt} prompts)",
        "",
        "| measure | " + " | ".join(ours) + " | target |",
        "|---|" + "---|" * len(ours) + "---|",
    ]
    if peer_top:
        lines.append(
            row(
                f"aggregate at {top} concurrent / the best llama-server ({peer_top.removeprefix(PEER_PREFIX)})",
                "≥ 1.2× at 8",
                lambda t: table.figure(t, top, prompt, "aggregate") / peer_top_figure,
                lambda v: v >= 1.2,
            )
        )
    lines.append(
        row(
            f"aggregate at {top} concurrent / our own at 1",
            "≥ 3× at 8",
            lambda t: _across_concurrency(table, t, top, 1, prompt, "aggregate"),
            lambda v: v >= 3,
        )
    )
    if peer_one:
        lines.append(
            row(
                f"single-stream decode / the best llama-server ({peer_one.removeprefix(PEER_PREFIX)})",
                "≥ 1.0×",
                lambda t: table.figure(t, 1, prompt, "decode") / peer_one_figure,
                lambda v: v >= 1.0,
            )
        )
    lines += [
        row(
            "single-stream decode / the plain engine",
            "≥ 0.95×",
            lambda t: table.ratio(t, "engine", 1, prompt, "decode"),
            lambda v: v >= 0.95,
        ),
        row(
            f"TTFT p50 at {top} concurrent / at 1",
            "≤ 2× at 8",
            lambda t: _across_concurrency(table, t, top, 1, prompt, "ttft_p50"),
            lambda v: v <= 2,
        ),
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
