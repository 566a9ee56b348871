"""The model recipe version has one source (ortserve_common.models_dir): the Makefile, the model build and every
Python file take it from there, so a bumped recipe moves them all to the new models folder at once."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from ortserve_common.models_dir import RECIPE_VERSION, models_dir
from stack_testing import ROOT

SOURCE = ROOT / "libs/common/ortserve_common/models_dir.py"


def test_the_makefile_reads_the_same_version() -> None:
    result = subprocess.run(
        [
            "make",
            "-s",
            "--no-print-directory",
            "--eval",
            "print-recipe: ; @echo $(RECIPE) $(MODELS_DIR)",
            "print-recipe",
        ],
        cwd=ROOT,
        env={k: v for k, v in os.environ.items() if k not in ("MODELS_DIR", "CACHE_DIR")},
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert result.returncode == 0, result.stderr
    recipe, folder = result.stdout.split()
    assert recipe == RECIPE_VERSION and folder.endswith(f"/.cache/ortserve/models/r{RECIPE_VERSION}")


def test_the_model_build_reads_the_same_version() -> None:
    # build.py runs in its own venv without the common library; --print-recipe needs nothing beyond the stdlib.
    result = subprocess.run(
        [sys.executable, str(ROOT / "tools/model_build/build.py"), "--print-recipe"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == RECIPE_VERSION


def test_models_dir_follows_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ORTSERVE_MODELS_DIR", "/elsewhere/models")
    assert models_dir() == Path("/elsewhere/models")
    monkeypatch.delenv("ORTSERVE_MODELS_DIR")
    assert models_dir(Path("/cache")) == Path(f"/cache/models/r{RECIPE_VERSION}")


def test_no_python_file_writes_the_version_itself() -> None:
    tracked = subprocess.run(["git", "ls-files", "*.py"], cwd=ROOT, capture_output=True, text=True, check=True)
    pattern = re.compile(r"""models/r\d|["']r\d+["']|/ ["']r\d""")
    offenders = [
        f"{name}:{number}"
        for name in tracked.stdout.split()
        if (ROOT / name).exists() and ROOT / name != SOURCE
        for number, line in enumerate((ROOT / name).read_text(encoding="utf-8").splitlines(), 1)
        if pattern.search(line)
    ]
    assert not offenders, f"a recipe version written outside {SOURCE.relative_to(ROOT)}: {offenders}"
