"""docs/BENCHMARKS.md and its PNG plots, from one run's raw results (results/bench/<time>/results.json).

    python -m bench.report results/bench/<time>/results.json [--out docs/BENCHMARKS.md]

Each figure is the median over the interleaved repeats; each ratio is the median of the ratios paired within a
repeat (same prompts, same moment), so a ratio does not mix runs.
"""

from __future__ import annotations

import argparse
import json
import statistics
from pathlib import Path

import numpy as np

from bench import embeddings_phase, multi_turn, plots, real_size, targets, traffic_index
from bench.tables import ENGINE, LABELS, METRICS, PEERS, ChatTable

NOISY_CORES = 0.25  # other processes' median CPU use above which the report warns
HOW_TO_READ = """## How to read it

- **engine limit**: the plain ONNX Runtime GenAI loop (`PlainGenerator` in
  `libs/testing/ortserve_testing/plain_engine.py`) in the bench's own process, no HTTP. At concurrency c it runs static
  batches of c requests that start together: the engine's best aggregate; at c = 1 it is the plain single-stream loop.
- **chat direct**: the chat service on its own port (HTTP/1.1, no proxy). **chat via proxy (TLS)**: through nginx, TLS
  and the API key check, as clients use it. **chat direct, generator engine (before)**: the same service with
  `CHAT_ENGINE=generator` (one ONNX Runtime GenAI Generator per request, no batching across requests), the "before".
- **llama-server Q4_1 / Q4_0** (`make bench-peers`): llama.cpp's server on the very GGUF the chat model is built from,
  and on the same weights requantized to Q4_0, llama.cpp's fastest CPU format; same client, same prompts.
- Every target gets the same conversations: a system message that starts with a unique nonce (so no prefix cache
  helps), then a ~40-token question (short) or a ~200-token passage and question (long); greedy; the same max_tokens.
  c clients each send their next request as soon as their last one ended.
- **shared** prompts: a ~200-token system message that every request repeats word for word, then the nonce and a
  short question: what a prefix cache is for. **chat direct, no prefix reuse** is the same service with
  `CHAT_PREFIX_CACHE_MB=0`, measured only there (and the generator engine only on the other two). llama-server keeps
  each slot's last prompt and reuses the part a new prompt shares with it (its own prompt cache, on by default).
- TTFT: request sent to first content delta. Per-stream decode: (completion tokens - 1) / (end - first token), median
  over the streams. Aggregate: all completion tokens of a phase over the phase's wall time.
- Each cell: the figure (median over the repeats), then its ratio to the engine limit and to each llama-server, each
  the median of ratios paired within one repeat. Above 1 is better for tok/s and worse for TTFT.
- Others' CPU: cores used by processes other than the bench, the stack and llama-server, during that row's phases
  (from /proc): the noise on a shared machine. It should be near 0.
- Greedy outputs differ between ONNX Runtime GenAI and llama.cpp (not the same quantized numbers), so completions
  stop at different lengths: compare the per-stream decode rate as well as the aggregate.
"""


def _number(value: float) -> str:
    return "-" if np.isnan(value) else f"{value:.0f}" if value >= 10 else f"{value:.2f}"


def chat_section(table: ChatTable, metric: str, prompt: str) -> list[str]:
    title, direction = METRICS[metric]
    present = [t for t in table.targets if table.measured(t, prompt)]
    references = [p for p in (ENGINE, targets.BEFORE, targets.NO_REUSE, *PEERS) if p in present]
    short_names = {
        ENGINE: "engine",
        targets.BEFORE: "before",
        targets.NO_REUSE: "no reuse",
        PEERS[0]: "llama Q4_1",
        PEERS[1]: "llama Q4_0",
    }
    lines = [
        f"### {title}, {prompt} prompts ({direction})",
        "",
        "| target | " + " | ".join(f"c={c}" for c in table.concurrencies) + " | others' CPU, cores (median / max) |",
        "|---|" + "---|" * len(table.concurrencies) + "---|",
    ]
    for target in present:
        cells = []
        for c in table.concurrencies:
            parts = [f"**{_number(table.figure(target, c, prompt, metric))}**"]
            for ref in references:
                if ref != target:
                    parts.append(f"{table.ratio(target, ref, c, prompt, metric):.2f}× {short_names[ref]}")
            cells.append("<br>".join(parts))
        lines.append(
            f"| {LABELS.get(target, target)} | " + " | ".join(cells) + f" | {table.others_cpu(target, prompt)} |"
        )
    return [*lines, ""]


def cpu_line(env: dict) -> str:
    """The CPU, its kernel-selecting ISA flags and usable cores; results from before they were recorded say so."""
    cpu = env.get("cpu")
    return cpu["describe"] if cpu else "not recorded (a run from before the CPU's flags were recorded)"


def setup_section(results: dict) -> list[str]:
    env, plan = results["environment"], results["plan"]
    versions = ", ".join(f"{k} {v}" for k, v in env["versions"].items())
    dirty = env["uncommitted_service_files"]
    lines = [
        "| | |",
        "|---|---|",
        f"| date | {env['date']} |",
        f"| machine | {env['machine']}, Linux {env['kernel']}, Python {env['python']} |",
        f"| cpu | {cpu_line(env)} |",
        f"| versions | {versions} |",
        f"| source | git {env['git']}"
        + (f" + uncommitted changes in {len(dirty)} service files" if dirty else "")
        + " |",
        f"| load average (1 min) | {results['load_1m_at_start']:.2f} at the start, "
        f"{results['load_1m_at_end']:.2f} at the end |",
        f"| plan | concurrency {plan['concurrencies']}, max_tokens {plan['max_tokens']}, greedy, "
        f"{plan['repeats']} interleaved repeats, max({plan['min_requests']}, {plan['rounds']} × c) requests a phase; "
        f"before each phase, up to {plan.get('quiet_wait_s', 0)} s of waiting for other processes to use under 0.2 "
        "cores |",
        "| chat service settings | " + ", ".join(f"{k} {v}" for k, v in env["chat_settings"].items()) + " |",
    ]
    if env.get("llama.cpp"):
        lines.append(f"| llama.cpp | {env['llama.cpp']} |")
        for name, peer in env["peers"].items():
            command = peer["command"].replace(str(Path.home()), "~")
            lines.append(f"| {name} | `{Path(command.split()[0]).name} {command.split(' ', 1)[1]}` |")
    return [*lines, ""]


def write(results: dict, out: Path) -> str:
    table = ChatTable(results["chat"])
    model = results.get("model", "smollm2-135m-instruct")
    at_real_size = "embeddings" not in results  # a --model run: the chat model alone, at its size
    plot_dir = out.parent / (out.stem if at_real_size else "benchmarks")
    plot_files = plots.draw(table, results.get("embeddings"), plot_dir)
    quick = results.get("quick")
    lines = [f"# Benchmarks: {model}" if at_real_size else "# Benchmarks", ""]
    if quick:
        lines += [
            "> **Quick run** (`--quick`: concurrency 1 and 2, few requests, short max_tokens): a smoke test of "
            "the benchmark, not figures to quote.",
            "",
        ]
    command = results.get("command") or "make bench" + ("-peers" if results["environment"].get("llama.cpp") else "")
    lines += [
        f"Generated by `{command}` (`bench/run.py`; `make bench` runs every such step). Re-run it to refresh; figures "
        "from different runs are not comparable, ratios are.",
        "",
        # ONNX Runtime picks its kernels by ISA: the same run on an AVX2-only CPU and on an AMX one differ in kind.
        f"CPU: {cpu_line(results['environment'])}.",
        "",
    ]
    others = statistics.median(r["cpu"]["other_cores"] for r in results["chat"])
    if others > NOISY_CORES:
        lines += [
            f"> **Noisy machine:** other processes used {others:.2f} of the cores (median over the chat phases) "
            "while this ran. Every figure is depressed, and unevenly: llama-server (2 threads that spin-wait for "
            "each other at every step) has suffered the most in such runs, so ratios to it understate llama.cpp.",
            "",
        ]
    lines += real_size.section(table, results.get("rss", {})) if at_real_size else targets.section(table)
    lines += targets.prefix_section(table)
    lines += multi_turn.section(results.get("multi_turn", []))
    lines += [] if at_real_size else real_size.index_lines(out.parent / "benchmarks", out.parent)
    lines += [] if at_real_size else traffic_index.index_lines(out.parent / "benchmarks", out.parent)
    lines += ["## Setup", "", *setup_section(results)]
    lines += [HOW_TO_READ]
    lines += ["## Chat", ""] + [f"![{p.stem}]({p.relative_to(out.parent)})" for p in plot_files] + [""]
    for metric, prompt in [
        ("decode", "short"),
        ("aggregate", "short"),
        ("aggregate", "long"),
        ("ttft_p50", "short"),
        ("ttft_p95", "short"),
        ("ttft_p50", "long"),
        ("ttft_p95", "long"),
        ("aggregate", "shared"),
        ("ttft_p50", "shared"),
        ("ttft_p95", "shared"),
    ]:
        if any(table.measured(t, prompt) for t in table.targets):
            lines += chat_section(table, metric, prompt)
    kinds = [p for p in ("short", "long", "shared") if any(table.measured(t, p) for t in table.targets)]
    lines += [
        "### Prompt and completion tokens (median per request)",
        "",
        "| target | "
        + " | ".join(f"{p} prompt" for p in kinds)
        + " | "
        + " | ".join(f"completion ({p})" for p in kinds)
        + " |",
        "|---|" + "---|" * (2 * len(kinds)),
    ]
    for t in table.targets:
        cells = [table.tokens(t, p, f) for f in ("prompt_tokens", "completion_tokens") for p in kinds]
        lines.append(f"| {LABELS.get(t, t)} | " + " | ".join(cells) + " |")
    errors = sum(len(r["errors"]) for r in results["chat"])
    retries = sum(r.get("retries", 0) for r in results["chat"])
    lines += [
        "",
        f"Failed chat requests in this run: {errors}. Requests sent again after the server had closed a "
        f"kept-alive connection (timed from the second send): {retries}.",
        "",
    ]
    if not at_real_size:
        lines += ["## Embeddings", "", *embeddings_phase.section(results["embeddings"])]
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text("\n".join(lines))
    return "\n".join(chat_section(table, "aggregate", "short"))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("results", type=Path)
    parser.add_argument("--out", type=Path, default=Path(__file__).resolve().parent.parent / "docs/BENCHMARKS.md")
    args = parser.parse_args()
    print(write(json.loads(args.results.read_text()), args.out))  # the report is the output


if __name__ == "__main__":
    main()
