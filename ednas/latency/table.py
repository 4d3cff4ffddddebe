"""The latency lookup table: a CSV of measured units (and calibration models) plus a YAML
sidecar with what the numbers depend on.

    latency_tables/NAME.csv       key, kind, median_ms, p10_ms, p90_ms, probe_ms, ratio, pairs
    latency_tables/NAME.meta.yml  TableMeta: device, precision, threads, machine, space
                                  fingerprint, probe latency, calibration coefficients
    latency_tables/NAME.extra.csv units measured later for this table (pruned widths,
                                  ednas.latency.extra); local data, not part of the build

A unit's latency is `ratio * meta.probe_ms`: its per-pair ratio to the probe model timed
interleaved with it, on the run's probe scale, so load that came and went during the build
cancels out.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ednas.config import dump_yaml, from_dict, load_yaml, to_dict
from ednas.errors import EdnasError
from ednas.latency import runner

if TYPE_CHECKING:
    from ednas.latency.target import LatencyTarget

log = logging.getLogger(__name__)

TABLES_DIR = Path(__file__).resolve().parent.parent.parent / "latency_tables"
CALIB_KIND = runner.MODEL_KIND  # `kind` of the whole-model rows used for calibration
BUILDER_VERSION = 2  # 2: INT8 units made by `ednas quantize`'s path (rewrites, CPU weight bits, FP32 tail)


class LatencyTableError(EdnasError):
    """A latency table is missing, incomplete or belongs to another space or setting."""


@dataclass(frozen=True)
class Calibration:
    """whole model = overhead_ms + scale * sum(units) + ms_per_melem * boundary Melements,
    least squares over a few whole models measured in the same run."""

    overhead_ms: float = 0.0  # fixed per-inference cost (minus per-unit call costs the sum repeats)
    scale: float = 1.0  # units inside the model vs alone
    ms_per_melem: float = 0.0  # per million boundary elements (< 0: the units pay layout
    #                            reorders / int8 quantize-dequantize the fused model does not)
    models: int = 0  # whole models it was fitted on
    mape: float = 0.0  # fit error on those models (%)


@dataclass(frozen=True)
class TableMeta:
    device: str = "cpu"
    precision: str = "fp32"
    threads: int = 2  # ORT intra-op threads
    spin: bool = False  # ORT intra-op spinning (off: robust on shared machines)
    space_name: str = ""
    space_fingerprint: str = ""
    units_expected: int = 0  # distinct units of the space (a shorter table is incomplete)
    calib_expected: int = 0  # calibration models to measure
    probe: str = ""  # the fixed reference model timed alongside every unit
    probe_ms: float = 0.0  # its median latency over the build (the table's time scale)
    machine: dict[str, Any] = field(default_factory=dict)  # runner.machine_info()
    ednas_version: str = ""
    builder: int = 1  # table builder version (BUILDER_VERSION when built; 1 for tables that predate it)
    int8_weights: str = ""  # int8: the weight format of its units (ednas.cpu.int8_weights), e.g. "8-bit (vnni)"
    calibration: Calibration | None = None  # None until the calibration models are measured
    calib_archs: dict[str, Any] = field(default_factory=dict)  # calibration key -> ArchSpec dict


def meta_path(csv_path: Path) -> Path:
    return csv_path.with_name(csv_path.stem + ".meta.yml")


def default_table(space_name: str = "enhanced_nanodet", precision: str = "fp32", threads: int = 2,
                  device: str = "cpu") -> Path:
    return TABLES_DIR / f"{space_name}_{device}_{precision}_{threads}t.csv"


def profile_hint(path: Path, meta: TableMeta | None = None) -> str:
    from ednas.latency.target import LatencyTarget

    target = LatencyTarget.of_table(meta) if meta else LatencyTarget()
    return target.profile_command(path, meta.space_name if meta and meta.space_name else "enhanced_nanodet")


class LatencyTable:
    """A loaded table: `ms[key]` is each unit's latency on the table's probe scale."""

    def __init__(self, path: Path, meta: TableMeta, rows: list[dict[str, Any]]) -> None:
        self.path = path
        self.meta = meta
        self.rows = {r["key"]: r for r in rows}
        self.ms = {k: r["ratio"] * meta.probe_ms for k, r in self.rows.items()}

    @property
    def units_measured(self) -> int:
        return sum(r["kind"] != CALIB_KIND for r in self.rows.values())

    def add_units(self, rows: list[dict[str, Any]]) -> None:
        """Units measured after the build on the table's probe scale (see ednas.latency.extra)."""
        for r in rows:
            if r["key"] not in self.rows:
                self.rows[r["key"]] = r
                self.ms[r["key"]] = r["ratio"] * self.meta.probe_ms

    @classmethod
    def load(cls, path: str | Path, fingerprint: str | None = None, complete: bool = True,
             target: "LatencyTarget | None" = None) -> "LatencyTable":
        """Read a table and the units measured for it later (its `.extra.csv` sidecar). With
        `fingerprint`, refuse one built for another search space; with `target`, one built for
        another device, precision, threads or CPU (ednas.latency.target.check_table); with
        `complete`, refuse one whose build was interrupted."""
        from ednas.latency.extra import read_extra
        from ednas.latency.target import LatencyTarget, check_table

        path = Path(path)
        mpath = meta_path(path)
        if not path.is_file() or not mpath.is_file():
            missing = path if not path.is_file() else mpath
            hint = (target or LatencyTarget()).profile_command(path)
            raise LatencyTableError(f"no latency table at {missing}; build it with `{hint}`")
        meta = read_meta(mpath)
        check_table(meta, target or LatencyTarget.of_table(meta), fingerprint, path)
        table = cls(path, meta, runner.read_rows(path))
        if complete and (table.units_measured < meta.units_expected or meta.calibration is None):
            raise LatencyTableError(
                f"{path} is incomplete ({table.units_measured} of {meta.units_expected} units"
                f"{'' if meta.calibration else ', not calibrated'}); resume it with `{profile_hint(path, meta)}`")
        if target is None:
            warn_if_other_machine(meta)
        table.add_units(read_extra(table))
        return table


def read_meta(path: Path) -> TableMeta:
    data = load_yaml(path)
    if not isinstance(data, dict):
        raise LatencyTableError(f"{path}: not a latency table sidecar; rebuild with `ednas profile`")
    return from_dict(TableMeta, data, str(path))


def write_meta(path: Path, meta: TableMeta) -> None:
    tmp = path.with_suffix(".tmp")
    dump_yaml(to_dict(meta), tmp)
    tmp.replace(path)


def warn_if_other_machine(meta: TableMeta) -> None:
    """Log (not raise) when the table was measured elsewhere: it is still the best estimate."""
    here = runner.machine_info(meta.threads)
    diffs = [f"{k} {meta.machine.get(k)!r} (table) vs {here[k]!r} (here)"
             for k in ("cpu", "logical_cores", "onnxruntime") if meta.machine.get(k) != here[k]]
    if diffs:
        log.warning("latency table measured on another machine: %s; predictions may be off "
                    "(re-profile for this one)", "; ".join(diffs))
