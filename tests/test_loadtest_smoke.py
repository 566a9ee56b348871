"""The Locust scenarios run headless for a few seconds against the whole stack: requests are made and none fail.

No timing is asserted: the machines are shared, and this only proves that `make loadtest` works end to end.
"""

from __future__ import annotations

import argparse
import csv
import os
import signal
import subprocess
import sys
from pathlib import Path

import httpx
import pytest
from fake_ortserve import fake_ortserve
from ortserve_testing.processes import free_port
from ortserve_testing.waiting import wait_until
from stack_testing import ROOT, Stack

from loadtest import run as loadtest_run

CLASSES = ["StreamingChatUser", "ChatUser", "CompletionsUser", "EmbeddingsUser", "RerankUser", "MixedUser"]


def test_every_scenario_runs_without_failures(stack: Stack, tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "loadtest.run", *CLASSES, "--host", stack.base_url, "--ca", stack.ca]
        + ["--api-key", stack.api_key, "--users", str(len(CLASSES)), "--spawn-rate", str(len(CLASSES))]
        + ["--run-time", "6s", "--results", str(tmp_path)],
        cwd=ROOT,
        env={**os.environ, "LOADTEST_MAX_TOKENS": "16", "LOADTEST_CHAT_MODEL": "smollm2-135m-instruct"},
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
    ]
    for key in expected:
        assert key in rows and int(rows[key]["Request Count"]) > 0, f"no {key} requests: {sorted(rows)}"
    assert any(name.startswith("/v1/embeddings [batch") for _, name in rows)
    assert all(int(row["Failure Count"]) == 0 for row in rows.values()), result.stdout[-3000:]
    assert (tmp_path / "report.html").stat().st_size > 0
    assert "decode tok/s per stream" in (tmp_path / "locust_token_rates.csv").read_text()


# Against a fake proxy on loopback (tests/fake_ortserve.py): the runner's own behaviour, bounded, with no model.


def _rows(stats_csv: Path) -> dict[tuple[str, str], dict[str, str]]:
    return {(row["Type"], row["Name"]): row for row in csv.DictReader(stats_csv.open())}


@pytest.mark.model  # a Locust process of its own: not in make test-unit
def test_token_rates_stay_out_of_the_response_time_statistics(tmp_path: Path) -> None:
    with fake_ortserve() as fake:
        result = subprocess.run(
            [sys.executable, "-m", "loadtest.run", "StreamingChatUser", "--host", fake.url, "--users", "2"]
            + ["--spawn-rate", "2", "--run-time", "3s", "--results", str(tmp_path)],
            cwd=ROOT,
            env={k: v for k, v in os.environ.items() if not k.startswith("LOADTEST_")},
            capture_output=True,
            text=True,
            timeout=90,
        )
        models = {model for path, model, _ in fake.seen if path == "/v1/chat/completions"}
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert models == {"qwen2.5-coder-0.5b-instruct"}  # the real-size model by default
    rows = _rows(tmp_path / "locust_stats.csv")
    assert not any("tok/s" in name for _, name in rows), sorted(rows)
    assert int(rows[("SSE", "TTFT")]["Request Count"]) > 0
    rates = list(csv.DictReader((tmp_path / "locust_token_rates.csv").open()))
    assert [row["name"] for row in rates] == ["decode tok/s per stream"] and int(rates[0]["streams"]) > 0
    assert "decode tok/s per stream" in result.stdout  # the printed summary has them too


def test_the_ui_runs_the_mixed_user_alone_by_default() -> None:
    args = argparse.Namespace(classes=["MixedUser"], users=8, spawn_rate=2.0, ui=True, class_picker=False, web_port=1)
    command = loadtest_run.locust_command(args, None)
    assert "MixedUser" in command and "--class-picker" not in command and "--headless" not in command


@pytest.mark.parametrize("started", [True, False])
def test_the_ui_stops_the_stack_only_if_it_started_it(monkeypatch: pytest.MonkeyPatch, started: bool) -> None:
    calls: list[list[str]] = []
    monkeypatch.setattr(loadtest_run, "local_stack_credentials", lambda: ("https://h", "ca", "key", started))
    monkeypatch.setattr(loadtest_run.subprocess, "run", lambda command, **_: calls.append(command))

    def interrupted(*_args: object) -> int:
        raise KeyboardInterrupt  # what Ctrl-C does to the wait; SIGTERM ends the same wait

    monkeypatch.setattr(loadtest_run, "run_until_done", interrupted)
    with pytest.raises(KeyboardInterrupt):
        loadtest_run.main(["--ui"])
    assert calls == ([[*loadtest_run.STACK, "down"]] if started else [])


@pytest.mark.model  # a Locust process of its own: not in make test-unit
def test_the_ui_stops_cleanly_and_leaves_no_results_folder() -> None:
    results = ROOT / "results/loadtest"
    before = set(results.iterdir()) if results.exists() else set()
    web_port = free_port()
    with fake_ortserve() as fake:
        ui = subprocess.Popen(
            [sys.executable, "-m", "loadtest.run", "--ui", "--host", fake.url, "--web-port", str(web_port)]
            + ["--users", "2", "--spawn-rate", "2"],
            cwd=ROOT,
            env={k: v for k, v in os.environ.items() if not k.startswith("LOADTEST_")},
        )
        try:
            web = f"http://127.0.0.1:{web_port}"
            wait_until(lambda: _answers(web), "the Locust web UI", timeout_s=60)
            started = httpx.post(f"{web}/swarm", data={"user_count": 2, "spawn_rate": 2, "host": fake.url})
            assert started.json()["success"], started.text
            # MixedUser alone reaches both the streaming and the rerank endpoints with only two users.
            paths = {"/v1/rerank", "/v1/chat/completions"}
            wait_until(lambda: paths <= {p for p, _, _ in fake.seen}, "rerank and chat requests", timeout_s=60)
            wait_until(lambda: any(s for _, _, s in fake.seen), "a streamed chat", timeout_s=60)
            stats = wait_until(lambda: _token_rates(web), "the token rates tab's rows", timeout_s=30)
            assert stats[0]["name"] == "decode tok/s per stream"
            assert not any("tok/s" in row["name"] for row in httpx.get(f"{web}/stats/requests").json()["stats"])
            assert httpx.get(f"{web}/stop").status_code == 405  # Locust 2.47: the stop call is a POST
            assert httpx.post(f"{web}/stop").status_code == 200
            ui.send_signal(signal.SIGTERM)
            assert ui.wait(60) in (0, -signal.SIGTERM, 128 + signal.SIGTERM)
        finally:
            if ui.poll() is None:
                ui.kill()
                ui.wait(30)
    after = set(results.iterdir()) if results.exists() else set()
    assert after == before, f"the UI left result folders: {after - before}"


def _answers(url: str) -> bool:
    try:
        return httpx.get(url, timeout=2).status_code == 200
    except httpx.HTTPError:
        return False


def _token_rates(web: str) -> list[dict] | None:
    extended = httpx.get(f"{web}/stats/requests", timeout=5).json().get("extended_stats") or []
    rows = [row for table in extended if table["key"] == "token-rates" for row in table["data"]]
    return rows or None
