"""CPU flags from /proc/cpuinfo text, and the INT8 weight format they call for."""

from __future__ import annotations

from pathlib import Path

import pytest

from ednas.cpu import CpuInfo, cpu_info, int8_weights
from ednas.errors import InputError

BLOCK = "processor\t: {n}\nmodel name\t: {model}\nflags\t\t: fpu sse2 {flags}\n\n"


def _cpuinfo(tmp_path: Path, model: str, flags: str) -> Path:
    path = tmp_path / "cpuinfo"
    path.write_text("".join(BLOCK.format(n=n, model=model, flags=flags) for n in range(2)))
    return path


def test_reads_model_and_int8_flags(tmp_path: Path) -> None:
    info = cpu_info(_cpuinfo(tmp_path, "Intel Xeon", "avx2 avx512f avx512_vnni amx_int8 amx_tile"))
    assert info.model == "Intel Xeon" and info.flags == {"avx2", "avx512_vnni", "amx_int8"} and info.vnni


def test_weight_bits_follow_the_flags() -> None:
    avx2 = CpuInfo("AMD EPYC 7B12", frozenset({"avx2"}))
    vnni = CpuInfo("AMD EPYC 9B14", frozenset({"avx2", "avx512_vnni"}))
    alder = CpuInfo("Core i7-12700", frozenset({"avx2", "avx_vnni"}))
    assert int8_weights("auto", avx2).reduce_range
    assert not int8_weights("auto", vnni).reduce_range and not int8_weights("auto", alder).reduce_range
    assert "EPYC 9B14" in int8_weights("auto", vnni).reason
    # a stated target wins over this machine's flags
    assert int8_weights("avx2", vnni).reduce_range and not int8_weights("vnni", avx2).reduce_range


def test_missing_cpuinfo_means_no_vnni(tmp_path: Path) -> None:
    info = cpu_info(tmp_path / "absent")
    assert not info.flags and int8_weights("auto", info).reduce_range


def test_unknown_target() -> None:
    with pytest.raises(InputError, match="`target_cpu` 'arm'"):
        int8_weights("arm")


def test_more_threads_than_usable_cpus_are_refused(monkeypatch):
    """`--threads 1000` was taken without a word (issue 30); the count is the affinity mask's."""
    import os

    from ednas import cpu

    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {0, 1, 2}, raising=False)
    assert cpu.usable_cpus() == 3
    cpu.check_threads(3)
    cpu.check_threads(None)
    with pytest.raises(InputError, match="`threads` 4 is more than the 3 CPUs this process can use; give at most 3"):
        cpu.check_threads(4)
