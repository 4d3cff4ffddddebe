"""Reading a measured latency bundle (`ednas profile --import`) as data only.

A bundle comes back from another machine: its manifest.json, machine.json and results.csv are
checked in full before anything is written. Names in it are only ever table keys, never paths;
still, a manifest item whose file leaves the bundle (`../../x`, an absolute path), a result
that the manifest does not list, a key with control characters, a number that is not a
positive finite value or a malformed row refuses the whole bundle in one line. The bundle
itself is never written to (a cut row is reported, not repaired in place).
"""

from __future__ import annotations

import csv
import json
import math
import re
from dataclasses import dataclass, replace
from pathlib import Path, PurePosixPath
from typing import Any

from ednas.arch import ArchSpec
from ednas.config import from_dict
from ednas.errors import EdnasError, InputError
from ednas.latency.runner import COLUMNS
from ednas.latency.table import CALIB_KIND, TableMeta

FILES = ("manifest.json", "machine.json", "results.csv")
_KIND = re.compile(r"^[a-z_]{1,32}$")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_POSITIVE = ("median_ms", "p10_ms", "p90_ms", "probe_ms", "ratio")


class BundleError(InputError):
    """A measured bundle is incomplete, malformed, or names something outside itself."""


@dataclass(frozen=True)
class MeasuredBundle:
    meta: TableMeta  # the manifest's, with the measuring machine and its thread count
    rows: list[dict[str, Any]]  # validated results rows (COLUMNS, numbers as floats)
    unit_keys: set[str]  # the keys of the space's units (calibration models excluded)


def read_bundle(results: Path) -> MeasuredBundle:
    """Check and read a measured bundle: its folder, or the results.csv inside it."""
    results = Path(results)
    bundle = results.parent if results.is_file() else results
    files = {n: bundle / n for n in FILES}
    missing = [p for p in files.values() if not p.is_file()]
    if missing:
        raise BundleError(f"{missing[0]} not found; run `python {bundle}/runner.py {bundle}` on the target first")
    manifest = _json(files["manifest.json"], dict)
    machine = _json(files["machine.json"], dict)
    items = _items(files["manifest.json"], bundle, manifest.get("items"))
    meta = _meta(files["manifest.json"], manifest.get("meta"), items)
    threads = machine.get("threads")
    if isinstance(threads, bool) or not isinstance(threads, int) or threads < 1:
        raise BundleError(f"{files['machine.json']}: 'threads' must be a positive integer, got {threads!r}; "
                          "measure the bundle again with its runner.py")
    rows = _rows(files["results.csv"], items)
    meta = replace(meta, machine=machine, threads=threads)
    return MeasuredBundle(meta, rows, {k for k, kind in items.items() if kind != CALIB_KIND})


def _json(path: Path, kind: type) -> Any:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except UnicodeDecodeError:
        raise BundleError(f"{path}: not a text file; copy the bundle back from the target again") from None
    except json.JSONDecodeError as exc:
        raise BundleError(f"{path}: not valid JSON ({exc.msg} at line {exc.lineno}); "
                          "copy the bundle back from the target again") from None
    if not isinstance(data, kind):
        raise BundleError(f"{path}: expected a JSON {kind.__name__}, got {type(data).__name__}")
    return data


def _items(path: Path, bundle: Path, items: Any) -> dict[str, str]:
    """{key: kind} of the manifest's items, each checked (its file stays inside the bundle)."""
    if not isinstance(items, list) or not items:
        raise BundleError(f"{path}: 'items' must be a non-empty list; re-create the bundle with `ednas profile --bundle`")
    root = bundle.resolve()
    out: dict[str, str] = {}
    for i, item in enumerate(items):
        where = f"{path}: item {i}"
        if not isinstance(item, dict) or not all(isinstance(item.get(f), str) for f in ("key", "kind", "file")):
            raise BundleError(f"{where}: expected key, kind and file strings; re-create the bundle")
        key, kind, file = item["key"], item["kind"], item["file"]
        _check_key(where, key)
        if not _KIND.match(kind):
            raise BundleError(f"{where}: kind {kind!r} is not a unit kind; re-create the bundle")
        rel = PurePosixPath(file)
        if (not file or "\\" in file or _CONTROL.search(file) or rel.is_absolute() or ".." in rel.parts
                or not (root / rel).resolve().is_relative_to(root)):
            raise BundleError(f"{where}: file {file!r} is outside the bundle; a bundle names only its own "
                              "files (re-create it with `ednas profile --bundle`)")
        if key in out:
            raise BundleError(f"{where}: key {key!r} appears twice; re-create the bundle")
        out[key] = kind
    return out


def _meta(path: Path, data: Any, items: dict[str, str]) -> TableMeta:
    if not isinstance(data, dict):
        raise BundleError(f"{path}: 'meta' must be a mapping; re-create the bundle with `ednas profile --bundle`")
    try:
        meta = from_dict(TableMeta, data, f"{path}: meta")
        calib = {k for k, kind in items.items() if kind == CALIB_KIND}
        if set(meta.calib_archs) != calib:
            raise BundleError(f"{path}: meta.calib_archs and the manifest's {CALIB_KIND} items differ; "
                              "re-create the bundle")
        for key, arch in meta.calib_archs.items():
            ArchSpec.from_dict(arch, f"{path}: meta.calib_archs[{key!r}]")
    except BundleError:
        raise
    except EdnasError as exc:
        raise BundleError(str(exc)) from None
    return meta


def _rows(path: Path, items: dict[str, str]) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    seen: set[str] = set()
    try:
        with path.open(newline="", encoding="utf-8") as f:
            reader = csv.DictReader(f, restkey="\0extra")
            absent = [c for c in COLUMNS if c not in (reader.fieldnames or [])]
            if absent:
                raise BundleError(f"{path}: no {absent[0]!r} column (columns: {', '.join(COLUMNS)}); "
                                  "measure the bundle again with its runner.py")
            for row in reader:
                rows.append(_row(path, reader.line_num, row, items, seen))
    except (csv.Error, UnicodeDecodeError) as exc:
        raise BundleError(f"{path}: not a readable CSV ({type(exc).__name__}); copy the results back again") from None
    if not rows:
        raise BundleError(f"{path}: no measurements; run `python runner.py` on the target first")
    return rows


def _row(path: Path, line: int, row: dict[str, Any], items: dict[str, str], seen: set[str]) -> dict[str, Any]:
    where = f"{path}: line {line}"
    if "\0extra" in row or any(row.get(c) is None for c in COLUMNS):
        raise BundleError(f"{where}: expected {len(COLUMNS)} fields; a cut row? run the bundle's runner.py "
                          "again, it completes the file")
    key, kind = row["key"], row["kind"]
    _check_key(where, key)
    if key not in items:
        raise BundleError(f"{where}: result {key!r} is not an item of the bundle's manifest; "
                          "these results belong to another bundle")
    if kind != items[key]:
        raise BundleError(f"{where}: result {key!r} has kind {kind!r}, the manifest says {items[key]!r}")
    if key in seen:
        raise BundleError(f"{where}: result {key!r} appears twice; measure the bundle again")
    seen.add(key)
    out: dict[str, Any] = {"key": key, "kind": kind}
    for column in COLUMNS[2:]:
        try:
            value = float(row[column])
        except ValueError:
            value = math.nan
        if not math.isfinite(value) or value <= 0 or (column == "pairs" and value != int(value)):
            wanted = "a whole number of at least 1" if column == "pairs" else "a positive number"
            raise BundleError(f"{where}: {column} is {row[column]!r}, expected {wanted}")
        out[column] = value
    return out


def _check_key(where: str, key: str) -> None:
    if not key or len(key) > 1000 or _CONTROL.search(key):
        raise BundleError(f"{where}: key {key[:60]!r} is empty, too long or has control characters")
