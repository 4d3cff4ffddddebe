"""The CPU's model and INT8 instruction flags, and the INT8 weight format they call for.

ONNX Runtime's U8S8 convs multiply uint8 activations by int8 weights. Without VNNI (AVX2
only) the kernel sums pairs of products in int16 (vpmaddubsw), which saturates for 8-bit
weights; 7-bit weights (`reduce_range`) keep the sums in range at the cost of one bit of
weight precision. VNNI (avx512_vnni, avx_vnni) and AMX (amx_int8) accumulate in int32, so
full 8-bit weights cost nothing there.
"""

from __future__ import annotations

import os
import platform
from dataclasses import dataclass
from pathlib import Path

from ednas.errors import InputError

INT8_FLAGS = ("avx2", "avx512_vnni", "avx_vnni", "amx_int8")  # what INT8 kernels dispatch on
VNNI_FLAGS = frozenset({"avx512_vnni", "avx_vnni", "amx_int8"})  # int32 accumulation of u8 x s8
TARGETS = ("auto", "avx2", "vnni")  # --target-cpu: this machine's flags, or a deployment CPU


def usable_cpus() -> int:
    """CPUs this process may run on (its affinity mask, which containers and `taskset` narrow;
    the machine's count where the platform has none)."""
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def check_threads(threads: int | None, name: str = "`threads`") -> None:
    """Refuse more compute threads than this process has CPUs: they would only time-share
    them (timings and throughput quietly worse), which a user asking for them does not expect."""
    cpus = usable_cpus()
    if threads is not None and threads > cpus:
        raise InputError(f"{name} {threads} is more than the {cpus} CPUs this process can use; give at most {cpus}")


@dataclass(frozen=True)
class CpuInfo:
    """Model name and the INT8-relevant flags present (subset of INT8_FLAGS)."""

    model: str
    flags: frozenset[str]

    @property
    def vnni(self) -> bool:
        return bool(self.flags & VNNI_FLAGS)

    def describe(self) -> str:
        """e.g. 'AMD EPYC (avx2, avx512_vnni)'."""
        present = [f for f in INT8_FLAGS if f in self.flags]
        return f"{self.model} ({', '.join(present) or 'no INT8 SIMD flags'})"


def cpu_info(cpuinfo: str | Path = "/proc/cpuinfo") -> CpuInfo:
    """This machine's CPU, read from /proc/cpuinfo (Linux); elsewhere the platform's name and
    no flags, which `int8_weights` treats as a CPU without VNNI."""
    model, flags = platform.processor() or platform.machine(), frozenset()
    try:
        text = Path(cpuinfo).read_text()
    except OSError:
        return CpuInfo(model, flags)
    for line in text.splitlines():
        key, _, value = line.partition(":")
        key = key.strip()
        if key == "model name" and value.strip():
            model = value.strip()
        elif key == "flags" and not flags:
            flags = frozenset(value.split()) & frozenset(INT8_FLAGS)
        if key == "" and flags:  # end of the first processor's block
            break
    return CpuInfo(model, flags)


@dataclass(frozen=True)
class WeightChoice:
    """How INT8 weights are stored for a target CPU, and why."""

    target: str  # avx2 | vnni (auto resolved)
    reduce_range: bool  # 7-bit weights
    reason: str


def int8_weights(target: str = "auto", info: CpuInfo | None = None) -> WeightChoice:
    """The weight format for `target` (auto: this machine's flags)."""
    if target not in TARGETS:
        raise InputError(f"`target_cpu` {target!r} is not one of {', '.join(TARGETS)}")
    source = "stated by --target-cpu"
    if target == "auto":
        info = info or cpu_info()
        target = "vnni" if info.vnni else "avx2"
        source = f"this CPU: {info.describe()}"
    if target == "vnni":
        return WeightChoice(target, False, f"8-bit weights: VNNI accumulates in int32 ({source})")
    return WeightChoice(target, True, f"7-bit weights: U8S8 without VNNI saturates int16 sums ({source})")
