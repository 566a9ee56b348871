"""Soak: the mixed Locust scenario against a stack of its own for SOAK_SECONDS, sampling each service's RSS.

Runs only with SOAK_SECONDS set (`make soak`: 600 s); skipped in `make test`. Passes when no request failed except
by a refusal (429/503) and no service's RSS grows steadily after the warm-up (least-squares slope under
SOAK_MAX_SLOPE_MB_PER_MIN). Figures go to results/reliability/soak-<time>.json, Locust's CSV and HTML beside them.
"""

from __future__ import annotations

import csv
import os
import subprocess
import sys
import threading
import time
from collections.abc import Iterator

import pytest
from reliability_testing import RESULTS_DIR, Figures, service_pid, slope_per_minute, tree_rss_mb
from stack_testing import ROOT, Stack

SECONDS = int(os.environ.get("SOAK_SECONDS", "0"))
USERS = int(os.environ.get("SOAK_USERS", "8"))
SAMPLE_EVERY_S = 10
WARM_UP_FRACTION = 0.2  # caches, KV pages and allocator pools fill first; the slope is taken after this
MAX_SLOPE = float(os.environ.get("SOAK_MAX_SLOPE_MB_PER_MIN", "1.0"))
SERVICES = ("chat", "embeddings", "registry", "proxy")
REFUSAL_MARKERS = ("HTTP 429", "HTTP 503")

pytestmark = pytest.mark.skipif(not SECONDS, reason="a soak runs only with SOAK_SECONDS set (make soak)")


@pytest.fixture(scope="module")
def soak_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    # As `make up` runs it: default capacities and timeouts, no local trace receiver.
    stack = Stack(tmp_path_factory.mktemp("soak"), extra_env={"ORTSERVE_TRACES": "0"}).up()
    yield stack
    stack.down()


def _sample(stack: Stack, stop: threading.Event, samples: dict[str, list[tuple[float, float]]]) -> None:
    pids = {name: service_pid(stack, name) for name in SERVICES}
    start = time.monotonic()
    while not stop.wait(SAMPLE_EVERY_S if samples[SERVICES[0]] else 0):
        for name, pid in pids.items():
            rss = tree_rss_mb(pid)
            if rss is not None:
                samples[name].append((time.monotonic() - start, rss))


def test_soak(soak_stack: Stack) -> None:
    stack = soak_stack
    out = RESULTS_DIR / f"soak-{time.strftime('%Y%m%d-%H%M%S')}"
    out.mkdir(parents=True, exist_ok=True)
    pids_before = {name: service_pid(stack, name) for name in SERVICES}
    samples: dict[str, list[tuple[float, float]]] = {name: [] for name in SERVICES}
    stop = threading.Event()
    sampler = threading.Thread(target=_sample, args=(stack, stop, samples), daemon=True)
    sampler.start()
    command = [sys.executable, "-m", "loadtest.run", "MixedUser", "--host", stack.base_url, "--ca", stack.ca]
    command += ["--api-key", stack.api_key, "--users", str(USERS), "--spawn-rate", "2"]
    command += ["--run-time", f"{SECONDS}s", "--results", str(out)]
    try:
        result = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=SECONDS + 180)
    finally:
        stop.set()
        sampler.join(30)
    (out / "locust-output.txt").write_text(result.stdout + result.stderr)

    rows = list(csv.DictReader((out / "locust_stats.csv").open()))
    http_rows = [r for r in rows if r["Type"] != "SSE" and r["Name"] != "Aggregated"]
    failures = (
        list(csv.DictReader((out / "locust_failures.csv").open())) if (out / "locust_failures.csv").exists() else []
    )
    refusals = sum(int(f["Occurrences"]) for f in failures if any(m in f["Error"] for m in REFUSAL_MARKERS))
    errors = [f for f in failures if not any(m in f["Error"] for m in REFUSAL_MARKERS)]
    slopes, rss = {}, {}
    for name, series in samples.items():
        steady = [s for s in series if s[0] >= WARM_UP_FRACTION * SECONDS]
        slopes[name] = round(slope_per_minute(steady), 3)
        rss[name] = {"start_mb": series[0][1], "end_mb": series[-1][1], "max_mb": max(v for _, v in series)}
    figures = {
        "seconds": SECONDS,
        "users": USERS,
        "requests": sum(int(r["Request Count"]) for r in http_rows),
        "failures": sum(int(r["Failure Count"]) for r in http_rows),
        "refusals": refusals,
        "errors_not_refusals": sum(int(f["Occurrences"]) for f in errors),
        "http_5xx_not_refusals": sum(int(f["Occurrences"]) for f in errors if "HTTP 5" in f["Error"]),
        "rss_slope_mb_per_min": slopes,
        "rss": rss,
        "restarted": [name for name in SERVICES if service_pid(stack, name) != pids_before[name]],
        "by_request": {r["Name"]: int(r["Request Count"]) for r in http_rows},
        "results": str(out),
    }
    Figures("soak", figures).write()
    assert figures["requests"] > 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert not errors, errors[:10]
    assert not figures["restarted"], figures["restarted"]
    assert all(slope < MAX_SLOPE for slope in slopes.values()), slopes
