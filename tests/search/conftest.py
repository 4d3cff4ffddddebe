"""Search fixtures made in code: a tiny space (four-row MobileNeXt, 64..96 px, two widths, two
neck widths) as YAML files, a latency table for it with made-up unit times, synthetic images,
and a real supernet of the space with random weights."""

from __future__ import annotations

import dataclasses
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

from ednas.arch import ArchSpec, AuxArch, MobileNeXtArch, NeckArch
from ednas.data.classes import SHAPE_CLASSES
from ednas.data.synth import SynthSet, generate
from ednas.latency.profiler import calibration_archs, new_meta
from ednas.latency.runner import RowWriter, machine_info
from ednas.latency.table import Calibration, meta_path, write_meta
from ednas.latency.units import space_units
from ednas.arch.space import SearchSpace

HERE = Path(__file__).resolve().parent
TINY_BASE = ArchSpec(
    backbone=MobileNeXtArch(rows=((2, 16, 1, 2), (6, 24, 1, 1), (6, 32, 1, 2), (6, 48, 1, 2)),
                            out_stages=(2, 3, 4), stem_channels=8),
    neck=NeckArch(width=24),
    aux=AuxArch(feat_channels=16, num_groups=4),
    input_size=96,
    num_classes=6,
)
TINY_SPACE = """base: base.arch.yml
backbone: {widths: [0.5, 1.0], kr: [true, false]}
neck: {block_types: [normal, plus], width: [16, 24]}
input_size: {min: 64, max: 96, step: 32}
"""


def write_space(folder: Path, text: str = TINY_SPACE) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    TINY_BASE.save(folder / "base.arch.yml")
    path = folder / "tiny.yml"
    path.write_text(text)
    return path


def write_table(space: SearchSpace, path: Path, precision: str = "fp32", threads: int = 2,
                cpu: str | None = None) -> Path:
    """Every unit of `space` at a made-up time growing with the tensors it reads and writes
    (bigger choices are slower, as on a real CPU; deterministic)."""
    units = space_units(space)
    calib = calibration_archs(space, 2)
    machine = machine_info(threads)
    if cpu is not None:
        machine["cpu"] = cpu
    meta = dataclasses.replace(new_meta(space, "cpu", precision, threads, False, len(units), calib),
                               probe_ms=2.0, machine=machine,
                               calibration=Calibration(overhead_ms=0.5, scale=1.0, ms_per_melem=0.01))
    with RowWriter(path) as w:
        for key, unit in sorted(units.items()):
            ms = 0.01 + 2e-6 * unit.io_elems
            w.write({"key": key, "kind": "unit", "median_ms": ms, "p10_ms": ms, "p90_ms": ms,
                     "probe_ms": 2.0, "ratio": ms / 2.0, "pairs": 1})
    write_meta(meta_path(path), meta)
    return path


@dataclass(frozen=True)
class Tiny:
    space_yml: Path  # the space YAML (what the fake evaluator takes as its "supernet")
    space: SearchSpace
    table: Path  # its latency table (made-up unit times, this machine)
    images: Path  # synthetic evaluation images and their COCO json
    ann: Path


@pytest.fixture(scope="session")
def synth(tmp_path_factory) -> SynthSet:
    """24 synthetic 96 px images (5 held out for scoring)."""
    return generate(tmp_path_factory.mktemp("synth"), 24, size=96, seed=0)


@pytest.fixture
def tiny(tmp_path, synth) -> Tiny:
    path = write_space(tmp_path / "space")
    space = SearchSpace.load(path)
    return Tiny(path, space, write_table(space, tmp_path / "tiny_cpu_fp32_2t.csv"), synth.images, synth.val)


@pytest.fixture(scope="session")
def supernet(tmp_path_factory) -> Path:
    """A real supernet file of the tiny space with fresh random weights (it scores ~0: enough to
    exercise slicing, BN recalibration and COCO evaluation end to end)."""
    from ednas.supernet.init import init_supernet

    folder = tmp_path_factory.mktemp("supernet")
    net = init_supernet(SearchSpace.load(write_space(folder / "space")))
    net.meta["class_names"] = list(SHAPE_CLASSES)  # the synthetic set's six shapes
    net.save(folder / "tiny.supernet.pt")
    return folder / "tiny.supernet.pt"


@pytest.fixture
def fake_evaluator(monkeypatch) -> str:
    """Route the search to tests/search/fake_evaluator.py (in this process and in workers)."""
    monkeypatch.syspath_prepend(str(HERE))
    monkeypatch.setenv("PYTHONPATH", f"{HERE}:{':'.join(sys.path)}")
    monkeypatch.setenv("EDNAS_SEARCH_EVALUATOR", "fake_evaluator:from_file")
    return "fake_evaluator:from_file"
