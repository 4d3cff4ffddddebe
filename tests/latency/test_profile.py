"""Building tables for real (tiny space, very few repeats): resume, bundle -> import."""

from __future__ import annotations

import pytest

from ednas.latency import LatencyPredictor, LatencyTable, runner
from ednas.latency import profiler
from ednas.latency.units import space_units


def test_resume_skips_measured_units(tiny_space, tmp_path, monkeypatch, fast) -> None:
    out = tmp_path / "t.csv"
    profiler.profile(tiny_space, out, calib_models=2, progress=False, stop_after=3, timing=fast)  # "killed"
    first = [r["key"] for r in runner.read_rows(out)]
    assert len(first) == 3
    exported = []
    real = profiler.export_unit
    monkeypatch.setattr(profiler, "export_unit", lambda u, p, prec: exported.append(u.key) or real(u, p, prec))
    profiler.profile(tiny_space, out, calib_models=2, progress=False, stop_after=2, timing=fast)
    keys = [r["key"] for r in runner.read_rows(out)]
    assert len(keys) == 5 and len(set(keys)) == 5
    assert not set(exported) & set(first)
    with pytest.raises(profiler.LatencyTableError, match="incomplete"):
        LatencyTable.load(out)


def test_bundle_import_round_trip(tiny_space, tmp_path, fast) -> None:
    bundle = tmp_path / "bundle"
    n = profiler.write_bundle(tiny_space, bundle, calib_models=2, progress=False, timing=fast)
    assert n == len(space_units(tiny_space)) + 2
    assert (bundle / "runner.py").is_file()
    runner.main([str(bundle)])
    out = tmp_path / "remote.csv"
    meta = profiler.import_results(bundle, out)
    assert meta.calibration is not None and meta.probe_ms > 0
    table = LatencyTable.load(out, tiny_space.fingerprint())
    assert LatencyPredictor(table).predict(tiny_space.base) > 0
