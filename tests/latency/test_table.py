"""Tables and the predictor, on hand-made tables (no timing)."""

from __future__ import annotations

import dataclasses
import random
import time

import pytest

from ednas.latency import LatencyPredictor, LatencyTable, LatencyTableError
from ednas.latency.profiler import calibration_archs, check_device, new_meta
from ednas.latency.runner import RowWriter, read_rows
from ednas.latency.table import Calibration, meta_path, write_meta
from ednas.latency.units import arch_units, space_units
from ednas.errors import InputError


def fake_table(space, path, calibration=Calibration(overhead_ms=1.5, scale=0.9, ms_per_melem=-0.5),
               drop: int = 0) -> LatencyTable:
    """Every unit of `space` with latency = 0.01 * its index (probe 2 ms: ratio = ms / 2)."""
    units = list(space_units(space))
    calib = calibration_archs(space, 2)
    meta = new_meta(space, "cpu", "fp32", 2, False, len(units), calib)
    meta = dataclasses.replace(meta, probe_ms=2.0, calibration=calibration)
    with RowWriter(path) as w:
        for i, key in enumerate(units[drop:]):
            w.write({"key": key, "kind": "unit", "median_ms": 0.0, "p10_ms": 0.0, "p90_ms": 0.0,
                     "probe_ms": 2.0, "ratio": 0.01 * (i + drop) / 2.0, "pairs": 1})
    write_meta(meta_path(path), meta)
    return LatencyTable.load(path, space.fingerprint(), complete=drop == 0)


def test_predictor_sums_the_table(tiny_space, tmp_path) -> None:
    table = fake_table(tiny_space, tmp_path / "t.csv")
    predictor = LatencyPredictor(table)
    arch = tiny_space.base
    units = arch_units(arch)
    total = sum(table.ms[u.key] for _, u in units)
    melems = sum(u.io_elems for _, u in units) / 1e6
    assert predictor.predict(arch) == pytest.approx(1.5 + 0.9 * total - 0.5 * melems)
    assert sum(p.ms for p in predictor.breakdown(arch)) == pytest.approx(predictor.predict(arch))
    assert LatencyPredictor(table, scale=2.0).predict(arch) == pytest.approx(2 * predictor.predict(arch))


def test_table_for_another_space_is_refused(tiny_space, tmp_path) -> None:
    fake_table(tiny_space, tmp_path / "t.csv")
    with pytest.raises(LatencyTableError, match="measured for search space 'tiny'.*ednas profile --space"):
        LatencyTable.load(tmp_path / "t.csv", fingerprint="0123456789abcdef")


def test_missing_and_truncated_tables_say_what_to_run(tiny_space, tmp_path) -> None:
    with pytest.raises(LatencyTableError, match="no latency table.*ednas profile"):
        LatencyTable.load(tmp_path / "none.csv")
    fake_table(tiny_space, tmp_path / "t.csv", drop=3)
    with pytest.raises(LatencyTableError, match=r"incomplete \(\d+ of \d+ units\).*ednas profile"):
        LatencyTable.load(tmp_path / "t.csv")


def test_cut_line_is_dropped(tiny_space, tmp_path) -> None:
    path = tmp_path / "t.csv"
    fake_table(tiny_space, path)
    n = len(read_rows(path))
    with path.open("a") as f:
        f.write("stem channels=8 @3x64x64,unit,0.1,0.")  # a kill in the middle of a row
    assert len(read_rows(path)) == n
    assert path.read_text().endswith("\n")


def test_arch_outside_the_table(tiny_space, tmp_path) -> None:
    predictor = LatencyPredictor(fake_table(tiny_space, tmp_path / "t.csv"))
    with pytest.raises(LatencyTableError, match="outside the table's search space"):
        predictor.predict(tiny_space.base.replace(input_size=96))


def test_unknown_device() -> None:
    with pytest.raises(InputError, match="only cpu"):
        check_device("cuda")


def test_predictor_is_fast(tiny_space, tmp_path) -> None:
    """Throughput is reported, not asserted (benchmarks/latency_validate.py measures it)."""
    predictor = LatencyPredictor(fake_table(tiny_space, tmp_path / "t.csv"))
    rng = random.Random(0)
    archs = [tiny_space.sample(rng) for _ in range(200)]
    start = time.perf_counter()
    assert all(predictor.predict(a) > 0 for a in archs)
    print(f"{len(archs) / (time.perf_counter() - start):.0f} archs/s")
