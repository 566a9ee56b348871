"""The tests' stack: ortserve_testing's LocalStack, traced like `ORTSERVE_TRACES=1 make run` (every span lands in
run_dir/traces.jsonl)."""

from __future__ import annotations

from pathlib import Path

from ortserve_testing.stack import ROOT, LocalStack

__all__ = ["ROOT", "Stack"]


class Stack(LocalStack):
    def __init__(self, run_dir: Path, extra_env: dict[str, str] | None = None) -> None:
        super().__init__(run_dir, {"ORTSERVE_TRACES": "1", **(extra_env or {})})
