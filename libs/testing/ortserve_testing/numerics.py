"""What "the same output as the plain engine" can mean on a given CPU, for tests that compare the two.

ONNX Runtime's MLAS picks its int4 MatMulNBits and attention kernels by instruction set and by shape. On an AVX-512
VNNI CPU a decode row's logits are the same bit for bit at 1, 2, 3 or 4 rows; on an AVX2-only CPU one row and several
rows take different kernels, whose results differ in the low bits (docs/ENGINE_DESIGNS.md, "Numerics by CPU";
bench/kernel_numerics.py). So where a test runs a request beside others (several rows per decode step) and compares it
with the plain engine (one row), the greedy tokens must agree up to the first step where the plain engine's top-2
margin is within what those kernels can move a logit: a near-tie either side may take. After a departure at such a
step nothing more is compared (the two continue different texts).

The bound is measured on the CPU the tests run on, not written down for one CPU: the chat tests' `plain` fixture runs
a row alone and beside three others over the same tokens and takes four times the largest |Δ logit| it sees (0 where
the kernels agree, and then every comparison is exact).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

# How far the measured bound is stretched, for prompts and lengths the measurement did not cover.
SAFETY = 4.0


@dataclass(frozen=True)
class GreedyReference:
    tokens: list[int]
    margins: list[float]  # each step's lead of the chosen logit over the runner-up
    decode: Callable[[list[int]], str]
    tolerance: float = 0.0  # how far the kernels of this CPU may move one logit (see the module's note)

    def near_tie(self) -> int:
        """The first step whose choice kernels' rounding could flip (len(tokens) when none)."""
        return next((i for i, m in enumerate(self.margins) if m <= 2 * self.tolerance), len(self.tokens))


def greedy_departure(got: Sequence[int], reference: GreedyReference) -> str | None:
    """None when `got` is the reference's tokens, or leaves them only at a near-tie; else what went wrong."""
    expected, tolerance = reference.tokens, reference.tolerance
    for step, (mine, theirs) in enumerate(zip(got, expected, strict=False)):
        if mine != theirs:
            if reference.margins[step] <= 2 * tolerance:
                return None  # either side of a near-tie; the texts differ from here on
            margin = reference.margins[step]
            return f"step {step}: got {mine}, expected {theirs} (margin {margin:.4f} > {2 * tolerance})"
    if len(got) != len(expected):
        return f"{len(got)} tokens, expected {len(expected)}"
    return None


def assert_greedy_agrees(got: Sequence[int], reference: GreedyReference) -> None:
    problem = greedy_departure(got, reference)
    assert problem is None, f"{problem}\n got: {list(got)}\nwant: {reference.tokens}"


def text_agrees(got: str, reference: GreedyReference, eos_ids: frozenset[int] | set[int]) -> bool:
    """The text form, for replies read through the API: the whole text, or at least the text up to the first
    near-tie (a departure at a near-tie leaves only that prefix in common)."""
    tokens = [t for t in reference.tokens if t not in eos_ids]
    if got == reference.decode(tokens):
        return True
    tie = reference.near_tie()
    return tie < len(reference.tokens) and got.startswith(reference.decode(tokens[:tie]))
