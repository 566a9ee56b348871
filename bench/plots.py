"""The benchmark's PNG plots: throughput and TTFT against concurrency, and embeddings throughput against clients."""

from __future__ import annotations

import statistics
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402 - after choosing the headless backend
from matplotlib import ticker  # noqa: E402

from bench.tables import ChatTable


def _lines(ax, table: ChatTable, metric: str, prompt: str, title: str, ylabel: str) -> None:
    for target in table.targets:
        ys = [table.figure(target, c, prompt, metric) for c in table.concurrencies]
        ax.plot(table.concurrencies, ys, marker="o", label=target)
    ax.set_xscale("log", base=2)
    ax.set_xticks(table.concurrencies, [str(c) for c in table.concurrencies])
    ax.set_xlabel("concurrent streams")
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    ax.grid(alpha=0.3)


def draw(table: ChatTable, embeddings: dict | None, out_dir: Path) -> list[Path]:
    out_dir.mkdir(parents=True, exist_ok=True)
    files = []

    fig, axes = plt.subplots(1, 2, figsize=(11, 4.2))
    _lines(axes[0], table, "aggregate", "short", "Aggregate output (short prompts)", "tok/s")
    _lines(axes[1], table, "decode", "short", "Per-stream decode (short prompts)", "tok/s per stream")
    axes[0].legend(fontsize=8)
    fig.tight_layout()
    files.append(out_dir / "throughput.png")
    fig.savefig(files[-1], dpi=110)
    plt.close(fig)

    fig, axes = plt.subplots(1, 2, figsize=(11, 4.2))
    for ax, prompt in zip(axes, ("short", "long"), strict=True):
        if not any(table.measured(t, prompt) for t in table.targets):  # a run with --prompts short
            ax.set_visible(False)
            continue
        _lines(ax, table, "ttft_p50", prompt, f"TTFT p50, {prompt} prompts (lower is better)", "ms")
        ax.set_yscale("log")
        ax.yaxis.set_major_formatter(ticker.FuncFormatter(lambda v, _: f"{v:g}"))
        ax.yaxis.set_minor_formatter(ticker.FuncFormatter(lambda v, _: f"{v:g}" if str(v)[0] in "235" else ""))
    axes[0].legend(fontsize=8)
    fig.tight_layout()
    files.append(out_dir / "ttft.png")
    fig.savefig(files[-1], dpi=110)
    plt.close(fig)

    if embeddings is None:  # a run on one chat model at real size measures no embeddings
        return files
    rows = embeddings["rows"]
    fig, ax = plt.subplots(figsize=(6, 4.2))
    for batch in sorted({r["batch"] for r in rows}):
        proxy = sorted({r["clients"] for r in rows if r["target"] == "proxy"})
        ys = [
            statistics.median(
                r["sentences_per_s"]
                for r in rows
                if r["target"] == "proxy" and r["batch"] == batch and r["clients"] == clients
            )
            for clients in proxy
        ]
        line = ax.plot(proxy, ys, marker="o", label=f"proxy, {batch} per request")[0]
        reference = statistics.median(
            r["sentences_per_s"] for r in rows if r["target"] == "sentence-transformers" and r["batch"] == batch
        )
        ax.axhline(reference, linestyle="--", color=line.get_color(), label=f"sentence-transformers, batch {batch}")
    ax.set_xscale("log", base=2)
    ax.set_xticks(proxy, [str(c) for c in proxy])
    ax.set_xlabel("concurrent clients")
    ax.set_ylabel("sentences/s")
    ax.set_title("Embeddings (all-MiniLM-L6-v2)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    files.append(out_dir / "embeddings.png")
    fig.savefig(files[-1], dpi=110)
    plt.close(fig)
    return files
