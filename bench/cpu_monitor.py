"""CPU load during a measurement, from /proc: how much the machine was busy, and how much of that was someone else.

The machines are shared; another process's build or test run moves figures by 15-20 %. Every phase of the benchmark
records the cores used by everything (/proc/stat), by our own processes (the bench, the stack, llama-server), the
difference (other people's work) and the 1-minute load average, so each figure can be read beside its noise.
"""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

TICKS = os.sysconf("SC_CLK_TCK")


def _busy_ticks() -> int:
    fields = [int(v) for v in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    idle = fields[3] + fields[4]  # idle + iowait
    return sum(fields[:8]) - idle  # user nice system idle iowait irq softirq steal


def _process_ticks(pids: set[int]) -> dict[int, int]:
    ticks = {}
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        # utime + stime (all threads) + cutime + cstime (children that ended and were reaped, such as the
        # sentence-transformers subprocess, whose own entry is gone by the end of its phase)
        ticks[pid] = sum(int(v) for v in fields[11:15])
    return ticks


def load_average() -> float:
    return float(Path("/proc/loadavg").read_text().split()[0])


@dataclass
class CpuUse:
    seconds: float
    busy_cores: float  # the whole machine
    own_cores: float  # the bench, the stack and the peers
    other_cores: float  # everyone else: the noise
    load_1m: float

    def as_dict(self) -> dict[str, float]:
        return {k: round(v, 3) for k, v in asdict(self).items()}


class CpuMonitor:
    """`monitor.start()` before a phase, `monitor.stop()` after it; own_pids() names our processes at that moment."""

    def __init__(self, own_pids: Callable[[], set[int]]) -> None:
        self.own_pids = own_pids

    def start(self) -> None:
        self._t0 = time.monotonic()
        self._busy0 = _busy_ticks()
        self._own0 = _process_ticks(self.own_pids())

    def stop(self) -> CpuUse:
        seconds = max(time.monotonic() - self._t0, 1e-6)
        busy = (_busy_ticks() - self._busy0) / TICKS / seconds
        own_now = _process_ticks(self.own_pids() | set(self._own0))
        own = sum(ticks - self._own0.get(pid, 0) for pid, ticks in own_now.items()) / TICKS / seconds
        return CpuUse(seconds, busy, own, max(busy - own, 0.0), load_average())


async def wait_for_quiet(monitor: CpuMonitor, max_wait_s: float, threshold_cores: float = 0.2) -> float:
    """Before a phase, wait (at most max_wait_s) until other processes use under threshold_cores for a second."""
    start = time.monotonic()
    while time.monotonic() - start < max_wait_s:
        monitor.start()
        await asyncio.sleep(1.0)
        if monitor.stop().other_cores < threshold_cores:
            break
    return time.monotonic() - start
