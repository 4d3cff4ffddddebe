"""Named architectures: the published Enhanced NanoDet variants and the NanoDet-Plus baseline.

Each entry point returns an ArchSpec; recipes refer to them by name (`model: {arch: NAME}`).
"""

from __future__ import annotations

from typing import Callable

from ednas.arch.spec import (
    MOBILENEXT_ROWS, ArchSpec, AuxArch, HeadArch, MobileNeXtArch, NeckArch, ShuffleNetV2Arch,
)
from ednas.errors import ConfigError

_REGISTRY: dict[str, Callable[[], ArchSpec]] = {}


def register(fn: Callable[[], ArchSpec]) -> Callable[[], ArchSpec]:
    _REGISTRY[fn.__name__] = fn
    return fn


def get_arch(name: str) -> ArchSpec:
    """The registered architecture `name`; an unknown name lists the known ones."""
    if name not in _REGISTRY:
        raise ConfigError(f"unknown architecture {name!r}; known: {', '.join(sorted(_REGISTRY))}")
    return _REGISTRY[name]()


def arch_names() -> list[str]:
    return sorted(_REGISTRY)


def _rows(n: int, row5_stride: int) -> tuple[tuple[int, int, int, int], ...]:
    rows = list(MOBILENEXT_ROWS[:n])
    t, c, reps, _ = rows[4]
    rows[4] = (t, c, reps, row5_stride)
    return tuple(rows)


@register
def enhanced_nanodet_s() -> ArchSpec:
    return ArchSpec(
        backbone=MobileNeXtArch(rows=_rows(5, 2), out_stages=(5, 8, 12)),
        input_size=320,
    )


@register
def enhanced_nanodet_m() -> ArchSpec:
    return ArchSpec(
        backbone=MobileNeXtArch(rows=_rows(6, 1), out_stages=(5, 12, 16)),
        input_size=416,
    )


@register
def enhanced_nanodet_m_hswish() -> ArchSpec:
    return ArchSpec(
        backbone=MobileNeXtArch(rows=_rows(6, 1), out_stages=(5, 12, 16)),
        aux=AuxArch(feat_channels=128),
        input_size=416,
        activation="hardswish",
    )


@register
def enhanced_nanodet_l() -> ArchSpec:
    return ArchSpec(
        backbone=MobileNeXtArch(rows=_rows(7, 1), out_stages=(5, 12, 18)),
        neck=NeckArch(width=160),
        head=HeadArch(decoupled=True),
        input_size=416,
        activation="hardswish",
    )


@register
def enhanced_nanodet_l_640() -> ArchSpec:
    return enhanced_nanodet_l().replace(aux=AuxArch(feat_channels=320), input_size=640)


@register
def nanodet_plus_m() -> ArchSpec:
    return ArchSpec(
        backbone=ShuffleNetV2Arch(model_size="1.0x"),
        neck=NeckArch(block_types=("normal",) * 4),
        input_size=320,
    )


@register
def nanodet_plus_m_416() -> ArchSpec:
    return nanodet_plus_m().replace(input_size=416)


@register
def nanodet_plus_m_1_5x() -> ArchSpec:
    return ArchSpec(
        backbone=ShuffleNetV2Arch(model_size="1.5x"),
        neck=NeckArch(width=128, block_types=("normal",) * 4),
        aux=AuxArch(feat_channels=256),
        input_size=416,
    )
