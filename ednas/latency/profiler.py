"""Building latency tables: measure every unit of a search space (locally, or through a bundle
measured elsewhere), then a few whole models to calibrate what the sum of units misses.

Local runs are resumable: each measured row is appended and flushed at once, and a rerun
measures only the keys the table lacks.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import random
import shutil
import statistics
from pathlib import Path
from typing import Any, Callable, Iterable

import numpy as np

from ednas import __version__, onnx_runtime
from ednas.arch import ArchSpec
from ednas.config import to_dict
from ednas.errors import InputError
from ednas.io import scratch_dir
from ednas.latency import runner
from ednas.latency.export import PRECISIONS, Precision, export_arch, export_unit
from ednas.latency.table import (BUILDER_VERSION, CALIB_KIND, Calibration, LatencyTable, LatencyTableError,
                                 TableMeta, meta_path, read_meta, write_meta)
from ednas.latency.units import Unit, space_units
from ednas.arch.space import SearchSpace

log = logging.getLogger(__name__)

DEVICES = ("cpu",)
PROBE = "enhanced_nanodet_s@128 fp32"  # fixed across spaces and precisions: a machine-speed yardstick


def check_device(device: str) -> None:
    if device not in DEVICES:
        raise InputError(
            f"--device {device!r}: only {', '.join(DEVICES)} (ONNX Runtime CPU) can be profiled here; "
            "for another target run `ednas profile --bundle DIR` and measure DIR on it")


def check_precision(precision: str) -> None:
    if precision not in PRECISIONS:
        raise InputError(f"--precision {precision!r}: use one of {', '.join(PRECISIONS)}")


def probe_arch() -> ArchSpec:
    from ednas.arch.zoo import get_arch

    return get_arch("enhanced_nanodet_s").replace(input_size=128)


def export_probe(path: Path) -> Path:
    return export_arch(probe_arch(), path, "fp32")


CALIB_MODELS = 48  # whole models the calibration is fitted on (~3 s each to measure)


def calibration_archs(space: SearchSpace, n: int, seed: int = 0) -> dict[str, ArchSpec]:
    """`n` whole models spanning the space: the base, the smallest and largest choices, and
    random samples (fixed seed, so a resumed run picks the same ones)."""
    def extreme(pick: Callable[[list], Any]) -> ArchSpec:
        return space.decode(lambda _name, choices: pick(sorted(choices)))

    archs = {"base": space.base, "min": extreme(lambda c: c[0]), "max": extreme(lambda c: c[-1])}
    rng = random.Random(seed)
    i = 0
    while len(archs) < n:
        archs[f"rand{i}"] = space.sample(rng)
        i += 1
    return {f"{CALIB_KIND} {name} {arch_hash(arch)}": arch for name, arch in list(archs.items())[:n]}


def arch_hash(arch: ArchSpec) -> str:
    """Short content hash: a calibration row is never reused for a different architecture."""
    return arch.hash(8)


def new_meta(space: SearchSpace, device: str, precision: str, threads: int, spin: bool,
             n_units: int, calib: dict[str, ArchSpec]) -> TableMeta:
    return TableMeta(
        device=device, precision=precision, threads=threads, spin=spin, space_name=space.name,
        space_fingerprint=space.fingerprint(), units_expected=n_units, calib_expected=len(calib),
        probe=PROBE, ednas_version=__version__, builder=BUILDER_VERSION, int8_weights=_int8_weights(precision),
        calib_archs={k: to_dict(a) for k, a in calib.items()},
    )


def _int8_weights(precision: str) -> str:
    if precision != "int8":
        return ""
    from ednas.latency.export import int8_weights

    choice = int8_weights()
    return f"{'7' if choice.reduce_range else '8'}-bit ({choice.target})"


def _check_resume(path: Path, meta: TableMeta, machine: dict[str, Any]) -> None:
    """An existing table may only be resumed with the same space, settings, builder and CPU."""
    mpath = meta_path(path)
    if not mpath.exists():
        return
    old = read_meta(mpath)
    olds = {**{n: getattr(old, n) for n in _RESUME_FIELDS}, "cpu": old.machine.get("cpu"),
            "cpu_flags": old.machine.get("cpu_flags", machine["cpu_flags"])}
    news = {**{n: getattr(meta, n) for n in _RESUME_FIELDS}, "cpu": machine["cpu"], "cpu_flags": machine["cpu_flags"]}
    for name, value in olds.items():
        if value != news[name]:
            raise LatencyTableError(
                f"{path} was built with {name}={value!r}, not {news[name]!r}; "
                "give another --out or delete it to start over")


_RESUME_FIELDS = ("space_fingerprint", "device", "precision", "threads", "spin", "builder")


Item = tuple[str, str, Callable[[Path], Path]]  # (key, kind, write its ONNX file to a path)


def unit_items(units: dict[str, Unit], precision: Precision) -> list[Item]:
    return [(k, u.kind, lambda p, u=u: export_unit(u, p, precision)) for k, u in units.items()]


def calib_items(calib: dict[str, ArchSpec], precision: Precision) -> list[Item]:
    return [(k, CALIB_KIND, lambda p, a=a: export_arch(a, p, precision)) for k, a in calib.items()]


# A row whose median is over NOISY x its fast end (p10), or whose probe median is over NOISY x
# the probe's usual one, was timed while other work held the CPU for most of its pairs (a
# 2-thread session stalls whenever one of its threads is descheduled), and its ratio to the
# probe can be off several-fold; it is timed up to RETRIES more times and the steadiest kept.
NOISY = 1.5
RETRIES = 2


def spread(row: dict[str, Any], probe_ms: float | None = None) -> float:
    """How far contention pushed a row: its median over its p10, or its probe's median over
    the usual `probe_ms`, whichever is larger (1.0: undisturbed)."""
    return max(row["median_ms"] / max(row["p10_ms"], 1e-9), row["probe_ms"] / probe_ms if probe_ms else 0.0)


# -- local profiling ---------------------------------------------------------------------------
def profile(space: SearchSpace, out: Path, device: str = "cpu", precision: Precision = "fp32",
            threads: int = 2, spin: bool = False, calib_models: int = CALIB_MODELS, progress: bool = True,
            stop_after: int | None = None, timing: dict[str, Any] | None = None,
            remeasure_noisy: bool = False) -> TableMeta:
    """Measure what `out` lacks, then calibrate. `stop_after` measures at most that many
    items and returns (an interrupted run, for tests); `timing` overrides runner.time_pair's
    repeat settings; `remeasure_noisy` times again the rows contention spoiled (NOISY).
    Returns the table's metadata."""
    check_device(device)
    check_precision(precision)
    units = space_units(space)
    calib = calibration_archs(space, calib_models)
    meta = new_meta(space, device, precision, threads, spin, len(units), calib)
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    machine = runner.machine_info(threads)
    _check_resume(out, meta, machine)
    done = {r["key"] for r in runner.read_rows(out)}
    todo = [item for item in unit_items(units, precision) + calib_items(calib, precision) if item[0] not in done]
    if stop_after is not None:
        todo = todo[:stop_after]
    log.info("%s: %d of %d units and %d of %d models to measure", out, sum(t[1] != CALIB_KIND for t in todo),
             len(units), sum(t[1] == CALIB_KIND for t in todo), len(calib))
    write_meta(meta_path(out), dataclasses.replace(meta, machine=machine))
    measure(todo, out, threads, spin, progress, timing)
    if remeasure_noisy:
        _remeasure(out, unit_items(units, precision) + calib_items(calib, precision), threads, spin, progress, timing)
    return finalize(out, dataclasses.replace(meta, machine=machine), set(units))


def _remeasure(out: Path, items: list[Item], threads: int, spin: bool, progress: bool,
               timing: dict[str, Any] | None) -> None:
    """Time again the rows of `out` that are noisy; keep each one's steadier timing."""
    rows = {r["key"]: r for r in runner.read_rows(out)}
    usual = statistics.median(r["probe_ms"] for r in rows.values()) if rows else None
    todo = [item for item in items if item[0] in rows and spread(rows[item[0]], usual) > NOISY]
    log.info("%s: timing %d noisy rows again", out, len(todo))
    with scratch_dir("remeasure") as work:
        again = work / "again.csv"
        measure(todo, again, threads, spin, progress, timing)
        for row in runner.read_rows(again):
            if spread(row, usual) < spread(rows[row["key"]], usual):
                rows[row["key"]] = row
    _rewrite(out, rows.values())


def measure(todo: list[Item], out: Path, threads: int, spin: bool,
            progress: bool = True, timing: dict[str, Any] | None = None) -> None:
    """Export and time each item interleaved with the probe, appending a row to `out` per item
    (flushed at once, so a killed run keeps what it measured)."""
    if not todo:
        return
    with scratch_dir("profile") as work:  # removed on success, error, and after a kill
        probe = runner.Timed(export_probe(work / "probe.onnx"), threads, spin)
        _measure(todo, work, probe, threads, spin, out, progress, timing or {})


def _measure(todo: list[Item], work: Path, probe: runner.Timed,
             threads: int, spin: bool, out: Path, progress: bool, timing: dict[str, Any]) -> None:
    from tqdm import tqdm

    probes: list[float] = []  # probe medians so far: the usual one is their median
    with runner.RowWriter(out) as writer:
        for key, kind, make in tqdm(todo, desc="profiling", unit="unit", disable=not progress, smoothing=0.05):
            path = make(work / "item.onnx")
            repeats = timing or (runner.MODEL_TIMING if kind == CALIB_KIND else {})
            timed = runner.Timed(path, threads, spin)
            usual = statistics.median(probes) if len(probes) >= 5 else None
            stats = runner.time_pair(timed, probe, **repeats)
            for _ in range(RETRIES):
                if spread(stats, usual) <= NOISY:
                    break
                again = runner.time_pair(timed, probe, **repeats)
                stats = again if spread(again, usual) < spread(stats, usual) else stats
            probes.append(stats["probe_ms"])
            writer.write({"key": key, "kind": kind, **stats})
            path.unlink()


# -- calibration --------------------------------------------------------------------------------
def finalize(out: Path, meta: TableMeta, unit_keys: set[str]) -> TableMeta:
    """Set the table's probe scale and, once every unit and model is measured, drop rows the
    space no longer has (e.g. after a builder change) and fit the calibration."""
    rows = {r["key"]: r for r in runner.read_rows(out)}
    if not rows:
        raise LatencyTableError(f"{out}: no measurements to build a table from")
    meta = dataclasses.replace(meta, probe_ms=statistics.median(r["probe_ms"] for r in rows.values()),
                               calibration=None)
    wanted = unit_keys | set(meta.calib_archs)
    if wanted <= rows.keys():
        stale = rows.keys() - wanted
        if stale:
            log.info("%s: dropping %d rows the space no longer uses", out, len(stale))
            rows = {k: r for k, r in rows.items() if k in wanted}
            _rewrite(out, rows.values())
        meta = dataclasses.replace(meta, calibration=fit_calibration(out, meta, rows))
        log.info("calibration: %s", meta.calibration)
    write_meta(meta_path(out), meta)
    return meta


def _rewrite(out: Path, rows: Iterable[dict[str, Any]]) -> None:
    tmp = out.with_suffix(".tmp")
    tmp.unlink(missing_ok=True)
    with runner.RowWriter(tmp) as writer:
        for row in rows:
            writer.write(row)
    tmp.replace(out)


def fit_calibration(out: Path, meta: TableMeta, rows: dict[str, dict[str, Any]]) -> Calibration:
    """Least squares of the measured whole models on (1, sum of units, boundary Melements)."""
    from ednas.latency.predictor import LatencyPredictor

    table = LatencyTable(out, dataclasses.replace(meta, calibration=Calibration()), list(rows.values()))
    raw = LatencyPredictor(table)
    feats, measured = [], []
    for key, arch_dict in meta.calib_archs.items():
        ms, elems = raw.units(ArchSpec.from_dict(arch_dict))
        feats.append((1.0, ms, elems))
        measured.append(rows[key]["ratio"] * meta.probe_ms)
    x, y = np.array(feats), np.array(measured)
    coef = _robust_lstsq(x, y)
    pred = x @ coef
    mape = float(np.mean(np.abs(pred - y) / y) * 100)
    return Calibration(overhead_ms=float(coef[0]), scale=float(coef[1]), ms_per_melem=float(coef[2]),
                       models=len(y), mape=mape)


def _robust_lstsq(x: np.ndarray, y: np.ndarray, scale_range: tuple[float, float] = (0.5, 1.5)) -> np.ndarray:
    """Fit (overhead, scale, per-Melement); with too few models, or a scale outside
    `scale_range` (noisy measurements), fall back to fewer terms, down to a plain scale of
    the unit sum (which, unlike a fitted overhead, can never predict a negative latency)."""
    n = len(y)
    for cols in ([0, 1, 2], [0, 1]):
        if n >= len(cols) + 2:
            coef = np.zeros(3)
            coef[cols] = np.linalg.lstsq(x[:, cols], y, rcond=None)[0]
            if scale_range[0] <= coef[1] <= scale_range[1]:
                return coef
            log.warning("calibration with terms %s gives scale %.2f; measurements look noisy, "
                        "using fewer terms", cols, coef[1])
    units = x[:, 1]
    return np.array([0.0, float(units @ y / max(float(units @ units), 1e-12)), 0.0])


# -- remote targets ----------------------------------------------------------------------------
def write_bundle(space: SearchSpace, bundle: Path, precision: Precision = "fp32", threads: int = 2,
                 spin: bool = False, calib_models: int = CALIB_MODELS, progress: bool = True,
                 timing: dict[str, Any] | None = None) -> int:
    """Unit and calibration ONNX files, the probe, a manifest and the standalone runner
    (`timing` overrides its repeat settings). Returns the number of files to measure."""
    from tqdm import tqdm

    check_precision(precision)
    units = space_units(space)
    calib = calibration_archs(space, calib_models)
    meta = new_meta(space, "remote", precision, threads, spin, len(units), calib)
    bundle.mkdir(parents=True, exist_ok=True)
    (bundle / "units").mkdir(exist_ok=True)
    items: list[dict[str, str]] = []
    work = unit_items(units, precision) + calib_items(calib, precision)
    for i, (key, kind, make) in enumerate(tqdm(work, desc="exporting", unit="file", disable=not progress)):
        rel = f"units/{i:05d}.onnx"
        if not (bundle / rel).exists():
            make(bundle / rel)
        items.append({"key": key, "kind": kind, "file": rel})
    export_probe(bundle / "probe.onnx")
    shutil.copyfile(runner.__file__, bundle / "runner.py")
    shutil.copyfile(onnx_runtime.__file__, bundle / "onnx_runtime.py")  # the runner's ORT helpers
    manifest = {"threads": threads, "spin": spin, "probe": "probe.onnx", "timing": timing, "items": items,
                "meta": to_dict(meta)}
    (bundle / "manifest.json").write_text(json.dumps(manifest, indent=1))
    return len(items)


def import_results(results: Path, out: Path) -> TableMeta:
    """A table from a measured bundle (its folder, or its results.csv inside it). The bundle is
    read as data and checked in full first (`ednas.latency.bundle`); only `out` and its
    sidecar are written, never the bundle or any path named in it."""
    from ednas.latency.bundle import read_bundle

    measured = read_bundle(results)
    out.parent.mkdir(parents=True, exist_ok=True)
    _rewrite(out, measured.rows)
    return finalize(out, measured.meta, measured.unit_keys)
