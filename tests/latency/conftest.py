"""A tiny search space made in code: a four-row MobileNeXt at 64 px with two genes (the KR
flag of its one eligible block and the type of its neck blocks), ~20 latency units."""

from __future__ import annotations

import pytest

from ednas.arch import ArchSpec, AuxArch, MobileNeXtArch, NeckArch
from ednas.config import from_dict
from ednas.arch.space import SearchSpace, SpaceConfig

TINY_BASE = ArchSpec(
    backbone=MobileNeXtArch(rows=((2, 16, 1, 2), (6, 24, 1, 1), (6, 32, 1, 2), (6, 48, 1, 2)),
                            out_stages=(2, 3, 4), stem_channels=8),
    neck=NeckArch(width=16),
    aux=AuxArch(feat_channels=16, num_groups=4),
    input_size=64,
    num_classes=2,
)
TINY_GENES = {
    "backbone": {"widths": [1.0], "kr": [True, False]},
    "neck": {"block_types": ["normal", "plus"], "width": [16]},
    "input_size": {"min": 64, "max": 64},
}


@pytest.fixture
def tiny_space() -> SearchSpace:
    return SearchSpace(from_dict(SpaceConfig, TINY_GENES), TINY_BASE, name="tiny")


@pytest.fixture
def fast() -> dict:
    """Repeats for tests: enough to exercise the code, no timing claims."""
    return {"warmup": 1, "min_pairs": 2, "min_seconds": 0.0}
