"""Each service's README configuration table is generated from its settings (`make docs`): they never disagree."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from stack_testing import ROOT


def test_every_configuration_table_matches_its_settings() -> None:
    result = subprocess.run(
        [sys.executable, str(ROOT / "tools/settings_docs.py"), "--check"], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr


def test_the_tables_read_the_same_for_every_user(tmp_path: Path) -> None:
    """Defaults under the home directory are written as ~/…, so the check passes whoever runs it, not only root."""
    result = subprocess.run(
        [sys.executable, str(ROOT / "tools/settings_docs.py"), "--check"],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "HOME": str(tmp_path)},
    )
    assert result.returncode == 0, result.stderr
