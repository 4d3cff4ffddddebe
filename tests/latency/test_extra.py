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
