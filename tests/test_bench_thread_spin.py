"""bench/thread_spin.py without a server: every policy it can restart chat with is one the chat settings take (a
refused one would stop the chat service mid-run), and the report's ratios are paired within a repeat, on made-up
rows. No timing is measured or asserted."""

from __future__ import annotations

from pathlib import Path

import pytest
from chat_service.engine.config import EngineConfig
from chat_service.settings import ChatSettings
from ortserve_testing.bench_rows import phase_row

from bench import thread_spin, thread_spin_report

ENVIRONMENT = {
    "cpu": {"describe": "a made-up CPU, 2 usable cores"},
    "machine": "made up",
    "versions": {"onnxruntime": "1.32.0", "onnxruntime-genai": "0.18.0", "nginx": "1.22.1"},
    "git": "abc1234",
}


@pytest.mark.parametrize("policy", list(thread_spin.POLICIES))
def test_every_policy_is_a_valid_chat_setting(policy: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("CHAT_MODEL_PATH", str(tmp_path))
    for key, value in (thread_spin.UNSET | thread_spin.POLICIES[policy]).items():
        monkeypatch.setenv(key, value)
    spinning = EngineConfig.from_settings(ChatSettings()).spinning
    expected_entries = {"default": 0, "off": 1, "stop": 1, "block4": 1, "spin200us": 1}
    assert len(spinning.config_entries()) == expected_entries.get(policy, 2)


def test_the_baseline_leaves_every_knob_unset_whatever_the_callers_environment(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("CHAT_MODEL_PATH", str(tmp_path))
    monkeypatch.setenv("CHAT_ENGINE_SPIN", "off")  # as if the caller had exported it
    for key, value in (thread_spin.UNSET | thread_spin.POLICIES["default"]).items():
        monkeypatch.setenv(key, value)
    assert EngineConfig.from_settings(ChatSettings()).spinning.config_entries() == {}


def row(policy: str, c: int, repeat: int, tok_s: float) -> dict:
    cpu_ms = {"chat": 20.0, "nginx": 0.1, "client": 1.0}
    return phase_row(policy, thread_spin.PROMPT, c, repeat, tok_s, cpu_ms_per_token=cpu_ms)


def test_the_report_pairs_ratios_within_a_repeat(tmp_path: Path) -> None:
    # stop / default per repeat: 1.1, 1.2, 0.9 (median 1.1); the medians' own ratio would be 72 / 80 = 0.9
    speeds = {"default": [100, 50, 80], "stop": [110, 60, 72]}
    rows = [row(policy, c, r, s) for policy, values in speeds.items() for r, s in enumerate(values) for c in (1, 8)]
    results = {
        "model": "made-up",
        "started": "now",
        "args": {"repeats": 3, "max_tokens": 128},
        "policies": {"default": {}, "stop": {"CHAT_ENGINE_SPIN": "stop"}},
        "load_1m_at_start": 0.5,
        "load_1m_at_end": 0.6,
        "environment": ENVIRONMENT,
        "chat": rows,
    }
    out = tmp_path / "report.md"
    summary = thread_spin_report.write(results, out)
    assert "1 stream(s), stop / default: aggregate **1.10×**, per-stream decode 1.10×, TTFT p50 1.00×" in summary
    text = out.read_text()
    assert "a made-up CPU, 2 usable cores" in text and "`stop`: CHAT_ENGINE_SPIN=stop" in text
    assert "| 8 | stop | 72.0 | 9.0 | 100 | 1.10 | 1.10 | 1.00 | 20.00 | 0.10 | 1.00 | 0.10 / 0.10 |" in text
