"""Reading a service's /metrics (Prometheus text) in tests: a state to wait for, or a count to compare."""

from __future__ import annotations

import re


def sample(text: str, name: str, **labels: str) -> float:
    """One sample's value from a Prometheus exposition (0 when the series does not exist yet)."""
    label_text = ",".join(f'{k}="{v}"' for k, v in sorted(labels.items()))  # the exposition sorts them
    pattern = r"^" + re.escape(f"{name}{{{label_text}}}" if labels else name) + r" ([0-9.e+-]+)$"
    match = re.search(pattern, text, re.MULTILINE)
    return float(match.group(1)) if match else 0.0


def admission(text: str) -> tuple[float, float]:
    """(running, waiting): the requests holding an admission slot, and those queued for one."""
    return sample(text, "ortserve_requests_running"), sample(text, "ortserve_requests_waiting")
