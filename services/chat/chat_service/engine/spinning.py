"""How the engines' ONNX Runtime intra-op threads wait for work: the session config entries both engines open their
session with (the batched engine's onnxruntime SessionOptions, the generator engine's genai_config overlay).

onnxruntime's threads spin for a while when they find no work, inside a run (between two parallel sections) and after
it (until the next run). On a machine whose cores the event loop, the scheduler's Python and nginx share with them,
that spin is CPU they do not get; without it, every parallel section pays a thread wake-up. The policies:

- default: onnxruntime's own (spin, then sleep), nothing set;
- off: never spin (`session.intra_op.allow_spinning` = 0);
- stop: spin inside a run, stop the moment it returns (`session.force_spinning_stop` = 1), so the cores are free
  between two decode steps.

`spin_us` bounds a spin (`session.intra_op.spin_duration_us`, onnxruntime ≥ 1.27; unset: its own spin count) and
`dynamic_block_base` splits a parallel loop into shrinking blocks that idle threads take (`session.dynamic_block_base`;
unset: equal blocks).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

SpinPolicy = Literal["default", "off", "stop"]
SPIN_POLICIES: tuple[SpinPolicy, ...] = ("default", "off", "stop")

ALLOW_SPINNING = "session.intra_op.allow_spinning"
FORCE_SPINNING_STOP = "session.force_spinning_stop"
SPIN_DURATION_US = "session.intra_op.spin_duration_us"
DYNAMIC_BLOCK_BASE = "session.dynamic_block_base"
SPINNING_KEYS = (ALLOW_SPINNING, FORCE_SPINNING_STOP, SPIN_DURATION_US, DYNAMIC_BLOCK_BASE)


@dataclass(frozen=True)
class ThreadSpinning:
    policy: SpinPolicy = "default"
    spin_us: int | None = None  # how long an idle thread spins before it sleeps; None: onnxruntime's spin count
    dynamic_block_base: int | None = None  # None: onnxruntime's equal blocks

    def __post_init__(self) -> None:
        # The settings refuse these first, with the variables' names; this guards every other way an engine is built.
        if self.policy not in SPIN_POLICIES:
            raise ValueError(f"thread spinning policy {self.policy!r} is not one of {', '.join(SPIN_POLICIES)}")
        if self.spin_us is not None and (self.policy == "off" or self.spin_us < 1):
            raise ValueError("a spin duration needs spinning on and at least 1 µs")
        if self.dynamic_block_base is not None and self.dynamic_block_base < 1:
            raise ValueError("dynamic_block_base must be at least 1")

    def config_entries(self) -> dict[str, str]:
        """The onnxruntime session config entries (strings, as both SessionOptions and genai_config take them)."""
        entries = {}
        if self.policy == "off":
            entries[ALLOW_SPINNING] = "0"
        elif self.policy == "stop":
            entries[FORCE_SPINNING_STOP] = "1"
        if self.spin_us is not None:
            entries[SPIN_DURATION_US] = str(self.spin_us)
        if self.dynamic_block_base is not None:
            entries[DYNAMIC_BLOCK_BASE] = str(self.dynamic_block_base)
        return entries

    def describe(self) -> str:
        """One line for the startup log: the policy and the entries that carry it."""
        entries = self.config_entries()
        given = ", ".join(f"{key}={value}" for key, value in entries.items()) if entries else "no entry set"
        return f"{self.policy}, {given}"
