"""The thread-spinning report (bench/thread_spin.py): per concurrency, each policy's figures and its ratios to the
baseline policy, every ratio paired within a repeat, then the median."""

from __future__ import annotations

import math
import statistics
from pathlib import Path

from bench.tables import ChatTable

PROMPT = "defaults"
METRICS = ("aggregate", "decode", "ttft_p50")
PARTS = ("chat", "nginx", "client")  # the processes whose CPU per token each row records


def _f(value: float, digits: int = 1) -> str:
    return "-" if math.isnan(value) else f"{value:.{digits}f}"


def median_text(values: list[float], digits: int = 1) -> str:
    return f"{statistics.median(values):.{digits}f}" if values else "-"


def write(results: dict, out: Path) -> str:
    table = ChatTable(results["chat"])
    policies = list(results["policies"])
    baseline = policies[0]
    env = results["environment"]
    settings = "; ".join(
        f"`{name}`: " + (", ".join(f"{k}={v}" for k, v in given.items()) or "nothing set (onnxruntime's own)")
        for name, given in results["policies"].items()
    )
    lines = [
        f"# Thread spinning: {results['model']}",
        "",
        "Produced by `make bench-spin` (bench/thread_spin.py); do not edit by hand.",
        "",
        f"- **CPU: {env['cpu']['describe']}**",
        f"- machine: {env['machine']}; onnxruntime {env['versions']['onnxruntime']}, onnxruntime-genai "
        f"{env['versions']['onnxruntime-genai']}, nginx {env['versions']['nginx']}; git {env['git']}",
        f"- run: {results['started']}, repeats {results['args']['repeats']}, {results['args']['max_tokens']} tokens at "
        f"most per reply; load average {results['load_1m_at_start']} at the start, {results['load_1m_at_end']} at the "
        "end. **The machine was shared with other jobs**: read the ratios, paired within a repeat (interleaved), "
        "beside the others' CPU of each phase.",
        f"- policies (chat settings; the chat service restarted under each, nginx and the rest kept): {settings}",
        "- requests: short questions through the proxy (TLS, nginx), streaming, the model's default samplers (no "
        "sampler field sent), each with a unique nonce; closed loop at each concurrency.",
        "- CPU ms per token: CPU time the process used during the phase over the tokens streamed (the chat service's "
        "threads all together; nginx's master and workers; the bench client).",
        "",
        f"| streams | policy | aggregate tok/s | per-stream decode tok/s | TTFT p50 ms | aggregate / {baseline} "
        f"| decode / {baseline} | TTFT p50 / {baseline} | chat CPU ms/token | nginx CPU ms/token | client CPU ms/token "
        "| others' CPU (median / max) |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    summary = []
    for c in table.concurrencies:
        for policy in policies:
            keys = [(policy, c, PROMPT, r) for r in table.repeats]
            rows = [table.rows[k] for k in keys if k in table.rows]
            if not rows:
                continue
            figures = [table.figure(policy, c, PROMPT, m) for m in METRICS]
            ratios = ["" if policy == baseline else _f(table.ratio(policy, baseline, c, PROMPT, m), 2) for m in METRICS]
            per_token = [statistics.median(row["cpu_ms_per_token"][part] for row in rows) for part in PARTS]
            others = sorted(row["cpu"]["other_cores"] for row in rows)
            lines.append(
                f"| {c} | {policy} | {_f(figures[0])} | {_f(figures[1])} | {_f(figures[2], 0)} | "
                + " | ".join(ratios)
                + " | "
                + " | ".join(_f(v, 2) for v in per_token)
                + f" | {others[len(others) // 2]:.2f} / {others[-1]:.2f} |"
            )
            if policy != baseline:
                aggregate, decode, ttft = (table.ratio(policy, baseline, c, PROMPT, m) for m in METRICS)
                summary.append(
                    f"- {c} stream(s), {policy} / {baseline}: aggregate **{_f(aggregate, 2)}×**, per-stream decode "
                    f"{_f(decode, 2)}×, TTFT p50 {_f(ttft, 2)}×"
                )
    errors = [e for row in results["chat"] for e in row["errors"]]
    if errors:
        summary.append(f"- **{len(errors)} request(s) failed**, e.g. {errors[0]}")
    lines[4:4] = ["## Summary", "", *summary, ""]
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text("\n".join(lines) + "\n")
    return "\n".join(summary)
