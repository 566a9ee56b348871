"""The KV slots live in mappings of their own (kv_cache.mapped_zeros), so a grown cache gives its memory back to
the system when it grows again or falls back at idle, instead of leaving freed heap pages resident; and the
positions kept across a grow are the same values."""

from __future__ import annotations

import gc
import mmap
import weakref

import numpy as np
from chat_service.engine.batched.kv_cache import INITIAL_LEN, SlotKVCache, mapped_zeros


def mapping_of(array: np.ndarray) -> mmap.mmap:
    base: object = array
    while not isinstance(base, mmap.mmap):
        base = base.obj if isinstance(base, memoryview) else base.base  # type: ignore[attr-defined]
        assert base is not None, "the array is not backed by a mapping"
    return base


def test_mapped_zeros_is_a_zeroed_writable_float32_array() -> None:
    array = mapped_zeros((3, 2, 5, 4))
    assert array.shape == (3, 2, 5, 4) and array.dtype == np.float32
    assert array.flags.c_contiguous and array.flags.writeable
    assert not array.any()
    array[1, :, 2] = 7.0
    assert array.sum() == 7.0 * 2 * 4


def test_every_layer_buffer_is_a_mapping_unmapped_once_the_cache_moves_on() -> None:
    kv = SlotKVCache(layers=3, kv_heads=2, head_dim=4, slots=2, max_len=4 * INITIAL_LEN)
    first = [weakref.ref(mapping_of(buffer)) for buffer in kv.keys + kv.values]
    kv.keys[0][1, :, :5] = 1.5
    kv.ensure(2 * INITIAL_LEN, used=[0, 5])
    gc.collect()
    assert all(ref() is None for ref in first), "the buffers replaced by a grow are still mapped"
    assert (kv.keys[0][1, :, :5] == 1.5).all() and not kv.keys[0][1, :, 5:].any()
    grown = [weakref.ref(mapping_of(buffer)) for buffer in kv.keys + kv.values]
    kv.reset()
    gc.collect()
    assert kv.capacity == INITIAL_LEN
    assert all(ref() is None for ref in grown), "the grown buffers are still mapped after falling back"


def test_a_grow_holds_one_old_buffer_beside_the_new_ones_not_all_of_them(monkeypatch) -> None:
    """A grow copies buffer by buffer, each old one unmapped once copied, so the KV is never held twice over: the
    peak of a grow is the KV once plus the buffer being copied into."""
    from chat_service.engine.batched import kv_cache

    kv = SlotKVCache(layers=4, kv_heads=2, head_dim=4, slots=2, max_len=4 * INITIAL_LEN)
    for buffer in kv.keys + kv.values:
        buffer[0, :, :3] = 2.5
    old = [weakref.ref(mapping_of(buffer)) for buffer in kv.keys + kv.values]
    alive_at_each_new: list[int] = []

    def counting(shape: tuple[int, ...], dtype: np.dtype) -> np.ndarray:
        alive_at_each_new.append(sum(ref() is not None for ref in old))
        return mapped_zeros(shape, dtype)

    monkeypatch.setattr(kv_cache, "mapped_zeros", counting)
    kv.ensure(2 * INITIAL_LEN, used=[3, 0])
    assert len(alive_at_each_new) == len(old) == 8
    # Before the k-th new buffer, the k copied before it are gone.
    assert alive_at_each_new == [len(old) - k for k in range(len(old))], alive_at_each_new
    assert all((buffer[0, :, :3] == 2.5).all() and not buffer[0, :, 3:].any() for buffer in kv.keys + kv.values)
