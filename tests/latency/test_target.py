"""One latency target: a table measured for another CPU, space, thread count or precision is
refused in one line that says which `ednas profile` to run; `ednas latency` picks its default
table by --precision and --threads."""

from __future__ import annotations

import dataclasses
import logging

import pytest

from ednas.cli import main
from ednas.latency import LatencyTable, LatencyTableError
from ednas.latency.profiler import calibration_archs, new_meta
from ednas.latency.runner import RowWriter
from ednas.latency.table import BUILDER_VERSION, Calibration, meta_path, write_meta
from ednas.latency.target import LatencyTarget, check_table
from ednas.latency.units import space_units

CPU, FLAGS = "Test CPU 1000", ["avx2", "avx512_vnni"]


def write_table(space, path, precision="fp32", threads=2, cpu=CPU, flags=FLAGS, builder=BUILDER_VERSION):
    """A complete table of `space` (made-up ratios) measured on `cpu` with `flags` (None: not recorded)."""
    units = list(space_units(space))
    meta = new_meta(space, "cpu", precision, threads, False, len(units), calibration_archs(space, 2))
    machine = {"cpu": cpu, "threads": threads, **({"cpu_flags": flags} if flags is not None else {})}
    meta = dataclasses.replace(meta, probe_ms=2.0, calibration=Calibration(), machine=machine, builder=builder)
    with RowWriter(path) as w:
        for key in units:
            w.write({"key": key, "kind": "unit", "median_ms": 0.0, "p10_ms": 0.0, "p90_ms": 0.0,
                     "probe_ms": 2.0, "ratio": 0.1, "pairs": 1})
    write_meta(meta_path(path), meta)
    return path


TARGET = LatencyTarget("cpu", "fp32", 2, False, CPU, frozenset(FLAGS))


def refusal(path, target, fingerprint=None) -> str:
    with pytest.raises(LatencyTableError) as exc:
        LatencyTable.load(path, fingerprint, target=target)
    message = str(exc.value)
    assert "\n" not in message and "`ednas profile " in message
    return message


def test_the_table_of_its_own_target_loads(tiny_space, tmp_path) -> None:
    path = write_table(tiny_space, tmp_path / "t.csv")
    assert LatencyTable.load(path, tiny_space.fingerprint(), target=TARGET).units_measured > 0


@pytest.mark.parametrize("change, said", [
    ({"cpu_flags": frozenset({"avx2"})}, "other INT8 instructions (avx512_vnni differ"),
    ({"cpu": "Other CPU 2000"}, "on CPU 'Test CPU 1000', not 'Other CPU 2000'"),
    ({"threads": 4}, "with 2 threads, not 4"),
    ({"precision": "int8"}, "at fp32, not int8"),
])
def test_another_target_is_refused_in_one_line(tiny_space, tmp_path, change, said) -> None:
    path = write_table(tiny_space, tmp_path / "t.csv")
    target = dataclasses.replace(TARGET, **change)
    message = refusal(path, target)
    assert said in message
    assert f"--precision {target.precision} --threads {target.threads}" in message


def test_another_space_is_refused_in_one_line(tiny_space, tmp_path) -> None:
    path = write_table(tiny_space, tmp_path / "t.csv")
    assert "measured for search space 'tiny'" in refusal(path, TARGET, "0123456789abcdef")


def test_old_int8_builder_is_refused_and_unrecorded_flags_warn(tiny_space, tmp_path, caplog) -> None:
    old = write_table(tiny_space, tmp_path / "old8.csv", precision="int8", builder=1)
    assert "not the model `ednas quantize` ships" in refusal(old, dataclasses.replace(TARGET, precision="int8"))
    path = write_table(tiny_space, tmp_path / "noflags.csv", flags=None)
    with caplog.at_level(logging.WARNING):
        check_table(LatencyTable.load(path), TARGET)
    assert "recorded no CPU flags" in caplog.text


def test_latency_command_picks_the_default_table_by_precision_and_threads(tmp_path, monkeypatch, capsys) -> None:
    monkeypatch.setattr("ednas.latency.table.TABLES_DIR", tmp_path)
    assert main(["latency", "enhanced_nanodet_s", "--precision", "int8", "--threads", "4"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "enhanced_nanodet_cpu_int8_4t.csv" in err
    assert "ednas profile --device cpu --precision int8 --threads 4" in err


def test_latency_command_refuses_a_table_of_other_threads(tiny_space, tmp_path, capsys) -> None:
    path = write_table(tiny_space, tmp_path / "t.csv", cpu=None)
    assert main(["latency", "enhanced_nanodet_s", "--table", str(path), "--threads", "1"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "with 2 threads, not 1" in err
