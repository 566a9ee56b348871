"""tune_malloc: the thresholds reach glibc (read back through mallinfo2: a block above the mmap threshold that the heap
cannot hold gets a mapping of its own), so does the arena cap (read back through malloc_info: threads that allocate
share the arenas it allows), unset ones are left alone, and a refusal or a non-glibc process is logged
instead of failing."""

from __future__ import annotations

import logging
import platform
import subprocess
import sys
from unittest.mock import patch

import pytest
from ortserve_common import malloc
from ortserve_common.malloc import tune_malloc

pytestmark = pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="mallopt and mallinfo2 are glibc's")
LOGGER = logging.getLogger("test_malloc")


# Run in a fresh interpreter, whose heap holds no large free chunk: glibc serves a block from free chunks or from
# the top of the heap whenever they fit, whatever the threshold, and mmaps it only when the heap would have to grow.
# So the heap is trimmed first (malloc_trim), then a block larger than what is left is asked for.
PROBE = """
import ctypes, logging, sys
from ortserve_common.malloc import tune_malloc

FIELDS = "arena ordblks smblks hblks hblkhd usmblks fsmblks uordblks fordblks keepcost"

class MallInfo2(ctypes.Structure):
    _fields_ = [(name, ctypes.c_size_t) for name in FIELDS.split()]  # all ten: it is returned by value

libc = ctypes.CDLL("libc.so.6")
libc.mallinfo2.restype = MallInfo2
libc.malloc.restype = ctypes.c_void_p
applied = tune_malloc(int(sys.argv[1]), 128, logging.getLogger("probe"))
libc.malloc_trim(0)
before = libc.mallinfo2().hblks
block = libc.malloc(4 * 1024 * 1024)
print(applied["mmap_threshold_kb"], libc.mallinfo2().hblks - before)
"""


def mmapped_blocks_for_4mb(mmap_threshold_kb: int) -> tuple[int, int]:
    """(the threshold applied, how many more mmapped chunks glibc holds once a 4 MB block is allocated)."""
    result = subprocess.run([sys.executable, "-c", PROBE, str(mmap_threshold_kb)], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    applied, blocks = result.stdout.split()
    return int(applied), int(blocks)


def test_a_block_above_the_mmap_threshold_gets_its_own_mapping_and_one_below_does_not() -> None:
    assert mmapped_blocks_for_4mb(64) == (64, 1)
    assert mmapped_blocks_for_4mb(8192) == (8192, 0)  # grown from the heap: its pages would stay after free


# Each new thread that allocates gets an arena of its own (up to glibc's cap of 8 per core), so eight threads that
# malloc at the same time, held alive by a barrier, leave several heaps in malloc_info's report unless capped.
ARENA_PROBE = """
import ctypes, logging, sys, tempfile, threading
from ortserve_common.malloc import tune_malloc

libc = ctypes.CDLL("libc.so.6")
libc.malloc.restype = ctypes.c_void_p
libc.fopen.restype = ctypes.c_void_p
libc.fclose.argtypes = libc.malloc_info.argtypes = None
cap = int(sys.argv[1])
if cap:
    assert tune_malloc(None, None, logging.getLogger("probe"), arena_max=cap) == {"arena_max": cap}
barrier = threading.Barrier(8)

def allocate():
    barrier.wait()
    libc.malloc(1000)
    barrier.wait()

threads = [threading.Thread(target=allocate) for _ in range(8)]
for thread in threads:
    thread.start()
for thread in threads:
    thread.join()
with tempfile.NamedTemporaryFile() as report:
    stream = ctypes.c_void_p(libc.fopen(report.name.encode(), b"w"))
    libc.malloc_info(0, stream)
    libc.fclose(stream)
    print(open(report.name).read().count("<heap nr="))
"""


def heaps_after_eight_threads(arena_max: int) -> int:
    """How many arenas (heaps) glibc reports once eight threads allocated together; arena_max 0 leaves glibc's cap."""
    result = subprocess.run([sys.executable, "-c", ARENA_PROBE, str(arena_max)], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    return int(result.stdout)


def test_the_arena_cap_makes_threads_share_arenas() -> None:
    assert heaps_after_eight_threads(0) > 2  # the main arena and one per allocating thread, up to 8 per core
    assert heaps_after_eight_threads(2) <= 2


def test_unset_thresholds_are_left_to_glibc() -> None:
    assert tune_malloc(None, None, LOGGER) == {}
    with patch.object(malloc, "_glibc") as glibc:
        glibc.return_value.mallopt.return_value = 1
        assert tune_malloc(None, 128, LOGGER) == {"trim_threshold_kb": 128}
    glibc.return_value.mallopt.assert_called_once_with(malloc.M_TRIM_THRESHOLD, 128 * 1024)


def test_glibc_refusing_a_value_is_logged_not_raised(caplog: pytest.LogCaptureFixture) -> None:
    with patch.object(malloc, "_glibc") as glibc, caplog.at_level(logging.WARNING):
        glibc.return_value.mallopt.side_effect = [0, 1]  # mallopt returns 0 for a value it does not take
        assert tune_malloc(64, 128, LOGGER) == {"trim_threshold_kb": 128}
    assert "glibc refused malloc mmap_threshold_kb = 64" in caplog.text


def test_a_process_without_glibc_gets_a_warning(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setattr(malloc.platform, "libc_ver", lambda: ("musl", ""))
    with caplog.at_level(logging.WARNING):
        assert tune_malloc(64, 128, LOGGER) == {}
    assert "not applied: this process does not run on glibc" in caplog.text
