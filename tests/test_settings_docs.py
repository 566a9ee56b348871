"""Each service's README configuration table is generated from its settings (`make docs`): they never disagree."""

from __future__ import annotations

import subprocess
import sys

from stack_testing import ROOT


def test_every_configuration_table_matches_its_settings() -> None:
    result = subprocess.run(
        [sys.executable, str(ROOT / "tools/settings_docs.py"), "--check"], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr
