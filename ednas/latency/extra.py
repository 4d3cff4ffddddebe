"""Units a table lacks, measured on this machine and kept beside it.

A pruned model has widths that no search space lists, so the table has no row for some of
its units. `measure_missing` times exactly those units the way the table's build did (same
export and INT8 path, threads, spinning, interleaved with the same probe model), so
`ratio * meta.probe_ms` puts them on the table's time scale, and stores them in a sidecar:

    NAME.extra.csv        the rows (runner.COLUMNS), units only
    NAME.extra.meta.yml   the build they belong to (the table's probe scale and build date)
                          and the CPU they were measured on

Both are written together, atomically (ednas.io.output_set). A sidecar of another build of the
table, or of another CPU, is ignored with a warning: its ratios belong to another scale.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterable

from ednas.arch import ArchSpec
from ednas.config import dump_yaml, from_dict, load_yaml, to_dict
from ednas.errors import EdnasError
from ednas.latency import runner
from ednas.latency.units import Unit, arch_units

if TYPE_CHECKING:
    from ednas.latency.table import LatencyTable

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ExtraMeta:
    """What the sidecar's ratios belong to."""

    table_built: str  # the table's build date (meta.machine.date): another build, another probe scale
    probe_ms: float  # the table's probe scale when these were measured
    cpu: str  # where they were measured
    cpu_flags: tuple[str, ...] = ()


def extra_paths(table_path: Path) -> tuple[Path, Path]:
    """(rows CSV, meta YAML) of a table's sidecar."""
    return (table_path.with_name(table_path.stem + ".extra.csv"),
            table_path.with_name(table_path.stem + ".extra.meta.yml"))


def _expected(table: "LatencyTable") -> ExtraMeta:
    m = table.meta
    return ExtraMeta(str(m.machine.get("date", "")), m.probe_ms, str(m.machine.get("cpu", "")),
                     tuple(m.machine.get("cpu_flags") or ()))


def read_extra(table: "LatencyTable") -> list[dict[str, Any]]:
    """The sidecar's rows when it belongs to this build of the table, else none."""
    rows_path, meta_path = extra_paths(table.path)
    if not rows_path.is_file() or not meta_path.is_file():
        return []
    try:
        meta = from_dict(ExtraMeta, load_yaml(meta_path), str(meta_path))
    except EdnasError as exc:
        log.warning("ignoring %s: %s", meta_path, exc)
        return []
    if meta != _expected(table):
        log.warning("ignoring %s: measured for another build of %s or on another CPU", rows_path, table.path.name)
        return []
    return runner.read_rows(rows_path)


def missing_units(table: "LatencyTable", archs: Iterable[ArchSpec]) -> dict[str, Unit]:
    """Units of `archs` the table (with its sidecar) has no row for."""
    return {u.key: u for arch in archs for _, u in arch_units(arch) if u.key not in table.ms}


def measure_missing(table: "LatencyTable", archs: Iterable[ArchSpec], progress: bool = True,
                    timing: dict[str, Any] | None = None) -> int:
    """Time the units of `archs` that `table` lacks on this machine, add them to the table and
    its sidecar; returns how many were measured. The table must be of this machine's CPU
    (check_table): its scale is meaningless for units timed elsewhere."""
    from ednas.io import output_set, scratch_dir
    from ednas.latency.profiler import measure, unit_items
    from ednas.latency.target import LatencyTarget, check_table

    m = table.meta
    check_table(table, LatencyTarget.here(m.precision, m.threads, m.spin))
    units = missing_units(table, archs)
    if not units:
        return 0
    with scratch_dir("extra") as work:
        new = work / "new.csv"
        measure(unit_items(units, m.precision), new, m.threads, m.spin, progress, timing)  # type: ignore[arg-type]
        rows = read_extra(table) + runner.read_rows(new)
    rows_path, meta_path = extra_paths(table.path)
    with output_set(rows_path, meta_path) as (rows_tmp, meta_tmp):
        with runner.RowWriter(rows_tmp) as writer:
            for row in rows:
                writer.write(row)
        dump_yaml(to_dict(_expected(table)), meta_tmp)
    table.add_units(rows)
    log.info("measured %d units %s lacked; kept in %s", len(units), table.path.name, rows_path)
    return len(units)
