"""One KV region per batch slot, shared in place by the model's past and present (past_present_share_buffer).

Rows of a decode batch must be contiguous slots 0..n-1, so a finished row is replaced by moving the last row's
cache into its slot (a copy of the filled positions only).
"""

from __future__ import annotations

import numpy as np
import onnxruntime as ort


class SlotKVCache:
    def __init__(self, layers: int, kv_heads: int, head_dim: int, slots: int, max_len: int) -> None:
        self.slots = slots
        self.max_len = max_len
        shape = (slots, kv_heads, max_len, head_dim)
        # np.zeros maps untouched pages lazily: memory grows with the positions actually used, not slots × max_len.
        self.keys = [np.zeros(shape, np.float32) for _ in range(layers)]
        self.values = [np.zeros(shape, np.float32) for _ in range(layers)]

    @property
    def bytes_per_position(self) -> int:
        one = self.keys[0]
        return 2 * len(self.keys) * one.shape[1] * one.shape[3] * one.itemsize

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
