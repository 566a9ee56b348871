"""The CPU a figure was measured on, and how many of its cores this process may use.

ONNX Runtime's MLAS picks its kernels by ISA (AVX2, AVX-512, VNNI, AMX), so a figure or a token-for-token comparison
means little without the CPU and these flags beside it: greedy outputs can differ between an AVX2 and an AVX-512
machine, and so do the speeds.

`nproc` and os.cpu_count() count the host's cores and ignore the cgroup quota: a container given `--cpus 1` on a
64-core host would start 64 spinning intra-op threads that take turns on one core's worth of time. usable_cores()
is what the engines' thread counts default to.
"""

from __future__ import annotations

import functools
import logging
import math
import os
import platform
from dataclasses import dataclass
from pathlib import Path

# The /proc/cpuinfo flags that decide which MLAS kernels run (int4 MatMulNBits, int8 GEMM, bf16).
ISA_FLAGS = ("avx2", "avx512f", "avx512_vnni", "avx_vnni", "amx_tile", "amx_int8", "amx_bf16")
PROC_CPUINFO = Path("/proc/cpuinfo")
PROC_SELF_CGROUP = Path("/proc/self/cgroup")
CGROUP_ROOT = Path("/sys/fs/cgroup")
# Where cgroup v1 mounts the cpu controller: alone, or joined with cpuacct (older Debian and RHEL hosts).
_V1_CPU_DIRS = ("cpu", "cpu,cpuacct", "cpuacct,cpu")


@dataclass(frozen=True)
class CpuInfo:
    model_name: str
    vendor: str
    family: int | None
    model: int | None
    isa: tuple[str, ...]  # the ISA_FLAGS present, in ISA_FLAGS order
    usable_cores: int

    def describe(self) -> str:
        """One line for logs and reports: `AMD EPYC 7B12 (AuthenticAMD family 23 model 49), ISA avx2, 2 usable
        cores`."""
        ids = " ".join(
            part
            for part in (
                self.vendor,
                f"family {self.family}" if self.family is not None else "",
                f"model {self.model}" if self.model is not None else "",
            )
            if part
        )
        isa = " ".join(self.isa) or "none of " + "/".join(ISA_FLAGS)
        return f"{self.model_name} ({ids}), ISA {isa}, {self.usable_cores} usable cores"

    def labels(self) -> dict[str, str]:
        """The Prometheus info metric's labels."""
        return {
            "model": self.model_name,
            "vendor": self.vendor,
            "family": "" if self.family is None else str(self.family),
            "model_number": "" if self.model is None else str(self.model),
            "isa": ",".join(self.isa),
            "usable_cores": str(self.usable_cores),
        }


def parse_cpuinfo(text: str, usable: int) -> CpuInfo:
    """The first processor's entry of a /proc/cpuinfo text (the others repeat it on every machine we run on)."""
    fields: dict[str, str] = {}
    for line in text.splitlines():
        if not line.strip():
            if fields:
                break
            continue
        key, sep, value = line.partition(":")
        if sep:
            fields.setdefault(key.strip(), value.strip())
    # Arm kernels write "Features" and no model name; the flags we look for are x86 ones and are then simply absent.
    flags = set((fields.get("flags") or fields.get("Features") or "").split())
    return CpuInfo(
        model_name=fields.get("model name") or platform.processor() or platform.machine() or "unknown",
        vendor=fields.get("vendor_id") or fields.get("CPU implementer") or "unknown",
        family=_int(fields.get("cpu family")),
        model=_int(fields.get("model")),
        isa=tuple(flag for flag in ISA_FLAGS if flag in flags),
        usable_cores=usable,
    )


def _int(value: str | None) -> int | None:
    try:
        return int(value) if value is not None else None
    except ValueError:
        return None


def cpu_max_cores(text: str) -> float | None:
    """Cores a cgroup v2 `cpu.max` ("quota period", or "max period") allows; None when unlimited."""
    parts = text.split()
    if not parts or parts[0] == "max":
        return None
    period = int(parts[1]) if len(parts) > 1 else 100_000  # the kernel's default period
    return int(parts[0]) / period if period > 0 else None


def cfs_cores(quota_text: str, period_text: str) -> float | None:
    """Cores a cgroup v1 cpu.cfs_quota_us / cpu.cfs_period_us pair allows; None when unlimited (quota -1)."""
    quota, period = int(quota_text.strip()), int(period_text.strip())
    return quota / period if quota > 0 and period > 0 else None


def cgroup_cores(root: Path = CGROUP_ROOT, proc_cgroup: str | None = None) -> float | None:
    """The tightest CPU quota over this process's cgroup and its ancestors, in cores, from v2's cpu.max or v1's CFS
    files; None when none is set or readable. `proc_cgroup` is /proc/self/cgroup's text (read when None).

    Inside a container the mount's root is the container's own cgroup (the path named in /proc/self/cgroup is then
    missing under it, and the root is what is read); on a host, a service's cgroup (a systemd CPUQuota) sits below
    the root, and a parent's quota caps its children's."""
    if proc_cgroup is None:
        try:
            proc_cgroup = PROC_SELF_CGROUP.read_text()
        except OSError:
            proc_cgroup = ""
    own = {}  # controllers ("" for the v2 hierarchy) -> this process's cgroup path
    for line in proc_cgroup.splitlines():
        _, _, rest = line.partition(":")
        controllers, _, path = rest.partition(":")
        own[controllers] = path
    limits = [_v2_cores(folder) for folder in _ancestors(root, own.get("", "/"))]
    limits += [_v1_cores(folder) for name in _V1_CPU_DIRS for folder in _ancestors(root / name, own.get(name, "/"))]
    found = [limit for limit in limits if limit is not None]
    return min(found) if found else None


def _ancestors(base: Path, path: str) -> list[Path]:
    """base/a/b/c, base/a/b, base/a, base for the cgroup path /a/b/c."""
    parts = [part for part in path.strip().split("/") if part and part != ".."]
    return [base.joinpath(*parts[:depth]) for depth in range(len(parts), -1, -1)]


# A level or a controller that is not there, or a file we cannot parse, sets no limit.
def _v2_cores(folder: Path) -> float | None:
    try:
        return cpu_max_cores((folder / "cpu.max").read_text())
    except (OSError, ValueError):
        return None


def _v1_cores(folder: Path) -> float | None:
    try:
        return cfs_cores((folder / "cpu.cfs_quota_us").read_text(), (folder / "cpu.cfs_period_us").read_text())
    except (OSError, ValueError):
        return None


def usable_cores(root: Path = CGROUP_ROOT, affinity: int | None = None, proc_cgroup: str | None = None) -> int:
    """min(the CPUs this process may run on, the cgroup quota rounded up), at least 1.

    Rounded up: a quota of 1.5 cores lets two threads run for most of each period, and one thread would leave the
    half core idle.
    """
    if affinity is None:
        affinity = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    quota = cgroup_cores(root, proc_cgroup)
    cores = affinity if quota is None else min(affinity, math.ceil(quota))
    return max(1, cores)


def engine_threads(configured: int | None) -> int:
    """The ONNX Runtime intra-op threads an engine runs with: the configured count, else the usable cores (as the
    info metric reports them: one reading per process)."""
    return configured if configured is not None else host_cpu().usable_cores


@functools.cache
def host_cpu() -> CpuInfo:
    """This machine's CPU, read once per process (a cgroup quota change needs a restart to show, as threads do)."""
    try:
        text = PROC_CPUINFO.read_text()
    except OSError:
        text = ""
    return parse_cpuinfo(text, usable_cores())


def log_cpu(logger: logging.Logger, configured_threads: int | None, variable: str) -> int:
    """The startup line that says what the figures of this process run on, and the engine threads it resolved
    (`variable` names the setting that was given, for the line to say where the count came from)."""
    cpu = host_cpu()
    threads = engine_threads(configured_threads)
    source = variable if configured_threads is not None else "the usable cores"
    logger.info(
        "cpu %s; engine threads %d (%s)",
        cpu.describe(),
        threads,
        source,
        extra={"cpu": cpu.labels(), "engine_threads": threads},
    )
    return threads
