"""The Locust scenarios run headless for a few seconds against the whole stack: requests are made and none fail.

No timing is asserted: the machines are shared, and this only proves that `make loadtest` works end to end.
"""

from __future__ import annotations

import csv
import os
import subprocess
import sys
from pathlib import Path

from stack_testing import ROOT, Stack

CLASSES = ["StreamingChatUser", "ChatUser", "CompletionsUser", "EmbeddingsUser", "RerankUser", "MixedUser"]


def test_every_scenario_runs_without_failures(stack: Stack, tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "loadtest.run", *CLASSES, "--host", stack.base_url, "--ca", stack.ca]
        + ["--api-key", stack.api_key, "--users", str(len(CLASSES)), "--spawn-rate", str(len(CLASSES))]
        + ["--run-time", "6s", "--results", str(tmp_path)],
        cwd=ROOT,
        env={**os.environ, "LOADTEST_MAX_TOKENS": "16"},
        capture_output=True,
        text=True,
        timeout=90,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    rows = {(row["Type"], row["Name"]): row for row in csv.DictReader((tmp_path / "locust_stats.csv").open())}
    expected = [
        ("POST", "/v1/chat/completions [stream]"),
        ("POST", "/v1/chat/completions"),
        ("POST", "/v1/completions"),
        ("POST", "/v1/rerank"),
        ("SSE", "TTFT"),
        ("SSE", "decode tok/s per stream"),
    ]
    for key in expected:
        assert key in rows and int(rows[key]["Request Count"]) > 0, f"no {key} requests: {sorted(rows)}"
    assert any(name.startswith("/v1/embeddings [batch") for _, name in rows)
    assert all(int(row["Failure Count"]) == 0 for row in rows.values()), result.stdout[-3000:]
    assert (tmp_path / "report.html").stat().st_size > 0
