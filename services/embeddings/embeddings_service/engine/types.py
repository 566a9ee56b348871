"""Plain data passed between the serving layer, the batcher and the engines."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, Protocol

import numpy as np

ModelKind = Literal["embedding", "llm-embedding", "rerank"]


class EngineLoadError(RuntimeError):
    """A model folder is missing or unusable; the message names the path and the files expected."""


@dataclass(frozen=True)
class EncodedInput:
    """One sequence exactly as the model will see it (special tokens included)."""

    ids: list[int]
    type_ids: list[int] | None = None  # segment ids, for cross-encoder pairs; None means all zeros

    def __len__(self) -> int:
        return len(self.ids)


class BatchModel(Protocol):
    """What the batcher drives: one call per batch, one output row per input, in the input order.

    Called on a worker thread; an implementation must not touch the event loop.
    """

    def run_batch(self, batch: list[EncodedInput]) -> np.ndarray: ...

    def close(self) -> None: ...
