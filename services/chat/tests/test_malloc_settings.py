"""CHAT_MALLOC_*: the service applies glibc's malloc thresholds and arena cap it is given at startup, before its
models load, and logs them; unset variables give the service's defaults (8 MB thresholds, two arenas), empty ones
leave glibc's own. (That they reach glibc:
libs/common/tests/test_malloc.py.)"""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
from chat_service.main import create_app
from chat_service.settings import ChatSettings
from fastapi.testclient import TestClient
from pydantic import ValidationError
from test_http_layer_fake_engine import FakeEngine


def startup_log(settings: ChatSettings, caplog: pytest.LogCaptureFixture) -> list[str]:
    loaded: list[str] = []

    def engine_factory(_path: Path, _settings: object) -> FakeEngine:
        loaded.append("engine loaded")
        return FakeEngine("Hi!")

    with caplog.at_level(logging.INFO), TestClient(create_app(settings, engine_factory=engine_factory)) as http:
        assert http.get("/ready").status_code == 200
    lines = [record.getMessage() for record in caplog.records]
    malloc_line = next(i for i, line in enumerate(lines) if line.startswith("glibc malloc thresholds"))
    assert loaded, "the fake engine was never loaded"
    return lines[malloc_line:]


def test_thresholds_given_are_applied_and_logged(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setenv("CHAT_MALLOC_MMAP_THRESHOLD_KB", "64")
    monkeypatch.setenv("CHAT_MALLOC_TRIM_THRESHOLD_KB", "128")
    monkeypatch.setenv("CHAT_MALLOC_ARENA_MAX", "2")
    settings = ChatSettings(model_path=tmp_path, model_id="fake", data_dir=tmp_path / "data")
    line = startup_log(settings, caplog)[0]
    assert "{'mmap_threshold_kb': 64, 'trim_threshold_kb': 128, 'arena_max': 2}" in line, line


def test_unset_variables_give_the_service_defaults(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    for name in ("CHAT_MALLOC_MMAP_THRESHOLD_KB", "CHAT_MALLOC_TRIM_THRESHOLD_KB", "CHAT_MALLOC_ARENA_MAX"):
        monkeypatch.delenv(name, raising=False)
    settings = ChatSettings(model_path=tmp_path, model_id="fake", data_dir=tmp_path / "data")
    line = startup_log(settings, caplog)[0]
    assert "{'mmap_threshold_kb': 8192, 'trim_threshold_kb': 8192, 'arena_max': 2}" in line, line


@pytest.mark.parametrize("value", ["", " "])
def test_empty_variables_leave_glibc_its_own(
    value: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    for name in ("CHAT_MALLOC_MMAP_THRESHOLD_KB", "CHAT_MALLOC_TRIM_THRESHOLD_KB", "CHAT_MALLOC_ARENA_MAX"):
        monkeypatch.setenv(name, value)
    settings = ChatSettings(model_path=tmp_path, model_id="fake", data_dir=tmp_path / "data")
    assert (settings.malloc_mmap_threshold_kb, settings.malloc_trim_threshold_kb, settings.malloc_arena_max) == (
        None,
        None,
        None,
    )
    assert startup_log(settings, caplog)[0].endswith("glibc's own")


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("CHAT_MALLOC_MMAP_THRESHOLD_KB", "-1"),
        ("CHAT_MALLOC_MMAP_THRESHOLD_KB", "65536"),
        ("CHAT_MALLOC_TRIM_THRESHOLD_KB", "lots"),
        ("CHAT_MALLOC_ARENA_MAX", "0"),
    ],
)
def test_a_threshold_out_of_range_stops_the_settings(
    name: str, value: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(name, value)
    with pytest.raises(ValidationError) as error:
        ChatSettings(model_path=tmp_path)
    assert name.removeprefix("CHAT_").lower() in str(error.value)
