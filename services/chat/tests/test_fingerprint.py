"""system_fingerprint: the same for the same numerics, different when anything that picks them changes."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest
from chat_service.engine import fingerprint
from ortserve_common.cpu import host_cpu


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    (tmp_path / "genai_config.json").write_text('{"model": {"type": "llama"}}')
    (tmp_path / "model.onnx").write_bytes(b"\0" * 10)
    (tmp_path / "model.onnx.data").write_bytes(b"\0" * 100)
    return tmp_path


def test_the_same_numerics_give_the_same_fingerprint(folder: Path) -> None:
    first = fingerprint.system_fingerprint(folder, "batched", False)
    assert first == fingerprint.system_fingerprint(folder, "batched", False)
    assert first.startswith("fp_") and len(first) == 13


def test_engine_invariance_and_model_build_change_it(folder: Path) -> None:
    base = fingerprint.system_fingerprint(folder, "batched", False)
    assert fingerprint.system_fingerprint(folder, "generator", False) != base
    assert fingerprint.system_fingerprint(folder, "batched", True) != base
    (folder / "model.onnx.data").write_bytes(b"\0" * 101)  # a rebuild with other weights
    rebuilt = fingerprint.system_fingerprint(folder, "batched", False)
    assert rebuilt != base
    (folder / "genai_config.json").write_text('{"model": {"type": "qwen2"}}')
    assert fingerprint.system_fingerprint(folder, "batched", False) not in {base, rebuilt}


def test_a_new_sampler_version_changes_it(folder: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    base = fingerprint.system_fingerprint(folder, "batched", False)
    monkeypatch.setattr(fingerprint, "SAMPLER_VERSION", fingerprint.SAMPLER_VERSION + 1)
    assert fingerprint.system_fingerprint(folder, "batched", False) != base


def test_the_cpus_kernel_flags_change_it(folder: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    avx2_only = replace(host_cpu(), isa=("avx2",))
    monkeypatch.setattr(fingerprint, "host_cpu", lambda: avx2_only)
    avx2 = fingerprint.system_fingerprint(folder, "batched", False)
    with_vnni = replace(host_cpu(), isa=("avx2", "avx512f", "avx512_vnni"))
    monkeypatch.setattr(fingerprint, "host_cpu", lambda: with_vnni)
    vnni = fingerprint.system_fingerprint(folder, "batched", False)
    assert avx2 != vnni
    # Core counts change no sum, so they stay out of it.
    monkeypatch.setattr(fingerprint, "host_cpu", lambda: replace(with_vnni, usable_cores=64))
    assert fingerprint.system_fingerprint(folder, "batched", False) == vnni
