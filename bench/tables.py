"""The chat rows of a run and the figures read from them: what the report, the scorecards and the plots share (this
module imports no other bench module, so they all import it and none imports another in a circle)."""

from __future__ import annotations

import statistics

import numpy as np

ENGINE = "engine"
PEERS = ("llama-server Q4_1", "llama-server Q4_0")
LABELS = {ENGINE: "engine limit (plain ORT GenAI loop, in-process)"}
METRICS = {
    "decode": ("per-stream decode, tok/s", "higher is better"),
    "aggregate": ("aggregate output, tok/s", "higher is better"),
    "ttft_p50": ("TTFT p50, ms", "lower is better"),
    "ttft_p95": ("TTFT p95, ms", "lower is better"),
}


def percentile(values: list[float], q: float) -> float:
    return float(np.percentile(values, q)) if values else float("nan")


def phase_value(row: dict, metric: str) -> float:
    if metric == "decode":
        return statistics.median(row["decode_tok_s"]) if row["decode_tok_s"] else float("nan")
    if metric == "aggregate":
        return row["output_tok_s"]
    return 1000 * percentile(row["ttft_s"], 50 if metric == "ttft_p50" else 95)


class ChatTable:
    """The chat rows indexed by (target, concurrency, prompt, repeat)."""

    def __init__(self, rows: list[dict]) -> None:
        self.rows = {(r["target"], r["concurrency"], r["prompt"], r["repeat"]): r for r in rows}
        self.targets = list(dict.fromkeys(r["target"] for r in rows))
        self.concurrencies = sorted({r["concurrency"] for r in rows})
        self.repeats = sorted({r["repeat"] for r in rows})

    def values(self, target: str, c: int, prompt: str, metric: str) -> list[float]:
        return [phase_value(self.rows[k], metric) for k in self._keys(target, c, prompt)]

    def _keys(self, target: str, c: int, prompt: str) -> list[tuple]:
        return [(target, c, prompt, r) for r in self.repeats if (target, c, prompt, r) in self.rows]

    def figure(self, target: str, c: int, prompt: str, metric: str) -> float:
        values = [v for v in self.values(target, c, prompt, metric) if not np.isnan(v)]
        return statistics.median(values) if values else float("nan")

    def ratio(self, target: str, reference: str, c: int, prompt: str, metric: str) -> float:
        """One target's figure over another's for the same phase, paired within a repeat, the median."""
        return self._paired([((target, c, prompt, r), (reference, c, prompt, r)) for r in self.repeats], metric)

    def ratio_of_arms(self, target: str, c: int, prompt: str, base: str, metric: str) -> float:
        """One target's prompt (arm) over another of its prompts at the same concurrency, paired within a repeat."""
        return self._paired([((target, c, prompt, r), (target, c, base, r)) for r in self.repeats], metric)

    def across_concurrency(self, target: str, high: int, low: int, prompt: str, metric: str) -> float:
        """One target's figure at concurrency `high` over `low`, paired within a repeat."""
        return self._paired([((target, high, prompt, r), (target, low, prompt, r)) for r in self.repeats], metric)

    def _paired(self, keys: list[tuple[tuple, tuple]], metric: str = "aggregate") -> float:
        pairs = [
            phase_value(self.rows[a], metric) / phase_value(self.rows[b], metric)
            for a, b in keys
            if a in self.rows and b in self.rows
        ]
        pairs = [p for p in pairs if np.isfinite(p)]
        return statistics.median(pairs) if pairs else float("nan")

    def others_cpu(self, target: str, prompt: str) -> str:
        cores = [self.rows[k]["cpu"]["other_cores"] for c in self.concurrencies for k in self._keys(target, c, prompt)]
        return f"{statistics.median(cores):.2f} / {max(cores):.2f}" if cores else "-"

    def measured(self, target: str, prompt: str) -> bool:
        return any(self._keys(target, c, prompt) for c in self.concurrencies)

    def tokens(self, target: str, prompt: str, field: str) -> str:
        values = [v for c in self.concurrencies for k in self._keys(target, c, prompt) for v in self.rows[k][field]]
        values = [v for v in values if v is not None]
        return f"{statistics.median(values):.0f}" if values else "-"
