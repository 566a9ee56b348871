"""glibc malloc's mmap and trim thresholds and its arena cap, set from settings (mallopt), as the
MALLOC_MMAP_THRESHOLD_, MALLOC_TRIM_THRESHOLD_ and MALLOC_ARENA_MAX environment variables would.

glibc carves a block from free heap memory whenever it fits, and maps a block of its own only when the heap would
have to grow and the block is at least the mmap threshold; that threshold rises (up to 32 MB) each time a mapped
block is freed, and the heap's freed pages stay resident. A low threshold with a low trim threshold gives memory back
sooner, at the cost of page faults on every large block reallocated. An explicit threshold also stops the rise.
glibc also gives each thread that allocates an arena of its own, up to 8 per core, and each arena keeps what its
threads freed; a cap makes threads share them. mallopt governs the allocations (and arenas) that follow it, so call
this before models load and their thread pools start.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import logging
import platform

# mallopt parameter numbers from glibc's <malloc.h>.
M_TRIM_THRESHOLD = -1
M_MMAP_THRESHOLD = -3
M_ARENA_MAX = -8
# Each setting's mallopt parameter and the factor from the setting's unit to mallopt's (KB to bytes).
OPTIONS = {
    "mmap_threshold_kb": (M_MMAP_THRESHOLD, 1024),
    "trim_threshold_kb": (M_TRIM_THRESHOLD, 1024),
    "arena_max": (M_ARENA_MAX, 1),
}


def _glibc() -> ctypes.CDLL | None:
    if platform.libc_ver()[0] != "glibc":
        return None
    name = ctypes.util.find_library("c")
    return ctypes.CDLL(name) if name else None


def tune_malloc(
    mmap_threshold_kb: int | None, trim_threshold_kb: int | None, logger: logging.Logger, arena_max: int | None = None
) -> dict:
    """Apply the values that are set (None leaves glibc's own); returns what was applied, for the startup log."""
    wanted = {"mmap_threshold_kb": mmap_threshold_kb, "trim_threshold_kb": trim_threshold_kb, "arena_max": arena_max}
    applied: dict[str, int] = {}
    if all(value is None for value in wanted.values()):
        return applied
    libc = _glibc()
    if libc is None:
        logger.warning("malloc settings %s not applied: this process does not run on glibc", wanted)
        return applied
    for name, value in wanted.items():
        if value is None:
            continue
        parameter, scale = OPTIONS[name]
        if libc.mallopt(parameter, value * scale) != 1:  # mallopt returns 1 on success
            logger.warning("glibc refused malloc %s = %d", name, value)
            continue
        applied[name] = value
    return applied
