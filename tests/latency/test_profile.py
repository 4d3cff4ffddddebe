"""Building tables for real (tiny space, very few repeats): resume, bundle -> import."""

from __future__ import annotations

import subprocess
import sys

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
    # the bundle's runner works on a machine without ednas: it imports the copy beside it
    standalone = "import sys; sys.modules['ednas'] = None; sys.path.insert(0, sys.argv[1]); import runner"
    subprocess.run([sys.executable, "-c", standalone, str(bundle)], check=True, cwd=tmp_path)
    runner.main([str(bundle)])
    out = tmp_path / "remote.csv"
    meta = profiler.import_results(bundle, out)
    assert meta.calibration is not None and meta.probe_ms > 0
    table = LatencyTable.load(out, tiny_space.fingerprint())
    assert LatencyPredictor(table).predict(tiny_space.base) > 0


def test_validate_two_passes_reports_the_noise_floor(tiny_space, tmp_path, monkeypatch, fast) -> None:
    from ednas.latency.validate import plot_report, validate

    table_path = tmp_path / "t.csv"
    profiler.profile(tiny_space, table_path, calib_models=2, progress=False, timing=fast)
    monkeypatch.setattr(runner, "MODEL_TIMING", fast)
    out = tmp_path / "val"
    report = validate(LatencyTable.load(table_path), tiny_space, 3, out, progress=False, passes=2)
    assert len(report.samples) == 3 and report.repeat is not None
    assert all(len(s.passes_ms) == 2 and s.passes_ms[0] > 0 for s in report.samples)
    assert all(min(s.passes_ms) <= s.compensated_ms <= max(s.passes_ms) for s in report.samples)
    rows = (out / "validation.csv").read_text().splitlines()
    assert len(rows) == 4 and rows[0].endswith("passes_compensated_ms")
    assert sorted(p.name for p in out.glob("arch_*.onnx")) == ["arch_000.onnx", "arch_001.onnx", "arch_002.onnx"]
    assert plot_report(report, out / "scatter.png").stat().st_size > 0
    assert validate(LatencyTable.load(table_path), tiny_space, 2, tmp_path / "one", progress=False).repeat is None


def test_validate_never_checks_on_a_calibration_model(tiny_space, tmp_path, monkeypatch, fast) -> None:
    from ednas.latency.profiler import arch_hash
    from ednas.latency.validate import validate

    table_path = tmp_path / "t.csv"
    profiler.profile(tiny_space, table_path, calib_models=2, progress=False, timing=fast)
    table = LatencyTable.load(table_path)
    fitted = {key.rsplit(" ", 1)[-1] for key in table.meta.calib_archs}  # the hash ends each row key
    monkeypatch.setattr(runner, "MODEL_TIMING", fast)
    report = validate(table, tiny_space, 4, tmp_path / "val", progress=False)
    assert not {arch_hash(s.arch) for s in report.samples} & fitted


def test_a_row_spoiled_by_contention_is_timed_again(tiny_space, tmp_path, monkeypatch, fast) -> None:
    """A timing whose median is far above its fast end is retried; the steadiest one is kept."""
    timings = iter([{"median_ms": 5.0, "p10_ms": 1.0, "ratio": 2.5}, {"median_ms": 1.1, "p10_ms": 1.0, "ratio": 0.5}])
    steady = {"median_ms": 1.0, "p10_ms": 1.0, "ratio": 0.4}
    base = {"p90_ms": 1.0, "probe_ms": 2.0, "pairs": 2, "ratio_p10": 0.0, "ratio_p90": 0.0}
    monkeypatch.setattr(runner, "time_pair", lambda *a, **k: {**base, **next(timings, steady)})
    out = tmp_path / "t.csv"
    profiler.profile(tiny_space, out, calib_models=2, progress=False, stop_after=2, timing=fast)
    first, second = runner.read_rows(out)
    assert first["ratio"] == 0.5 and second["ratio"] == 0.4
