"""Pricing a pruned model: `ednas latency --measure-missing` times the units the table lacks on
this machine, on the table's scale, and keeps them in a sidecar for the next call."""

from __future__ import annotations

import dataclasses

from ednas.cli import main
from ednas.latency import LatencyPredictor, LatencyTable, profiler
from ednas.latency.extra import extra_paths, missing_units


def test_measure_missing_prices_a_pruned_arch(tiny_space, tmp_path, capsys, fast) -> None:
    table_path = tmp_path / "tiny.csv"
    profiler.profile(tiny_space, table_path, calib_models=3, progress=False, timing=fast)
    base = tiny_space.base
    pruned = base.replace(backbone=dataclasses.replace(base.backbone, widths=(1.0, 0.75, 0.75, 1.0)))
    arch_yml = tmp_path / "pruned.arch.yml"
    pruned.save(arch_yml)
    missing = missing_units(LatencyTable.load(table_path), [pruned])
    assert missing

    argv = ["latency", str(arch_yml), "--table", str(table_path)]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "--measure-missing" in err and f"{len(missing)} units" in err
    assert not extra_paths(table_path)[0].exists()

    assert main(argv + ["--measure-missing"]) == 0
    out = capsys.readouterr().out
    assert f"measured {len(missing)} units" in out and "ms predicted" in out
    rows, meta = extra_paths(table_path)
    assert rows.is_file() and meta.is_file()
    assert not list(tmp_path.glob(".*tmp*"))  # written atomically, nothing left behind

    table = LatencyTable.load(table_path)  # the sidecar is part of the table now
    assert not missing_units(table, [pruned])
    assert LatencyPredictor(table).predict(pruned) > 0
    assert main(argv) == 0  # no flag needed any more
    assert "measured" not in capsys.readouterr().out


def test_sidecar_of_another_build_is_ignored(tiny_space, tmp_path, caplog) -> None:
    from test_target import write_table

    from ednas.config import dump_yaml, to_dict
    from ednas.latency.extra import ExtraMeta
    from ednas.latency.runner import RowWriter

    path = write_table(tiny_space, tmp_path / "t.csv")
    rows, meta = extra_paths(path)
    with RowWriter(rows) as w:
        w.write({"key": "block extra", "kind": "block", "median_ms": 1.0, "p10_ms": 1.0, "p90_ms": 1.0,
                 "probe_ms": 2.0, "ratio": 0.5, "pairs": 15})
    dump_yaml(to_dict(ExtraMeta("2020-01-01T00:00:00", 2.0, "Test CPU 1000")), meta)
    assert "block extra" not in LatencyTable.load(path).ms
    assert "measured for another build" in caplog.text


def test_missing_units_are_not_measured_for_a_table_of_another_cpu(tiny_space, tmp_path) -> None:
    import pytest
    from test_target import write_table

    from ednas.latency import LatencyTableError
    from ednas.latency.extra import measure_missing

    table = LatencyTable.load(write_table(tiny_space, tmp_path / "t.csv", cpu="Other CPU 2000"))
    pruned = tiny_space.base.replace(backbone=dataclasses.replace(tiny_space.base.backbone, widths=(0.5,) * 4))
    with pytest.raises(LatencyTableError, match="on CPU 'Other CPU 2000'"):
        measure_missing(table, [pruned])
    assert not extra_paths(table.path)[0].exists()
