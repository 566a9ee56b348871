"""Give back the weight file's pages that onnxruntime keeps mapped after loading.

onnxruntime maps each external initializer of model.onnx.data on its own (private file mappings, rw-p). Once
the session is made, MatMulNBits' PrePack has copied the int4 weights into packed buffers and unmapped them, but it
reports the scales and zero points as not packed, so their mappings stay resident beside the packed copy: 67 MB on
Qwen2.5-Coder-0.5B, 19 MB on SmolLM2-135M (docs/ENGINE_DESIGNS.md, Memory); no session option changes that.
madvise(MADV_DONTNEED) drops those pages from this process: a private mapping never written holds nothing but the
file's contents, so a later read (the tied embedding reads a few rows of the lm_head's scales) faults the same bytes
back in from the page cache. Only private mappings with no anonymous page are touched (/proc/self/smaps: a page
written to would have become an anonymous copy), so no written byte can be lost.
"""

from __future__ import annotations

import ctypes
import logging
import re
from dataclasses import dataclass
from pathlib import Path

logger = logging.getLogger(__name__)

MADV_DONTNEED = 4  # <sys/mman.h>, the same on every Linux architecture
PROC_SELF_SMAPS = Path("/proc/self/smaps")
_HEADER = re.compile(r"^([0-9a-f]+)-([0-9a-f]+) (\S{4}) \S+ \S+ \S+\s*(.*)$")


@dataclass(frozen=True)
class FileMapping:
    start: int
    end: int
    perms: str  # as /proc shows them: rw-p is private
    path: str
    rss_bytes: int
    anonymous_bytes: int  # pages written to since mapped (copies of their own, no longer the file's)


def file_mappings(folder: Path, smaps: Path = PROC_SELF_SMAPS) -> list[FileMapping]:
    """This process's mappings of files under `folder`, with their resident bytes."""
    root = str(folder.resolve()) + "/"
    found: list[FileMapping] = []
    current: dict | None = None  # the fields read so far of a mapping under the folder
    with open(smaps, encoding="utf-8", errors="replace") as lines:
        for line in lines:
            header = _HEADER.match(line)
            if header:
                start, end, perms, path = header.groups()
                current = None
                if path.startswith(root):
                    current = {"start": int(start, 16), "end": int(end, 16), "perms": perms, "path": path}
            elif current is not None and line.startswith(("Rss:", "Anonymous:")):
                field = "rss_bytes" if line.startswith("Rss:") else "anonymous_bytes"
                current[field] = int(line.split()[1]) * 1024
                if len(current) == 6:
                    found.append(FileMapping(**current))
                    current = None
    return found


def releasable(mapping: FileMapping) -> bool:
    """Private, and never written to: every resident page is the file's own."""
    return mapping.perms.endswith("p") and mapping.anonymous_bytes == 0


def release_weight_pages(folder: Path) -> int:
    """madvise(MADV_DONTNEED) on every private mapping of a file under `folder` that no write has touched; returns
    the resident bytes they held. Where madvise fails (logged), the pages simply stay."""
    libc = ctypes.CDLL(None, use_errno=True)
    libc.madvise.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int]
    released = 0
    for mapping in file_mappings(folder):
        if not releasable(mapping):
            continue
        if libc.madvise(mapping.start, mapping.end - mapping.start, MADV_DONTNEED) != 0:
            logger.warning("madvise on %s failed (errno %d): its pages stay", mapping.path, ctypes.get_errno())
            continue
        released += mapping.rss_bytes
    return released
