"""A bench phase's result row, as bench/run.phase_result and the CPU monitor make it, for the bench reports' tests."""

from __future__ import annotations

# The CPU monitor's figures for a phase (bench/cpu_monitor.CpuUse.as_dict).
CPU = {"seconds": 1.0, "busy_cores": 1.0, "own_cores": 1.0, "other_cores": 0.1, "load_1m": 0.5}


def phase_row(target: str, prompt: str, c: int, repeat: int, tok_s: float, **extra: object) -> dict:
    """One phase of 4 requests of 128 tokens at tok_s aggregate, no errors; extra adds a bench's own fields."""
    return {
        "target": target,
        "prompt": prompt,
        "concurrency": c,
        "repeat": repeat,
        "seconds": 1.0,
        "output_tok_s": tok_s,
        "ttft_s": [0.1] * 4,
        "decode_tok_s": [tok_s / c] * 4,
        "completion_tokens": [128] * 4,
        "errors": [],
        "cpu": CPU,
        **extra,
    }
