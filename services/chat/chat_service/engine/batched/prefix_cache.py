"""Prefix reuse: the KV of prompt blocks seen before, so a repeated system prompt or conversation is not prefilled
again.

Token sequences are cut into blocks of `block_tokens`; block i is keyed by a SHA-256 chain that starts from the
request's scope (its API key) and runs over every token up to the block's end, so a block is found only after the
very same tokens from the same key (a hash of the block alone would splice caches across different prefixes, and a
shared cache would tell one key, through its TTFT, what another sent).

A new request copies the longest chain of cached blocks into its KV slot and prefills only the rest, at least two
tokens of it: a token run alone (one position, as in a decode step) takes other attention and matmul paths than the
same token inside a chunk of two or more, and its logits differ in the low bits (up to 1.2 on SmolLM2, measured by
bench/kernel_numerics.py), while a chunk of two or more gives a cold prefill's logits bit for bit: the layers compute
its positions alike, and both calls run the lm_head on the chunk's last two positions only (decoder.py's
`_last_two`), the same kernel on the same rows. So a prompt served from the cache gives exactly what it gives cold, and
a seeded request reproduces whichever way it is served. Blocks are evicted least recently used once the cache holds
`capacity_bytes`.

The blocks live in one pool per side, an anonymous mapping of `capacity_bytes` whose pages become resident as blocks
are first written, and an evicted block's place is reused: the cache costs its size and no more. As numpy arrays of
their own (~0.1 MB each on Qwen 0.5B, under glibc's mmap threshold) they came from the scheduler thread's heap, among
every step's short-lived buffers, and a long-lived block left there keeps the heap from shrinking below it.
"""

from __future__ import annotations

import hashlib
from collections import OrderedDict
from collections.abc import Sequence

import numpy as np

from chat_service.engine.batched.kv_cache import SlotKVCache, mapped_zeros


class PrefixCache:
    def __init__(self, kv: SlotKVCache, block_tokens: int, capacity_bytes: int) -> None:
        self._kv = kv
        self.block_tokens = block_tokens
        self._block_bytes = block_tokens * kv.bytes_per_position
        self.capacity_blocks = capacity_bytes // self._block_bytes
        _, kv_heads, _, head_dim = kv.keys[0].shape
        shape = (self.capacity_blocks, len(kv.keys), kv_heads, block_tokens, head_dim) if self.enabled else (0,)
        self._keys, self._values = mapped_zeros(shape, kv.dtype), mapped_zeros(shape, kv.dtype)  # [block, layer, …]
        self._blocks: OrderedDict[bytes, int] = OrderedDict()  # chain key → its place in the pools
        self._free = list(range(self.capacity_blocks))
        self.hit_tokens = 0  # counters for logs and tests
        self.stored_blocks = 0

    @property
    def enabled(self) -> bool:
        return self.capacity_blocks > 0

    def __len__(self) -> int:
        return len(self._blocks)

    def _chain(self, tokens: Sequence[int], blocks: int, scope: str) -> list[bytes]:
        digest, keys = hashlib.sha256(scope.encode()).digest() if scope else b"", []
        ids = np.asarray(tokens[: blocks * self.block_tokens], np.int64)
        for i in range(blocks):
            part = ids[i * self.block_tokens : (i + 1) * self.block_tokens]
            digest = hashlib.sha256(digest + part.tobytes()).digest()
            keys.append(digest)
        return keys

    def load(self, tokens: Sequence[int], slot: int, scope: str = "") -> int:
        """Copy the longest cached prefix of `tokens` stored under `scope` into `slot` (whose KV must already be long
        enough); returns how many positions it filled. At least the last two tokens are left to compute (see the
        module's note); the last one's logits give the first output."""
        if not self.enabled:
            return 0
        found: list[int] = []
        chain = self._chain(tokens, max(0, len(tokens) - 2) // self.block_tokens, scope)
        for key in chain:
            block = self._blocks.get(key)
            if block is None:
                break
            found.append(block)
        self._touch(chain[: len(found)])
        size = self.block_tokens
        for i, block in enumerate(found):
            for layer, (keys, values) in enumerate(zip(self._kv.keys, self._kv.values, strict=True)):
                keys[slot, :, i * size : (i + 1) * size] = self._keys[block, layer]
                values[slot, :, i * size : (i + 1) * size] = self._values[block, layer]
        self.hit_tokens += len(found) * size
        return len(found) * size

    def store(self, tokens: Sequence[int], slot: int, cached: int, scope: str = "") -> None:
        """Keep, under `scope`, the whole blocks among the first `cached` positions of `slot` (which hold `tokens`'
        KV)."""
        if not self.enabled:
            return
        size = self.block_tokens
        # A prefix outlives its extensions, so blocks past the capacity could never stay: never copy them (with a large
        # model's KV, a long prompt's blocks would otherwise take gigabytes for a moment).
        chain = self._chain(tokens, min(min(cached, len(tokens)) // size, self.capacity_blocks), scope)
        # The chain's cached blocks become the most recent first, so that the places the new ones need are taken from
        # other prefixes' leaves (the chain is no longer than the cache).
        self._touch([key for key in chain if key in self._blocks])
        for i, key in enumerate(chain):
            if key in self._blocks:
                continue
            if not self._free:
                self._free.append(self._blocks.popitem(last=False)[1])
            block = self._blocks[key] = self._free.pop()
            for layer, (keys, values) in enumerate(zip(self._kv.keys, self._kv.values, strict=True)):
                self._keys[block, layer] = keys[slot, :, i * size : (i + 1) * size]
                self._values[block, layer] = values[slot, :, i * size : (i + 1) * size]
            self.stored_blocks += 1
        self._touch(chain)

    def _touch(self, chain: list[bytes]) -> None:
        # Last block first, so a prefix is always more recent than its extensions: eviction takes the leaves, never a
        # block that others need to be reached.
        for key in reversed(chain):
            self._blocks.move_to_end(key)
