"""PrefixCache on its own (no model): blocks are found only after the very same earlier tokens, at least two prompt
tokens are always left to compute, and eviction takes the newest extensions before the prefixes they hang from."""

from __future__ import annotations

import tracemalloc

import numpy as np
from chat_service.engine.batched.kv_cache import SlotKVCache
from chat_service.engine.batched.prefix_cache import PrefixCache

BLOCK = 4


def _kv() -> SlotKVCache:
    return SlotKVCache(layers=2, kv_heads=1, head_dim=2, slots=2, max_len=64)


def _fill(kv: SlotKVCache, slot: int, tokens: list[int]) -> None:
    """Stand-in KV: each position holds its token id (and its negation in the values)."""
    for keys, values in zip(kv.keys, kv.values, strict=True):
        keys[slot, :, : len(tokens)] = np.asarray(tokens, np.float32)[None, :, None]
        values[slot, :, : len(tokens)] = -np.asarray(tokens, np.float32)[None, :, None]


def _held(kv: SlotKVCache, slot: int, length: int) -> list[int]:
    assert np.array_equal(kv.values[1][slot, 0, :length, 0], -kv.keys[1][slot, 0, :length, 0])
    return kv.keys[1][slot, 0, :length, 0].astype(int).tolist()


def _cache(kv: SlotKVCache, blocks: int) -> PrefixCache:
    return PrefixCache(kv, BLOCK, blocks * BLOCK * kv.bytes_per_position)


def test_a_stored_prefix_is_copied_into_another_slot() -> None:
    kv = _kv()
    cache = _cache(kv, 8)
    first = list(range(1, 11))  # 10 tokens: two whole blocks
    _fill(kv, 0, first)
    cache.store(first, 0, len(first))
    assert len(cache) == 2

    second = first[:8] + [77, 78, 79]
    assert cache.load(second, 1) == 8
    assert _held(kv, 1, 8) == first[:8]
    assert cache.hit_tokens == 8


def test_a_block_is_found_only_after_the_same_earlier_tokens() -> None:
    kv = _kv()
    cache = _cache(kv, 8)
    tokens = [1, 2, 3, 4, 5, 6, 7, 8, 9]
    _fill(kv, 0, tokens)
    cache.store(tokens, 0, len(tokens))
    # Same second block, different first one: nothing may be reused.
    assert cache.load([9, 9, 9, 9, 5, 6, 7, 8, 9], 1) == 0
    # Only the first block matches.
    assert cache.load([1, 2, 3, 4, 0, 6, 7, 8, 9], 1) == BLOCK


def test_the_last_two_prompt_tokens_are_always_computed() -> None:
    kv = _kv()
    cache = _cache(kv, 8)
    tokens = [1, 2, 3, 4, 5, 6, 7, 8, 9, 10]
    _fill(kv, 0, tokens)
    cache.store(tokens, 0, len(tokens))
    assert cache.load(tokens[:8], 1) == BLOCK  # not 8: the next token's logits need the last position computed
    # Not 8 either: one token computed alone takes other kernels than a chunk, so its logits would differ from a
    # cold prefill's in the low bits; two or more give them bit for bit.
    assert cache.load(tokens[:9], 1) == BLOCK
    assert cache.load(tokens, 1) == 8


def test_only_cached_positions_are_stored() -> None:
    kv = _kv()
    cache = _cache(kv, 8)
    tokens = list(range(1, 13))
    _fill(kv, 0, tokens)
    cache.store(tokens, 0, cached=5)  # the slot holds only five of them so far
    assert len(cache) == 1


def test_eviction_drops_extensions_before_their_prefix() -> None:
    kv = _kv()
    cache = _cache(kv, 3)
    shared = [1, 2, 3, 4]
    a = shared + [10, 11, 12, 13, 14]
    b = shared + [20, 21, 22, 23, 24]
    for tokens in (a, b):
        _fill(kv, 0, tokens)
        cache.store(tokens, 0, len(tokens))
    assert len(cache) == 3  # the shared block once, each extension once
    c = shared + [30, 31, 32, 33, 34]
    _fill(kv, 0, c)
    cache.store(c, 0, len(c))
    assert len(cache) == 3
    assert cache.load(c + [99], 1) == 8  # the newest survives whole
    assert cache.load(b + [99], 1) == 8
    assert cache.load(a + [99], 1) == BLOCK  # the least recent extension went; the prefix it shares did not
    assert _held(kv, 1, BLOCK) == shared


def test_zero_capacity_turns_reuse_off() -> None:
    kv = _kv()
    cache = PrefixCache(kv, BLOCK, 0)
    tokens = list(range(1, 10))
    _fill(kv, 0, tokens)
    cache.store(tokens, 0, len(tokens))
    assert not cache.enabled
    assert len(cache) == 0
    assert cache.load(tokens, 1) == 0


def test_a_full_cache_keeps_the_prefix_a_new_extension_needs() -> None:
    kv = _kv()
    cache = _cache(kv, 2)
    shared = [1, 2, 3, 4]
    for tail in ([10, 11, 12, 13, 14], [20, 21, 22, 23, 24]):
        _fill(kv, 0, shared + tail)
        cache.store(shared + tail, 0, 9)
    assert len(cache) == 2
    # Evicting the shared block would have left the new extension unreachable.
    assert cache.load(shared + [20, 21, 22, 23, 24, 99], 1) == 8


def test_a_prompt_longer_than_the_cache_keeps_its_first_blocks_without_copying_the_rest() -> None:
    kv = _kv()
    cache = _cache(kv, 2)
    tokens = list(range(1, 18))  # four whole blocks
    _fill(kv, 0, tokens)
    cache.store(tokens, 0, len(tokens))
    assert len(cache) == 2 and cache.stored_blocks == 2
    assert cache.load(tokens[:12] + [99], 1) == 2 * BLOCK
    assert _held(kv, 1, 2 * BLOCK) == tokens[: 2 * BLOCK]


def test_prefixes_are_shared_only_within_their_scope() -> None:
    kv = _kv()
    cache = _cache(kv, 8)
    tokens = list(range(1, 10))
    _fill(kv, 0, tokens)
    cache.store(tokens, 0, len(tokens), scope="key-a")
    asked = [*tokens, 99]
    assert cache.load(asked, 1, scope="key-b") == 0
    assert cache.load(asked, 1) == 0
    assert cache.load(asked, 1, scope="key-a") == 8


def test_blocks_live_in_the_cache_pool_not_in_arrays_of_their_own() -> None:
    """Storing blocks allocates nothing in proportion to them (numpy reports its buffers to tracemalloc): they are
    written into the pool mapped when the cache was made, and an evicted block's place is reused."""
    kv = SlotKVCache(layers=4, kv_heads=2, head_dim=64, slots=2, max_len=64)
    cache = _cache(kv, 10)
    block_bytes = BLOCK * kv.bytes_per_position  # 16 KB
    prompts = [[100 * n + i for i in range(4 * BLOCK + 1)] for n in range(10)]  # 4 blocks each: 40, twice the pool
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        for tokens in prompts:
            _fill(kv, 0, tokens)
            cache.store(tokens, 0, len(tokens))
        grown = tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()
    assert cache.stored_blocks == 40 and len(cache) == 10
    assert grown < 10 * block_bytes // 4, grown  # the chain keys and the index only
    assert cache.load(prompts[-1] + [99], 1) == 4 * BLOCK  # the newest prompt's blocks, in reused places
    assert _held(kv, 1, 4 * BLOCK) == prompts[-1][: 4 * BLOCK]
