"""The search run folder (the contract read by `ednas run` and `ednas report`):

    search.json  trials.csv  pareto.csv  pareto/<name>.arch.yml  breakdown.csv

Plain data in, files out; every file written atomically (temp file in the same folder, then
os.replace), so a reader never sees half a file and a killed run leaves no temp files.
Accuracies are fractions, latencies milliseconds.
"""

from __future__ import annotations

import csv
import json
import os
import tempfile
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Iterator

from ednas.arch import ArchSpec

TRIALS_COLUMNS = ["number", "name", "kind", "state", "arch_hash", "genes", "predicted_ms", "map", "feasible"]
PARETO_COLUMNS = ["name", "kind", "arch_hash", "genes", "predicted_ms", "measured_ms",
                  "measured_over_predicted", "map"]
BREAKDOWN_COLUMNS = ["name", "part", "ms"]


@dataclass(frozen=True)
class Row:
    """One architecture of the run: a trial or a baseline."""

    number: int  # trial number; -1 for a baseline
    name: str  # "t0012" or the baseline's name
    kind: str  # "trial" | "baseline"
    state: str  # Optuna state name (baselines: COMPLETE)
    arch_hash: str
    genes: dict[str, Any]
    predicted_ms: float | None
    map: float | None  # None: not evaluated (over budget, or the trial never finished)
    feasible: bool


def trial_name(number: int) -> str:
    return f"t{number:04d}"


@contextmanager
def atomic(path: Path, mode: str = "w") -> Iterator[Any]:
    """Open a temp file beside `path`; on success it replaces `path`, on failure it is removed."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, mode, newline="" if "b" not in mode else None,
                       **({"encoding": "utf-8"} if "b" not in mode else {})) as f:
            yield f
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes 0600; a run folder is shared like any output
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _cell(value: Any) -> Any:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, dict):
        return json.dumps(value, separators=(",", ":"))
    if isinstance(value, float):
        return repr(value)
    return value


def write_csv(path: Path, columns: list[str], rows: Iterable[dict[str, Any]]) -> None:
    with atomic(path) as f:
        writer = csv.DictWriter(f, fieldnames=columns)
        writer.writeheader()
        for row in rows:
            writer.writerow({c: _cell(row.get(c)) for c in columns})


def write_json(path: Path, data: dict[str, Any]) -> None:
    with atomic(path) as f:
        json.dump(data, f, indent=1)
        f.write("\n")


def save_arch(arch: ArchSpec, path: Path) -> None:
    import yaml

    with atomic(path) as f:
        yaml.safe_dump(arch.to_dict(), f, sort_keys=False)


def write_trials(out: Path, rows: Iterable[Row]) -> Path:
    path = out / "trials.csv"
    write_csv(path, TRIALS_COLUMNS, (vars(r) for r in rows))
    return path


@dataclass(frozen=True)
class ParetoRow:
    """A verified point of the front or a baseline."""

    row: Row
    kind: str  # "pareto" | "baseline"
    arch: ArchSpec
    measured_ms: float | None  # None: not verified (--no-verify)
    measured_over_predicted: float | None
    breakdown: list[tuple[str, float]]  # (part, predicted ms)


def write_pareto(out: Path, rows: list[ParetoRow]) -> None:
    """pareto.csv, pareto/<name>.arch.yml and breakdown.csv; arch files of names no longer on
    the front are removed, so the folder matches pareto.csv."""
    folder = out / "pareto"
    folder.mkdir(parents=True, exist_ok=True)
    keep = set()
    for p in rows:
        keep.add(f"{p.row.name}.arch.yml")
        save_arch(p.arch, folder / f"{p.row.name}.arch.yml")
    for old in folder.glob("*.arch.yml"):
        if old.name not in keep:
            old.unlink()
    write_csv(out / "pareto.csv", PARETO_COLUMNS, (
        {"name": p.row.name, "kind": p.kind, "arch_hash": p.row.arch_hash, "genes": p.row.genes,
         "predicted_ms": p.row.predicted_ms, "measured_ms": p.measured_ms,
         "measured_over_predicted": p.measured_over_predicted, "map": p.row.map} for p in rows))
    write_csv(out / "breakdown.csv", BREAKDOWN_COLUMNS,
              ({"name": p.row.name, "part": part, "ms": ms} for p in rows for part, ms in p.breakdown))
