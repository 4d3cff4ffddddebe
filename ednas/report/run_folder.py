"""Read a search run folder (search.json, trials.csv, pareto.csv, breakdown.csv, models.csv)
into plain, typed records for the report.

The folder is written by `ednas search` and `ednas run` (contract: accuracy as fractions,
latency in ms, every string possibly user-typed). Everything is validated here, once, so the
renderers never see a malformed value: a missing file, a missing column or a bad cell ends in
one line that names the file, the row and the column.
"""

from __future__ import annotations

import csv
import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, TypeVar

from ednas.errors import InputError

T = TypeVar("T")

TRIAL_COLUMNS = ("number", "name", "kind", "state", "arch_hash", "genes", "predicted_ms", "map", "feasible")
PARETO_COLUMNS = ("name", "kind", "arch_hash", "genes", "predicted_ms", "measured_ms", "measured_over_predicted", "map")
BREAKDOWN_COLUMNS = ("name", "part", "ms")
MODEL_COLUMNS = ("name", "parent", "variant", "map", "map_low", "map_high", "measured_ms", "ratio_to_base", "path")
VARIANTS = ("fp32", "pruned", "int8")


@dataclass(frozen=True)
class Trial:
    """One row of trials.csv: a sampled architecture (or a baseline, number -1)."""

    number: int
    name: str
    kind: str  # "trial" | "baseline"
    state: str  # optuna state name
    arch_hash: str
    genes: dict[str, Any]
    predicted_ms: float | None  # None for trials that failed before being priced
    map: float | None  # fraction; None when not evaluated (e.g. over budget)
    feasible: bool


@dataclass(frozen=True)
class FrontPoint:
    """One row of pareto.csv: a verified Pareto point or a baseline, with measured latency."""

    name: str
    kind: str  # "pareto" | "baseline"
    arch_hash: str
    genes: dict[str, Any]
    predicted_ms: float
    measured_ms: float | None  # None: not verified (`ednas search --no-verify`); raw median of its session
    # (its time / the base's time, same session) / (its predicted / the base's predicted): the
    # load-cancelled check of the prediction (1.0: exact); given whenever measured_ms is
    measured_over_predicted: float | None
    map: float  # fraction, FP32


@dataclass(frozen=True)
class Variant:
    """One row of models.csv: a deployed (re-evaluated, pruned or INT8) model of a front point."""

    name: str
    parent: str  # a pareto.csv name
    variant: str  # "fp32" | "pruned" | "int8"
    map: float
    map_low: float | None  # 95 % bootstrap interval, fractions
    map_high: float | None
    measured_ms: float  # raw median in the timing session of `ednas run`'s measure stage
    ratio_to_base: float  # its time / the base architecture's time, per round of that same session
    path: str
    withheld: str = ""  # why the pipeline did not ship it (an INT8 model no faster than its FP32 parent); "" shipped


@dataclass(frozen=True)
class RunFolder:
    """Everything the report shows, validated."""

    path: Path
    search: dict[str, Any]  # search.json as written
    trials: list[Trial]
    front: list[FrontPoint]
    breakdown: dict[str, list[tuple[str, float]]] = field(default_factory=dict)  # name -> [(part, ms)]
    variants: list[Variant] = field(default_factory=list)

    @property
    def metric(self) -> str:
        return str(self.search.get("metric") or "mAP")

    @property
    def budget_ms(self) -> float | None:
        return _opt_float(self.search.get("budget_ms"))

    @property
    def base_predicted_ms(self) -> float | None:
        """The base architecture's predicted latency: the unit of the report's latency scale."""
        base = _opt_float(self.search.get("base_ms"))
        if base is None:
            base = next((p.predicted_ms for p in self.front if p.kind == "baseline" and p.name == "base"), None)
        return base

    @property
    def reference_ms(self) -> dict[str, float]:
        refs = self.search.get("reference_ms") or {}
        return {str(k): float(v) for k, v in refs.items()}


def load_run(path: str | Path) -> RunFolder:
    """The run folder at `path`; InputError (one line) when something is missing or malformed."""
    root = Path(path)
    if not root.is_dir():
        raise InputError(f"{root}: no such run folder (give the folder `ednas search --out` wrote)")
    search = _load_search(root / "search.json")
    trials = [_trial(r, w) for r, w in _read_csv(root / "trials.csv", TRIAL_COLUMNS)]
    if not any(t.kind == "trial" for t in trials):
        raise InputError(f"{root / 'trials.csv'}: no trials yet "
                         "(let `ednas search` finish some, then run the report again)")
    front = [_front_point(r, w) for r, w in _read_csv(root / "pareto.csv", PARETO_COLUMNS)]
    _unique(root / "pareto.csv", [p.name for p in front])
    names = {p.name for p in front}

    breakdown: dict[str, list[tuple[str, float]]] = {}
    if (root / "breakdown.csv").is_file():
        for row, where in _read_csv(root / "breakdown.csv", BREAKDOWN_COLUMNS):
            name = _text(row, "name", where)
            if name not in names:
                raise InputError(f"{where}: name {name!r} is not a pareto.csv row (re-run the search's export)")
            breakdown.setdefault(name, []).append((_text(row, "part", where), _num(row, "ms", where, signed=True)))

    variants: list[Variant] = []
    if (root / "models.csv").is_file():
        if not _base_known(search, front):
            raise InputError(f"{root / 'search.json'}: no base_ms, and pareto.csv has no 'base' row: the deployed "
                             "models' latencies cannot be put on the table's scale (re-run the search)")
        variants = [_variant(r, w, names) for r, w in _read_csv(root / "models.csv", MODEL_COLUMNS)]
        _unique(root / "models.csv", [v.name for v in variants])
    return RunFolder(root, search, trials, front, breakdown, variants)


def _base_known(search: dict[str, Any], front: list[FrontPoint]) -> bool:
    return _opt_float(search.get("base_ms")) is not None or any(p.name == "base" for p in front)


# --- files -------------------------------------------------------------------------------


def _load_search(path: Path) -> dict[str, Any]:
    if not path.is_file():
        raise InputError(f"{path}: missing (is {path.parent} a run folder of `ednas search`?)")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise InputError(f"{path}: not valid JSON ({exc})") from None
    if not isinstance(data, dict):
        raise InputError(f"{path}: expected a JSON object, got {type(data).__name__}")
    for key in ("budget_ms", "base_ms"):
        value = data.get(key)
        if value is not None and _opt_float(value) is None:
            raise InputError(f"{path}: {key} {value!r} is not a number")
    refs = data.get("reference_ms") or {}
    if not isinstance(refs, dict) or any(_opt_float(v) is None for v in refs.values()):
        raise InputError(f"{path}: reference_ms must map names to milliseconds, got {refs!r}")
    return data


def _read_csv(path: Path, columns: tuple[str, ...]) -> list[tuple[dict[str, str], str]]:
    """(row, 'file row N') pairs; the header must hold every column in `columns`."""
    if not path.is_file():
        raise InputError(f"{path}: missing (is {path.parent} a run folder of `ednas search`?)")
    try:
        with path.open(newline="", encoding="utf-8") as f:
            reader = csv.DictReader(f)
            header = reader.fieldnames or []
            missing = [c for c in columns if c not in header]
            if missing:
                raise InputError(f"{path}: column {missing[0]!r} missing (header: {','.join(header) or 'empty'})")
            return [(row, f"{path} row {i}") for i, row in enumerate(reader, start=2)]
    except UnicodeDecodeError:
        raise InputError(f"{path}: not UTF-8 text (write it with the search's CSV writer)") from None
    except csv.Error as exc:
        raise InputError(f"{path}: malformed CSV ({exc})") from None


def _unique(path: Path, names: list[str]) -> None:
    seen: set[str] = set()
    for name in names:
        if name in seen:
            raise InputError(f"{path}: name {name!r} appears twice (names must be unique)")
        seen.add(name)


# --- rows --------------------------------------------------------------------------------


def _trial(row: dict[str, str], where: str) -> Trial:
    kind = _choice(row, "kind", where, ("trial", "baseline"))
    state = _text(row, "state", where)
    return Trial(
        number=_parse(row, "number", where, int, "an integer"),
        name=_text(row, "name", where),
        kind=kind,
        state=state,
        arch_hash=row.get("arch_hash") or "",
        genes=_genes(row, where),
        predicted_ms=_num(row, "predicted_ms", where, optional=state != "COMPLETE"),
        map=_num(row, "map", where, optional=True),
        feasible=_choice(row, "feasible", where, ("true", "false")) == "true",
    )


def _front_point(row: dict[str, str], where: str) -> FrontPoint:
    measured = _num(row, "measured_ms", where, optional=True)
    # without the ratio a measured time has no place on the table's scale
    ratio = _num(row, "measured_over_predicted", where, optional=measured is None)
    return FrontPoint(
        name=_text(row, "name", where),
        kind=_choice(row, "kind", where, ("pareto", "baseline")),
        arch_hash=row.get("arch_hash") or "",
        genes=_genes(row, where),
        predicted_ms=_num(row, "predicted_ms", where),
        measured_ms=measured,
        measured_over_predicted=ratio,
        map=_num(row, "map", where),
    )


def _variant(row: dict[str, str], where: str, parents: set[str]) -> Variant:
    parent = _text(row, "parent", where)
    if parent not in parents:
        raise InputError(f"{where}: parent {parent!r} is not a pareto.csv name (re-run `ednas run --from quantize`)")
    return Variant(
        name=_text(row, "name", where),
        parent=parent,
        variant=_choice(row, "variant", where, VARIANTS),
        map=_num(row, "map", where),
        map_low=_num(row, "map_low", where, optional=True),
        map_high=_num(row, "map_high", where, optional=True),
        measured_ms=_num(row, "measured_ms", where),
        ratio_to_base=_num(row, "ratio_to_base", where),
        path=row.get("path") or "",
        withheld=row.get("withheld") or "",  # optional: run folders before it shipped every variant
    )


# --- cells -------------------------------------------------------------------------------


def _parse(row: dict[str, str], column: str, where: str, cast: Callable[[str], T], what: str) -> T:
    raw = (row.get(column) or "").strip()
    try:
        return cast(raw)
    except ValueError:
        raise InputError(f"{where}: column {column!r} value {raw!r} is not {what}") from None


def _num(row: dict[str, str], column: str, where: str, optional: bool = False,
         signed: bool = False) -> float | None:
    """A finite number >= 0 (any sign with `signed`: a breakdown's fitted calibration terms)."""
    raw = (row.get(column) or "").strip()
    if not raw:
        if optional:
            return None
        raise InputError(f"{where}: column {column!r} is empty (expected a number)")
    value = _parse(row, column, where, float, "a number")
    if not math.isfinite(value) or (value < 0 and not signed):
        raise InputError(f"{where}: column {column!r} value {raw!r} is not a finite number"
                         + ("" if signed else " >= 0"))
    return value


def _text(row: dict[str, str], column: str, where: str) -> str:
    value = row.get(column) or ""
    if not value:
        raise InputError(f"{where}: column {column!r} is empty")
    return value


def _choice(row: dict[str, str], column: str, where: str, valid: tuple[str, ...]) -> str:
    value = (row.get(column) or "").strip()
    if value not in valid:
        raise InputError(f"{where}: column {column!r} value {value!r} is not one of {', '.join(valid)}")
    return value


def _genes(row: dict[str, str], where: str) -> dict[str, Any]:
    raw = row.get("genes") or "{}"
    try:
        genes = json.loads(raw)
    except json.JSONDecodeError:
        raise InputError(f"{where}: column 'genes' is not a JSON object: {raw[:60]!r}") from None
    if not isinstance(genes, dict):
        raise InputError(f"{where}: column 'genes' is not a JSON object: {raw[:60]!r}")
    return genes


def _opt_float(value: Any) -> float | None:
    if isinstance(value, bool):
        return None
    try:
        out = float(value)
    except (TypeError, ValueError):
        return None
    return out if math.isfinite(out) else None
