"""`make quality-variants` builds every variant from the served build's options plus its own, so its copy of those
options must be the model build's (tools/model_build/qwen.py), or its "served" row would describe another build."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from bench.quality.variants import SERVED_OPTIONS

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize("model_id", ["qwen2.5-coder-0.5b-instruct", "qwen2.5-coder-1.5b-instruct"])
def test_the_variants_served_options_are_the_model_builds(model_id: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.syspath_prepend(str(ROOT / "tools/model_build"))  # the build's scripts import `common` by name
    monkeypatch.delitem(sys.modules, "qwen", raising=False)
    import qwen

    built = qwen.QWEN_INT4_OPTIONS + qwen.QWEN_EXTRA_OPTIONS.get(model_id, [])
    # The hidden_states output is the service's, not a quantization choice: the variants leave it out.
    assert SERVED_OPTIONS[model_id] == [o for o in built if o != "include_hidden_states=true"]
