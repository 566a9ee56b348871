"""What "the same output as the plain engine" can mean on a given CPU, for tests that compare the two.

ONNX Runtime's MLAS picks its int4 MatMulNBits and attention kernels by instruction set and by shape. On an AVX-512
VNNI CPU a decode row's logits are the same bit for bit at 1, 2, 3 or 4 rows; on an AVX2-only CPU one row and several
rows take different kernels, whose results differ in the low bits (docs/ENGINE_DESIGNS.md, "Numerics by CPU";
measured with bench/kernel_numerics.py, natively and as a Haswell under qemu). So where a test runs a request beside
others (several rows per decode step) and compares it with the plain engine (one row), the greedy tokens must agree
up to the first step where the plain engine's top-2 margin is within what those kernels can move a logit: a near-tie
either side may take. After a departure at such a step nothing more is compared (the two continue different texts).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

# The largest |Δ logit| between a decode row run alone and the same row beside others, teacher-forced over the same
# tokens (bench/kernel_numerics.py): 0 on AVX-512 VNNI; on AVX2 (Haswell under qemu) SmolLM2-135M measured
# AVX2_ROWS_MEASURED. The bound is four times that, for prompts and lengths the measurement did not cover.
AVX2_ROWS_MEASURED = 0.0
LOGIT_TOLERANCE = 4 * AVX2_ROWS_MEASURED


@dataclass(frozen=True)
class GreedyReference:
    tokens: list[int]
    margins: list[float]  # each step's lead of the chosen logit over the runner-up
    decode: Callable[[list[int]], str]

    def near_tie(self, tolerance: float = LOGIT_TOLERANCE) -> int:
        """The first step whose choice kernels' rounding could flip (len(tokens) when none)."""
        return next((i for i, m in enumerate(self.margins) if m <= 2 * tolerance), len(self.tokens))


def greedy_departure(got: Sequence[int], reference: GreedyReference, tolerance: float = LOGIT_TOLERANCE) -> str | None:
    """None when `got` is the reference's tokens, or leaves them only at a near-tie; else what went wrong."""
    expected = reference.tokens
    for step, (mine, theirs) in enumerate(zip(got, expected, strict=False)):
        if mine != theirs:
            if reference.margins[step] <= 2 * tolerance:
                return None  # either side of a near-tie; the texts differ from here on
            margin = reference.margins[step]
            return f"step {step}: got {mine}, expected {theirs} (margin {margin:.4f} > {2 * tolerance})"
    if len(got) != len(expected):
        return f"{len(got)} tokens, expected {len(expected)}"
    return None


def assert_greedy_agrees(got: Sequence[int], reference: GreedyReference, tolerance: float = LOGIT_TOLERANCE) -> None:
    problem = greedy_departure(got, reference, tolerance)
    assert problem is None, f"{problem}\n got: {list(got)}\nwant: {reference.tokens}"


def text_agrees(got: str, reference: GreedyReference, eos_ids: frozenset[int] | set[int]) -> bool:
    """The text form, for replies read through the API: the whole text, or at least the text up to the first
    near-tie (a departure at a near-tie leaves only that prefix in common)."""
    tokens = [t for t in reference.tokens if t not in eos_ids]
    if got == reference.decode(tokens):
        return True
    tie = reference.near_tie()
    return tie < len(reference.tokens) and got.startswith(reference.decode(tokens[:tie]))
