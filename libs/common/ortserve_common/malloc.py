"""glibc malloc's mmap and trim thresholds, set from a setting (mallopt), as the MALLOC_MMAP_THRESHOLD_ and
MALLOC_TRIM_THRESHOLD_ environment variables would.

glibc carves a block from free heap memory whenever it fits, and maps a block of its own only when the heap would
have to grow and the block is at least the mmap threshold; that threshold rises (up to 32 MB) each time a mapped
block is freed, and the heap's freed pages stay resident. A low threshold with a low trim threshold gives memory back
sooner, at the cost of page faults on every large block reallocated. An explicit threshold also stops the rise.
mallopt governs the allocations that follow it, so call this before models load.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import logging
import platform

# mallopt parameter numbers from glibc's <malloc.h>.
M_TRIM_THRESHOLD = -1
M_MMAP_THRESHOLD = -3


def _glibc() -> ctypes.CDLL | None:
    if platform.libc_ver()[0] != "glibc":
        return None
    name = ctypes.util.find_library("c")
    return ctypes.CDLL(name) if name else None


def tune_malloc(mmap_threshold_kb: int | None, trim_threshold_kb: int | None, logger: logging.Logger) -> dict:
    """Apply the thresholds that are set (None leaves glibc's own); returns what was applied, for the startup log."""
    wanted = {"mmap_threshold_kb": mmap_threshold_kb, "trim_threshold_kb": trim_threshold_kb}
    applied: dict[str, int] = {}
    if all(value is None for value in wanted.values()):
        return applied
    libc = _glibc()
    if libc is None:
        logger.warning("malloc thresholds %s not applied: this process does not run on glibc", wanted)
        return applied
    for (name, value), parameter in zip(wanted.items(), (M_MMAP_THRESHOLD, M_TRIM_THRESHOLD), strict=True):
        if value is None:
            continue
        if libc.mallopt(parameter, value * 1024) != 1:  # mallopt returns 1 on success
            logger.warning("glibc refused malloc %s = %d KB", name, value)
            continue
        applied[name] = value
    return applied
