"""One KV region per batch slot, shared in place by the model's past and present (past_present_share_buffer).

Rows of a decode batch must be contiguous slots 0..n-1, so a finished row is replaced by moving the last row's
cache into its slot (a copy of the filled positions only).

Every slot has the same length (one strided tensor per layer), and the attention kernel touches a bound slot's
whole length, so memory is slots × length. The length therefore grows on demand (doubling, up to `max_len`) to fit
the longest active row, and falls back when the engine goes idle.

Each layer's buffer is an anonymous mapping of its own, not a malloc block: the buffers are 1–16 MB (Qwen2.5-0.5B,
8 slots, 256 to 4,096 positions), under the 32 MB that glibc's mmap threshold rises to once the engine has freed a
few per-step blocks, so from malloc they came out of the heap, and every grow and fall left the freed buffers'
pages resident (about 300 MB after the traffic phases, `python -m bench.memory_phases`). A mapping is given back
whole when its last array goes, and the kernel zero-fills it page by page as positions are written.
"""

from __future__ import annotations

import logging
import math
import mmap
from collections.abc import Sequence

import numpy as np
import onnxruntime as ort

logger = logging.getLogger(__name__)

INITIAL_LEN = 256
FLOAT32 = np.dtype(np.float32)


def mapped_zeros(shape: tuple[int, ...], dtype: np.dtype = FLOAT32) -> np.ndarray:
    """A zeroed array in a private anonymous mapping, unmapped when the array (its last view) is freed."""
    buffer = mmap.mmap(-1, max(1, math.prod(shape)) * dtype.itemsize, flags=mmap.MAP_PRIVATE)
    return np.frombuffer(buffer, dtype, count=math.prod(shape)).reshape(shape)


class SlotKVCache:
    def __init__(
        self,
        layers: int,
        kv_heads: int,
        head_dim: int,
        slots: int,
        max_len: int,
        dtype: np.dtype = FLOAT32,
    ) -> None:
        self.slots = slots
        self.dtype = dtype
        self.max_len = max_len
        self._layers = layers
        self._kv_heads = kv_heads
        self._head_dim = head_dim
        self.capacity = 0
        self.generation = 0  # bumped whenever the buffers are replaced, so bindings over the old ones are dropped
        self.keys: list[np.ndarray] = []
        self.values: list[np.ndarray] = []
        self._allocate(min(INITIAL_LEN, max_len), used=())

    @property
    def bytes_per_position(self) -> int:
        return 2 * self._layers * self._kv_heads * self._head_dim * self.dtype.itemsize

    def _allocate(self, capacity: int, used: Sequence[int]) -> None:
        shape = (self.slots, self._kv_heads, capacity, self._head_dim)
        if not self.keys:
            self.keys = [mapped_zeros(shape, self.dtype) for _ in range(self._layers)]
            self.values = [mapped_zeros(shape, self.dtype) for _ in range(self._layers)]
            self.capacity = capacity
            return
        # One buffer at a time: each old one is unmapped once it is copied, so a grow holds the KV once plus the
        # buffer being filled, not twice over (134 MB more at the peak for 8 rows of 700 positions on Qwen 0.5B).
        # The bindings over the old buffers are rebuilt before they run again (generation).
        for buffers in (self.keys, self.values):
            for layer, old in enumerate(buffers):
                new = mapped_zeros(shape, self.dtype)
                for slot, length in enumerate(used):
                    # Each slot's own filled positions only: one long row must not make every slot copy its length.
                    if length:
                        new[slot, :, :length] = old[slot, :, :length]
                buffers[layer] = new
        self.capacity = capacity
        self.generation += 1

    def ensure(self, length: int, used: Sequence[int] | None = None) -> None:
        """Make every slot hold at least `length` positions, keeping the first used[s] positions of slot s (all of
        them when `used` is not given)."""
        if length <= self.capacity:
            return
        if length > self.max_len:
            raise ValueError(f"a row needs {length} positions; slots hold at most {self.max_len}")
        capacity = min(self.max_len, max(length, 2 * self.capacity))
        logger.debug("KV slots grow from %d to %d positions", self.capacity, capacity)
        self._allocate(capacity, [self.capacity] * self.slots if used is None else used)

    def reset(self) -> None:
        """Back to the initial length (the engine is idle: nothing cached is needed)."""
        if self.capacity > min(INITIAL_LEN, self.max_len):
            self._allocate(min(INITIAL_LEN, self.max_len), used=())

    def views(self, first: int, last: int) -> list[tuple[ort.OrtValue, ort.OrtValue]]:
        """(key, value) OrtValues over slots [first, last) for every layer, sharing this memory."""
        return [
            (ort.OrtValue.ortvalue_from_numpy(k[first:last]), ort.OrtValue.ortvalue_from_numpy(v[first:last]))
            for k, v in zip(self.keys, self.values, strict=True)
        ]

    def move(self, source: int, target: int, length: int) -> None:
        for buffers in (self.keys, self.values):
            for layer in buffers:
                layer[target, :, :length] = layer[source, :, :length]
