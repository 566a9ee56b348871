"""ortserve_common.cpu on made-up /proc/cpuinfo texts and cgroup files: nothing here reads this machine."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
from ortserve_common import cpu
from ortserve_common.cpu import cfs_cores, cgroup_cores, cpu_max_cores, parse_cpuinfo, usable_cores

# Abridged from real machines: two processors each, so that only the first entry is read.
EPYC_ZEN2 = """\
processor\t: 0
vendor_id\t: AuthenticAMD
cpu family\t: 23
model\t\t: 49
model name\t: AMD EPYC 7B12
stepping\t: 0
flags\t\t: fpu vme sse sse2 ssse3 fma cx16 sse4_1 sse4_2 movbe popcnt aes xsave avx f16c rdrand avx2 bmi2 sha_ni
bogomips\t: 4499.99

processor\t: 1
vendor_id\t: AuthenticAMD
cpu family\t: 23
model\t\t: 49
model name\t: AMD EPYC 7B12
flags\t\t: fpu vme sse sse2 avx avx2 avx512f
"""

XEON_AMX = """\
processor\t: 0
vendor_id\t: GenuineIntel
cpu family\t: 6
model\t\t: 143
model name\t: Intel(R) Xeon(R) Platinum 8481C CPU @ 2.70GHz
flags\t\t: fpu sse sse2 avx avx2 fma avx512f avx512dq avx512cd avx512bw avx512vl avx_vnni avx512_bf16 avx512_vnni \
avx512_bitalg amx_bf16 avx512_fp16 amx_tile amx_int8

processor\t: 1
vendor_id\t: GenuineIntel
"""


def test_an_avx2_only_epyc_zen2_is_read_from_its_first_entry() -> None:
    info = parse_cpuinfo(EPYC_ZEN2, usable=2)
    assert (info.model_name, info.vendor, info.family, info.model) == ("AMD EPYC 7B12", "AuthenticAMD", 23, 49)
    assert info.isa == ("avx2",)  # the second entry's avx512f is not this machine's (made up to prove it)
    assert info.describe() == "AMD EPYC 7B12 (AuthenticAMD family 23 model 49), ISA avx2, 2 usable cores"
    assert info.labels() == {
        "model": "AMD EPYC 7B12",
        "vendor": "AuthenticAMD",
        "family": "23",
        "model_number": "49",
        "isa": "avx2",
        "usable_cores": "2",
    }


def test_an_avx512_vnni_amx_xeon_lists_every_kernel_flag_in_a_fixed_order() -> None:
    info = parse_cpuinfo(XEON_AMX, usable=8)
    assert (info.vendor, info.family, info.model) == ("GenuineIntel", 6, 143)
    assert info.model_name == "Intel(R) Xeon(R) Platinum 8481C CPU @ 2.70GHz"
    assert info.isa == ("avx2", "avx512f", "avx512_vnni", "avx_vnni", "amx_tile", "amx_int8", "amx_bf16")
    assert info.labels()["isa"] == "avx2,avx512f,avx512_vnni,avx_vnni,amx_tile,amx_int8,amx_bf16"


def test_a_cpuinfo_without_x86_fields_still_describes_something() -> None:
    info = parse_cpuinfo("processor\t: 0\nFeatures\t: fp asimd sve\nCPU implementer\t: 0x41\n", usable=4)
    assert info.vendor == "0x41" and info.family is None and info.model is None and info.isa == ()
    assert info.labels()["family"] == "" and "ISA none of avx2/" in info.describe()


@pytest.mark.parametrize(
    ("text", "cores"),
    [("max 100000\n", None), ("100000 100000\n", 1.0), ("150000 100000", 1.5), ("50000 100000", 0.5), ("", None)],
)
def test_cgroup_v2_cpu_max(text: str, cores: float | None) -> None:
    assert cpu_max_cores(text) == cores


def test_cgroup_v1_cfs_quota() -> None:
    assert cfs_cores("-1\n", "100000\n") is None
    assert cfs_cores("200000\n", "100000\n") == 2.0


# A container's /proc/self/cgroup (cgroup namespace): its own cgroup is the mount's root.
IN_CONTAINER = "0::/\n"


def _cgroup(root: Path, files: dict[str, str]) -> Path:
    for name, text in files.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(text)
    return root


def test_usable_cores_is_the_affinity_capped_by_the_quota_rounded_up(tmp_path: Path) -> None:
    one_cpu = _cgroup(tmp_path / "v2-one", {"cpu.max": "100000 100000\n"})  # docker run --cpus 1
    assert usable_cores(one_cpu, affinity=64, proc_cgroup=IN_CONTAINER) == 1
    half = _cgroup(tmp_path / "v2-half", {"cpu.max": "50000 100000\n"})  # --cpus 0.5: still one thread
    assert usable_cores(half, affinity=64, proc_cgroup=IN_CONTAINER) == 1
    one_and_a_half = _cgroup(tmp_path / "v2-1.5", {"cpu.max": "150000 100000\n"})
    assert usable_cores(one_and_a_half, affinity=64, proc_cgroup=IN_CONTAINER) == 2
    unlimited = _cgroup(tmp_path / "v2-max", {"cpu.max": "max 100000\n"})
    assert usable_cores(unlimited, affinity=6, proc_cgroup=IN_CONTAINER) == 6
    pinned = _cgroup(tmp_path / "v2-pinned", {"cpu.max": "400000 100000\n"})  # --cpus 4 --cpuset-cpus 0,1
    assert usable_cores(pinned, affinity=2, proc_cgroup=IN_CONTAINER) == 2


def test_usable_cores_reads_cgroup_v1_in_either_mount_layout(tmp_path: Path) -> None:
    v1 = _cgroup(tmp_path / "v1", {"cpu/cpu.cfs_quota_us": "300000\n", "cpu/cpu.cfs_period_us": "100000\n"})
    assert cgroup_cores(v1, IN_CONTAINER) == 3.0 and usable_cores(v1, affinity=16, proc_cgroup=IN_CONTAINER) == 3
    joined = _cgroup(
        tmp_path / "joined", {"cpu,cpuacct/cpu.cfs_quota_us": "100000\n", "cpu,cpuacct/cpu.cfs_period_us": "100000\n"}
    )
    assert usable_cores(joined, affinity=16, proc_cgroup=IN_CONTAINER) == 1
    unlimited = _cgroup(tmp_path / "v1-max", {"cpu/cpu.cfs_quota_us": "-1\n", "cpu/cpu.cfs_period_us": "100000\n"})
    assert usable_cores(unlimited, affinity=16, proc_cgroup=IN_CONTAINER) == 16


def test_a_host_service_takes_the_tightest_quota_on_its_path_to_the_root(tmp_path: Path) -> None:
    v2 = _cgroup(
        tmp_path / "v2",
        {
            "cpu.max": "max 100000\n",
            "system.slice/cpu.max": "200000 100000\n",  # a parent's quota caps its children's
            "system.slice/ortserve.service/cpu.max": "400000 100000\n",
            "other.slice/cpu.max": "50000 100000\n",  # not on this process's path
        },
    )
    assert cgroup_cores(v2, "0::/system.slice/ortserve.service\n") == 2.0
    assert usable_cores(v2, affinity=16, proc_cgroup="0::/system.slice/ortserve.service\n") == 2
    v1 = _cgroup(
        tmp_path / "v1",
        {"cpu,cpuacct/batch/cpu.cfs_quota_us": "150000\n", "cpu,cpuacct/batch/cpu.cfs_period_us": "100000\n"},
    )
    hybrid = "12:cpu,cpuacct:/batch\n4:memory:/batch\n0::/batch\n"  # v1 controllers, v2 for the rest
    assert cgroup_cores(v1, hybrid) == 1.5 and usable_cores(v1, affinity=16, proc_cgroup=hybrid) == 2
    # A v1 container without a cgroup namespace names its host path, which the container's mount does not have.
    docker = _cgroup(tmp_path / "docker", {"cpu/cpu.cfs_quota_us": "100000\n", "cpu/cpu.cfs_period_us": "100000\n"})
    assert usable_cores(docker, affinity=16, proc_cgroup="5:cpu,cpuacct:/docker/0123abcd\n") == 1


def test_no_cgroup_files_leave_the_affinity_and_never_less_than_one(tmp_path: Path) -> None:
    assert cgroup_cores(tmp_path, IN_CONTAINER) is None
    assert usable_cores(tmp_path, affinity=3, proc_cgroup=IN_CONTAINER) == 3
    assert usable_cores(tmp_path, affinity=0, proc_cgroup=IN_CONTAINER) == 1
    garbled = _cgroup(tmp_path / "garbled", {"cpu.max": "lots\n"})
    assert usable_cores(garbled, affinity=2, proc_cgroup=IN_CONTAINER) == 2


def test_engine_threads_are_the_setting_or_else_the_usable_cores(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setattr(cpu, "host_cpu", lambda: parse_cpuinfo(EPYC_ZEN2, usable=1))
    assert cpu.engine_threads(4) == 4 and cpu.engine_threads(None) == 1
    logger = logging.getLogger("test.cpu")
    with caplog.at_level(logging.INFO, logger="test.cpu"):
        assert cpu.log_cpu(logger, None, "CHAT_ENGINE_THREADS") == 1
        assert cpu.log_cpu(logger, 4, "CHAT_ENGINE_THREADS") == 4
    first, second = caplog.records
    assert first.getMessage() == (
        "cpu AMD EPYC 7B12 (AuthenticAMD family 23 model 49), ISA avx2, 1 usable cores; "
        "engine threads 1 (the usable cores)"
    )
    assert second.getMessage().endswith("engine threads 4 (CHAT_ENGINE_THREADS)")
    assert first.engine_threads == 1 and first.cpu["model_number"] == "49"  # type: ignore[attr-defined]
