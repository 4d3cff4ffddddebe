"""`ednas profile --import` reads a measured bundle as data: names in it never become paths,
malformed bundles are refused in one line, and nothing is written but the chosen table."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest

from ednas.cli import main
from ednas.config import to_dict
from ednas.latency import LatencyPredictor, LatencyTable, profiler, runner
from ednas.latency.table import CALIB_KIND
from ednas.latency.units import space_units


def _fake_bundle(space, folder: Path) -> Path:
    """A bundle as the target returns it (manifest, machine.json, results.csv), with made-up
    timings instead of ONNX files and measurements: the import reads only these three."""
    units = space_units(space)
    calib = profiler.calibration_archs(space, 4)
    items = [{"key": k, "kind": u.kind, "file": f"units/{i:05d}.onnx"} for i, (k, u) in enumerate(units.items())]
    items += [{"key": k, "kind": CALIB_KIND, "file": f"units/{len(units) + i:05d}.onnx"}
              for i, k in enumerate(calib)]
    meta = profiler.new_meta(space, "remote", "fp32", 2, False, len(units), calib)
    folder.mkdir(parents=True)
    manifest = {"threads": 2, "spin": False, "probe": "probe.onnx", "timing": None, "items": items,
                "meta": to_dict(meta)}
    (folder / "manifest.json").write_text(json.dumps(manifest))
    (folder / "machine.json").write_text(json.dumps(runner.machine_info(2)))
    with (folder / "results.csv").open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=runner.COLUMNS)
        writer.writeheader()
        for i, item in enumerate(items):
            ratio = (3.0 + i % 3) if item["kind"] == CALIB_KIND else 0.1 + 0.01 * i
            writer.writerow({"key": item["key"], "kind": item["kind"], "median_ms": 2 * ratio,
                             "p10_ms": 1.9 * ratio, "p90_ms": 2.1 * ratio, "probe_ms": 2.0,
                             "ratio": ratio, "pairs": 15})
    return folder


def _tree(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def _import(capsys, bundle: Path, out: Path) -> tuple[int, str]:
    rc = main(["profile", "--import", str(bundle), "--out", str(out)])
    return rc, capsys.readouterr().err


def test_a_well_formed_bundle_imports(tiny_space, tmp_path, capsys) -> None:
    bundle = _fake_bundle(tiny_space, tmp_path / "bundle")
    before = _tree(bundle)
    out = tmp_path / "tables" / "remote.csv"
    rc, err = _import(capsys, bundle / "results.csv", out)
    assert rc == 0, err
    table = LatencyTable.load(out, tiny_space.fingerprint())
    assert table.units_measured == len(space_units(tiny_space)) and table.meta.calibration is not None
    assert LatencyPredictor(table).predict(tiny_space.base) > 0
    assert _tree(bundle) == before  # the bundle is read, never written
    written = sorted(p.name for p in tmp_path.rglob("*") if p.is_file() and "bundle" not in p.parts)
    assert written == ["remote.csv", "remote.meta.yml"]


def _edit_results(bundle: Path, row: int, **fields: str) -> None:
    path = bundle / "results.csv"
    rows = list(csv.DictReader(path.open(newline="")))
    rows[row].update(fields)
    with path.open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=runner.COLUMNS)
        writer.writeheader()
        writer.writerows(rows)


def _edit_manifest(bundle: Path, edit) -> None:
    path = bundle / "manifest.json"
    manifest = json.loads(path.read_text())
    edit(manifest)
    path.write_text(json.dumps(manifest))


TAMPERS = {
    "result named ../../x": (lambda b: _edit_results(b, 0, key="../../x"), "not an item of the bundle's manifest"),
    "result named /abs/x": (lambda b: _edit_results(b, 1, key="/tmp/ednas-abs-x"), "not an item"),
    "manifest file ../../x": (lambda b: _edit_manifest(b, lambda m: m["items"][0].update(file="../../x")),
                              "outside the bundle"),
    "manifest file units/../../x": (lambda b: _edit_manifest(b, lambda m: m["items"][0].update(file="units/../../x")),
                                    "outside the bundle"),
    "manifest file absolute": (lambda b: _edit_manifest(b, lambda m: m["items"][0].update(file="/etc/passwd")),
                               "outside the bundle"),
    "key with a newline": (lambda b: _edit_results(b, 0, key="stem\n../../x"), "control characters"),
    "negative ratio": (lambda b: _edit_results(b, 2, ratio="-1"), "expected a positive number"),
    "nan timing": (lambda b: _edit_results(b, 2, median_ms="nan"), "expected a positive number"),
    "text for a number": (lambda b: _edit_results(b, 2, probe_ms="fast"), "expected a positive number"),
    "fractional pairs": (lambda b: _edit_results(b, 2, pairs="2.5"), "whole number"),
    "wrong kind": (lambda b: _edit_results(b, 0, kind="model"), "the manifest says"),
    "duplicate result": (lambda b: (b / "results.csv").write_text(
        (b / "results.csv").read_text() + (b / "results.csv").read_text().splitlines()[1] + "\n"), "appears twice"),
    "cut row": (lambda b: (b / "results.csv").write_text((b / "results.csv").read_text() + "stem x,stem,1.0\n"),
                "expected 8 fields"),
    "missing column": (lambda b: (b / "results.csv").write_text(
        "key,kind\n" + "\n".join(r.split(",", 2)[0] for r in (b / "results.csv").read_text().splitlines()[1:])),
        "no 'median_ms' column"),
    "no results": (lambda b: (b / "results.csv").write_text(",".join(runner.COLUMNS) + "\n"), "no measurements"),
    "broken manifest json": (lambda b: (b / "manifest.json").write_text("{\"items\": ["), "not valid JSON"),
    "machine without threads": (lambda b: (b / "machine.json").write_text("{}"), "'threads' must be a positive"),
    "unknown meta key": (lambda b: _edit_manifest(b, lambda m: m["meta"].update(path="../../x")), "unknown key 'path'"),
    "calibration arch missing": (lambda b: _edit_manifest(b, lambda m: m["meta"]["calib_archs"].popitem()),
                                 "calib_archs and the manifest"),
}


@pytest.mark.parametrize("name", list(TAMPERS))
def test_a_malformed_bundle_is_refused_and_writes_nothing(name, tiny_space, tmp_path, capsys) -> None:
    tamper, expect = TAMPERS[name]
    work = tmp_path / "a" / "b"  # ../../x from the bundle or the table lands inside tmp_path
    bundle = _fake_bundle(tiny_space, work / "bundle")
    tamper(bundle)
    before = _tree(tmp_path)
    rc, err = _import(capsys, bundle, work / "tables" / "remote.csv")
    assert rc == 2, err
    assert err.count("\n") == 1 and "Traceback" not in err and expect in err, err
    assert _tree(tmp_path) == before  # no table, no sidecar, no repaired results, nothing at ../../x
    assert not (work / "tables").exists()
