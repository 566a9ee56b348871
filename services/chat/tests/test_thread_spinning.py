"""CHAT_ENGINE_SPIN, CHAT_ENGINE_SPIN_US and CHAT_ENGINE_DYNAMIC_BLOCK_BASE: the onnxruntime session config entries
they make, read back from the sessions both engines open on the real SmolLM2 (the batched engine's SessionOptions;
the session ONNX Runtime GenAI opens from the generator engine's genai_config overlay, from onnxruntime's own log),
the service answering under each policy, and invalid values refused at startup."""

from __future__ import annotations

import json
import logging
import os
import re
import subprocess
import sys
from pathlib import Path

import onnxruntime_genai as og
import pytest
from chat_service.engine.batched.decoder import OnnxDecoder
from chat_service.engine.config import EngineConfig
from chat_service.engine.generator import session_overlay
from chat_service.engine.model_folder import ModelFolder
from chat_service.engine.spinning import SPINNING_KEYS, ThreadSpinning
from chat_service.main import create_app
from chat_service.settings import ChatSettings
from fastapi.testclient import TestClient
from ortserve_testing.numerics import text_agrees
from pydantic import ValidationError

EVERY_KNOB = {"engine_spin": "stop", "engine_spin_us": 500, "engine_dynamic_block_base": 4}
EVERY_ENTRY = {
    "session.force_spinning_stop": "1",
    "session.intra_op.spin_duration_us": "500",
    "session.dynamic_block_base": "4",
}
PROMPT = "The three primary colours are"


def test_each_policy_makes_its_session_entries() -> None:
    assert ThreadSpinning().config_entries() == {}
    assert ThreadSpinning("off").config_entries() == {"session.intra_op.allow_spinning": "0"}
    assert ThreadSpinning("stop").config_entries() == {"session.force_spinning_stop": "1"}
    assert ThreadSpinning("stop", 500, 4).config_entries() == EVERY_ENTRY
    assert ThreadSpinning("default", None, 2).config_entries() == {"session.dynamic_block_base": "2"}
    assert set(EVERY_ENTRY) | {"session.intra_op.allow_spinning"} == set(SPINNING_KEYS)


def test_the_settings_reach_the_engine_config_and_the_generator_overlay(tmp_path: Path) -> None:
    settings = ChatSettings(model_path=tmp_path, engine_threads=2, **EVERY_KNOB)
    config = EngineConfig.from_settings(settings)
    assert config.spinning == ThreadSpinning("stop", 500, 4)
    # genai_config takes a config entry only as a string: a number there is a JSON error at load
    options = session_overlay(config)["model"]["decoder"]["session_options"]
    assert options == {"intra_op_num_threads": 2, **EVERY_ENTRY}
    assert session_overlay(EngineConfig())["model"]["decoder"]["session_options"] == {"intra_op_num_threads": 1}


@pytest.mark.parametrize(
    ("environment", "named"),
    [
        ({"CHAT_ENGINE_SPIN": "sometimes"}, "engine_spin"),
        ({"CHAT_ENGINE_SPIN_US": "0"}, "engine_spin_us"),
        ({"CHAT_ENGINE_SPIN_US": "50000"}, "engine_spin_us"),
        ({"CHAT_ENGINE_DYNAMIC_BLOCK_BASE": "0"}, "engine_dynamic_block_base"),
        ({"CHAT_ENGINE_DYNAMIC_BLOCK_BASE": "four"}, "engine_dynamic_block_base"),
        ({"CHAT_ENGINE_SPIN": "off", "CHAT_ENGINE_SPIN_US": "500"}, "CHAT_ENGINE_SPIN=off"),
    ],
)
def test_invalid_values_are_refused(
    environment: dict[str, str], named: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("CHAT_MODEL_PATH", str(tmp_path))
    for key, value in environment.items():
        monkeypatch.setenv(key, value)
    with pytest.raises(ValidationError) as refused:
        ChatSettings()
    assert named in str(refused.value)


def test_empty_values_mean_unset(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("CHAT_MODEL_PATH", str(tmp_path))
    monkeypatch.setenv("CHAT_ENGINE_SPIN_US", "")
    monkeypatch.setenv("CHAT_ENGINE_DYNAMIC_BLOCK_BASE", " ")
    settings = ChatSettings()
    assert (settings.engine_spin, settings.engine_spin_us, settings.engine_dynamic_block_base) == (
        "default",
        None,
        None,
    )


def test_an_invalid_policy_stops_the_start_with_one_clear_line(smollm_path: Path) -> None:
    env = {**os.environ, "CHAT_MODEL_PATH": str(smollm_path), "CHAT_PORT": "1", "CHAT_ENGINE_SPIN": "sometimes"}
    result = subprocess.run([sys.executable, "-m", "chat_service"], env=env, capture_output=True, text=True, timeout=60)
    assert result.returncode == 2
    lines = [json.loads(line) for line in result.stderr.splitlines() if line.startswith("{")]
    errors = [line["message"] for line in lines if line["level"] == "ERROR"]
    assert len(errors) == 1, result.stderr[-2000:]
    assert "engine_spin" in errors[0] and "'default', 'off' or 'stop'" in errors[0] and "sometimes" in errors[0]


def test_the_batched_decoder_session_holds_the_entries(smollm_path: Path) -> None:
    folder = ModelFolder(smollm_path, max_model_len=256)
    plain = OnnxDecoder(smollm_path, folder.config, 2, 1, 256)
    assert plain.session_entries(SPINNING_KEYS) == {}
    tuned = OnnxDecoder(smollm_path, folder.config, 2, 1, 256, EVERY_ENTRY)
    assert tuned.session_entries(SPINNING_KEYS) == EVERY_ENTRY
    off = OnnxDecoder(smollm_path, folder.config, 2, 1, 256, ThreadSpinning("off").config_entries())
    assert off.session_entries(SPINNING_KEYS) == {"session.intra_op.allow_spinning": "0"}


def _session_config_options(log: str) -> dict[str, str]:
    """onnxruntime's own record of a session's config entries: the `config_options: { key: value ... }` part of the
    `Session Options` line it writes at verbose level when a session opens."""
    found = re.search(r"config_options: \{(.*?)\}", log)
    assert found is not None, log[-2000:]
    return dict(re.findall(r"(\S+): (\S+)", found.group(1)))


def test_the_generator_session_gets_the_entries(smollm_path: Path, capfd: pytest.CaptureFixture[str]) -> None:
    """The generator engine's overlay, as it applies it, plus a verbose log level, so that onnxruntime says what the
    session ONNX Runtime GenAI opened holds."""
    overlay = session_overlay(EngineConfig(threads=2, spinning=ThreadSpinning("stop", 500, 4)))
    overlay["model"]["decoder"]["session_options"]["log_severity_level"] = 0
    config = og.Config(str(smollm_path))
    config.overlay(json.dumps(overlay))
    capfd.readouterr()
    model = og.Model(config)
    held = _session_config_options(capfd.readouterr().err)
    del model
    assert {key: held.get(key) for key in EVERY_ENTRY} == EVERY_ENTRY


@pytest.mark.parametrize(
    ("engine", "knobs", "entries"),
    [
        ("batched", {"engine_spin": "off"}, {"session.intra_op.allow_spinning": "0"}),
        ("batched", EVERY_KNOB, EVERY_ENTRY),
        ("generator", EVERY_KNOB, EVERY_ENTRY),
    ],
)
def test_the_service_answers_under_the_policy_and_logs_it(
    engine: str,
    knobs: dict,
    entries: dict[str, str],
    smollm_path: Path,
    plain,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    # float32 KV, the plain loop's: its greedy text is the reference (the service's float16 default departs at a tie)
    settings = ChatSettings(
        model_path=smollm_path, engine=engine, data_dir=tmp_path / "data", kv_cache_dtype="float32", **knobs
    )
    body = {"model": settings.model_id, "prompt": PROMPT, "temperature": 0, "max_tokens": 24}
    with caplog.at_level(logging.INFO), TestClient(create_app(settings)) as http:
        reply = http.post("/v1/completions", json=body)
    assert reply.status_code == 200, reply.text
    reference = plain.greedy_with_margins(PROMPT, 24)
    assert text_agrees(reply.json()["choices"][0]["text"], reference, set(plain.tokenizer.eos_token_ids))
    logs = [record.getMessage() for record in caplog.records]
    given = ", ".join(f"{key}={value}" for key, value in entries.items())
    assert any(line.startswith("onnxruntime intra-op threads wait for work") and given in line for line in logs), logs
    # what each engine opened its session with: read back from the batched engine's session, the generator's overlay
    applied = f"thread spinning {entries}" if engine == "batched" else "session options {'intra_op_num_threads'"
    assert any(f"{engine} engine on" in line and applied in line for line in logs), logs
    if engine == "generator":
        assert any(
            "generator engine on" in line and all(f"'{k}': '{v}'" in line for k, v in entries.items()) for line in logs
        )
