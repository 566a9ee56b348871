"""How the chat service's process runs its engines: ONNX Runtime's threads and glibc's malloc. ChatSettings
extends these (CHAT_ prefix)."""

from __future__ import annotations

from typing import Any

from ortserve_common.settings import ModelHostSettings
from pydantic import Field, field_validator, model_validator

from chat_service.engine.spinning import SpinPolicy


class EngineProcessSettings(ModelHostSettings):
    engine_threads: int | None = Field(
        None,
        ge=1,
        description="ONNX Runtime intra-op threads per model; unset (or empty), the usable cores: the CPUs this "
        "process may run on, capped by its cgroup's CPU quota (a container's --cpus), never the host's count. A "
        "models_file entry's engine threads take its place for that model.",
    )
    engine_spin: SpinPolicy = Field(
        "default",
        description="How idle ONNX Runtime intra-op threads wait for work, in both engines: default (onnxruntime's "
        "own: they spin a while, inside a decode step and after it), off (never spin: each parallel section pays a "
        "thread wake-up), stop (spin inside a step, stop when it returns, leaving the cores to the event loop, the "
        "sampler and nginx between steps). The startup log names the session entries applied.",
    )
    engine_spin_us: int | None = Field(
        None,
        ge=1,
        le=10000,
        description="How long, in µs, an idle intra-op thread spins before it sleeps "
        "(session.intra_op.spin_duration_us); unset: onnxruntime's own spin count. Not with CHAT_ENGINE_SPIN=off.",
    )
    engine_dynamic_block_base: int | None = Field(
        None,
        ge=1,
        le=64,
        description="Split each parallel loop of N iterations into blocks that shrink as it runs, from N / (threads "
        "× this), taken by whichever thread is free (session.dynamic_block_base, e.g. 4); unset: equal blocks.",
    )
    # The three malloc defaults together lowered the peak RSS over the traffic phases on Qwen2.5-Coder-0.5B, with no
    # measured cost in speed (docs/ENGINE_DESIGNS.md, Memory); glibc's own values stay one empty variable away.
    malloc_mmap_threshold_kb: int | None = Field(
        8192,
        ge=0,
        le=32768,
        description="glibc malloc's mmap threshold (mallopt M_MMAP_THRESHOLD, as MALLOC_MMAP_THRESHOLD_ does): a block "
        "of at least this size that the heap cannot hold gets a mapping of its own, given back when freed. Empty: "
        "glibc's own, which rises to 32 MB as blocks are freed. 8192 keeps a verify call's logits and the per-call "
        "blocks in the heap, below a 512-token chunk's activations; 64 (with a trim threshold of 128) mapped every "
        "per-call block and cost code edits with prompt lookup 8-14 % of their speed (docs/ENGINE_DESIGNS.md, "
        "Memory).",
    )
    malloc_trim_threshold_kb: int | None = Field(
        8192,
        ge=0,
        description="glibc malloc's trim threshold (mallopt M_TRIM_THRESHOLD, as MALLOC_TRIM_THRESHOLD_ does): free "
        "memory at the top of the heap beyond this goes back to the system. Empty: glibc's own (128 KB, rising with "
        "the mmap threshold).",
    )
    malloc_arena_max: int | None = Field(
        2,
        ge=1,
        le=64,
        description="glibc malloc's arena cap (mallopt M_ARENA_MAX, as MALLOC_ARENA_MAX does, which this overrides): "
        "threads that allocate share at most this many arenas, each keeping what its threads freed. Empty: glibc's "
        "own (MALLOC_ARENA_MAX, or 8 per core: the event loop's, scheduler's, onnxruntime's and executor threads "
        "then each keep one).",
    )

    @field_validator(
        "engine_threads",
        "engine_spin_us",
        "engine_dynamic_block_base",
        "malloc_mmap_threshold_kb",
        "malloc_trim_threshold_kb",
        "malloc_arena_max",
        mode="before",
    )
    @classmethod
    def _empty_is_none(cls, value: Any) -> Any:  # unset gives the default; empty gives None (malloc: glibc's own)
        return None if isinstance(value, str) and not value.strip() else value

    @model_validator(mode="after")
    def _spin_bound_needs_spinning(self) -> EngineProcessSettings:
        if self.engine_spin == "off" and self.engine_spin_us is not None:
            raise ValueError(
                "CHAT_ENGINE_SPIN_US bounds a spin, and CHAT_ENGINE_SPIN=off turns spinning off: unset one"
            )
        return self
