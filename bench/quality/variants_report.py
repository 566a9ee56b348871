"""The build-variants report (docs/benchmarks/<model>-build-variants.md) from bench/quality/variants.py's results."""

from __future__ import annotations

import statistics
from pathlib import Path

from bench.quality.perplexity import Score
from bench.quality.weight_types import describe

QUALITY_TARGET = 1.03


def _ppl(entries: dict) -> float:
    total = Score(0.0, 0)
    for figures in entries.values():
        if isinstance(figures, dict) and "nll" in figures:
            total = total + Score(figures["nll"], figures["count"])
    return total.perplexity


def _median(probes: list[dict], key: str) -> float:
    values = [p[key] for p in probes if p.get(key)]
    return statistics.median(values) if values else float("nan")


def _ratio(value: float | None) -> str:
    """A speed ratio, or a dash where the run did not measure it (8-row decode: runs before 2026-12-07)."""
    return "–" if value is None else f"{value:.2f}×"


def write(results: dict, out: Path) -> None:
    env = results["environment"]
    cpu = env["cpu"]
    fp32_texts = results["fp32"]["texts"]
    fp32 = _ppl(fp32_texts)
    lines = [
        f"# Build variants: {results['model']}",
        "",
        "Produced by `make quality-variants` (bench/quality/variants.py); do not edit by hand. Each variant is the",
        "onnxruntime-genai builder's int4 output from the same fp32 weights with the served options plus its own;",
        "perplexity on the quality gate's corpus and windows (docs/QUALITY.md), speed and RSS probed in a process per",
        "variant (bench/quality/probe.py: a 256-token prompt, then 128 greedy tokens, ONNX Runtime GenAI, the plain",
        "engine; then 8 rows of a 64-token prompt decoding together, the kernels' path at 8 streams), variants",
        "interleaved repeat by repeat; speed ratios are medians of ratios paired within a repeat.",
        "",
        f"- CPU: {cpu['describe']}; load average {results['load_1m_at_start']} at the start,"
        f" {results['load_1m_at_end']} at the end",
        f"- run: {results['started']}; `{results['command']}`; git {env['git']}",
        f"- fp32 perplexity (torch, the same ids): {fp32:.4f}",
        *(
            [f"- builds, perplexities and fp32 reused from {results['reused']}; speed and RSS probed in this run"]
            if results.get("reused")
            else []
        ),
        "",
        "| variant | builder options beyond the served ones | int4 / fp32 | ≤ 1.03 | decode vs served | 8-row decode"
        " vs served | prefill vs served | decode tok/s | weights MiB | RSS after load MiB | peak RSS MiB"
        " | weight matrices by type |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    served_options = results["options"]["served"]
    for name, entry in results["variants"].items():
        extra = [o for o in results["options"][name] if o not in served_options] or ["(as served)"]
        ratio = _ppl(entry["perplexity"]) / fp32
        probes = entry["probes"]
        met = "yes" if ratio <= QUALITY_TARGET else "no"
        lines.append(
            f"| {name} | {' '.join(f'`{o}`' for o in extra)} | {ratio:.4f} | {met} | {entry['decode_ratio']:.2f}×"
            f" | {_ratio(entry.get('decode_rows_ratio'))} | {entry['prefill_ratio']:.2f}×"
            f" | {_median(probes, 'decode_tok_s'):.1f} | {entry['size_mib']}"
            f" | {_median(probes, 'loaded_rss_mib'):.0f} | {_median(probes, 'peak_rss_mib'):.0f}"
            f" | {describe(entry['types']) if entry.get('types') else '?'} |"
        )
    for name, reason in results.get("failed", {}).items():
        extra = [o for o in results["options"][name] if o not in served_options]
        lines.append(f"| {name} | {' '.join(f'`{o}`' for o in extra)} | not built: {reason} | | | | | | | | | |")
    texts = list(fp32_texts)
    lines += ["", "Per text (perplexity):", "", "| variant | " + " | ".join(texts) + " |"]
    lines.append("|---|" + "---|" * len(texts))
    lines.append("| fp32 | " + " | ".join(f"{_ppl({t: fp32_texts[t]}):.3f}" for t in texts) + " |")
    for name, entry in results["variants"].items():
        lines.append(f"| {name} | " + " | ".join(f"{_ppl({t: entry['perplexity'][t]}):.3f}" for t in texts) + " |")
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text("\n".join(lines) + "\n")
