"""One search, start to finish: check the inputs, run the study, write the run folder.

    options = SearchOptions(supernet="super.pt", budget="75%", images=..., ann=..., out="runs/s")
    result = run_search(options)    # resumable: the same options continue the same study

The CLI (`ednas search`) and the pipeline both call `run_search`; it logs, never prints, and
returns what a caller shows (`SearchResult`).
"""

from __future__ import annotations

import dataclasses
import logging
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ednas.errors import InputError
from ednas.io import check_output

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class SearchOptions:
    """What `ednas search` takes (same names as its options)."""

    supernet: str  # supernet file; its search space is searched
    budget: str  # "6ms" | "6000us" | "75%" (of the base's predicted latency)
    out: str  # RUN_DIR
    images: str | None = None  # evaluation images and their COCO json
    ann: str | None = None
    table: str | None = None  # latency table (default: latency_tables/SPACE_cpu_PRECISION_Nt.csv)
    precision: str = "fp32"
    threads: int | None = None  # ORT threads of the table (default: 2)
    trials: int = 200  # COMPLETE trials the study should hold
    timeout: str | None = None  # "30m": this run stops after that (rerun to resume)
    sampler: str = "tpe"
    seed: int | None = None
    storage: str | None = None  # postgresql+psycopg:// URL or journal path (default RUN_DIR/study.journal)
    study: str | None = None  # default: the RUN_DIR folder name
    workers: int = 1
    calib_images: int = 64
    eval_images: int | None = None
    metric: str = "mAP"
    verify: bool = True  # re-measure the front with ONNX Runtime


@dataclass(frozen=True)
class ShownRow:
    """One line of the result table."""

    name: str
    kind: str  # "pareto" | "baseline"
    predicted_ms: float
    measured_ms: float | None
    measured_over_predicted: float | None
    map: float | None
    best: bool  # the most accurate point within the budget


@dataclass(frozen=True)
class SearchResult:
    out: Path
    space: str
    budget_ms: float
    base_ms: float
    done: int  # COMPLETE trials in the study
    target: int
    evaluated: int  # trials that paid for an accuracy evaluation
    front: int  # Pareto front size
    rows: list[ShownRow] = field(default_factory=list)
    reference_ms: dict[str, float] = field(default_factory=dict)  # on the table's scale


def parse_duration(text: str | None) -> float | None:
    """'90s', '30m', '2h' or plain seconds -> seconds."""
    if text is None:
        return None
    m = re.fullmatch(r"\s*(\d+(?:\.\d*)?)\s*([smh]?)\s*", text)
    if m is None or float(m.group(1)) <= 0:
        raise InputError(f"--timeout {text!r}: write a positive time such as 90s, 30m or 2h")
    return float(m.group(1)) * {"": 1, "s": 1, "m": 60, "h": 3600}[m.group(2)]


def run_search(opts: SearchOptions) -> SearchResult:
    """Run (or resume) the search of `opts` and write its run folder."""
    from ednas.latency import LatencyPredictor
    from ednas.latency.table import default_table
    from ednas.search import study as st
    from ednas.search.budget import parse_budget, resolve_budget, space_floor_ms
    from ednas.search.run_folder import write_json

    spec = parse_budget(opts.budget)  # a typo costs nothing: checked before anything loads
    st.check_storage_url(opts.storage)
    for name in ("trials", "workers", "calib_images", "threads", "eval_images"):
        value = getattr(opts, name)
        if value is not None and value < 1:
            raise InputError(f"--{name.replace('_', '-')} {value}: give at least 1")
    if not Path(opts.supernet).is_file():
        raise InputError(f"--supernet {opts.supernet}: no such file (make one with `ednas supernet init`)")
    if not opts.images or not opts.ann:
        raise InputError("give --images DIR --ann JSON: the images every candidate is scored on (COCO json)")
    timeout_s = parse_duration(opts.timeout)
    out = check_output(opts.out, folder=True)  # the folder is made only once every input was accepted
    settings = st.SearchSettings(
        supernet=str(opts.supernet), out=str(out), budget_ms=0.0, table="", trials=opts.trials,
        study=opts.study or out.resolve().name, storage=opts.storage, sampler=opts.sampler, seed=opts.seed,
        timeout_s=timeout_s, images=opts.images, ann=opts.ann, calib_images=opts.calib_images,
        eval_images=opts.eval_images, metric=opts.metric,
        eval_threads=max(1, (os.cpu_count() or 1) // opts.workers))
    evaluator = st.build_evaluator(settings)
    space = evaluator.space  # type: ignore[attr-defined]
    table_path = Path(opts.table) if opts.table else default_table(space.name, opts.precision, opts.threads or 2)
    table = st.check_table(table_path, space, opts.precision, opts.threads)
    predictor = LatencyPredictor(table)
    base_ms = predictor.predict(space.base)
    budget = resolve_budget(spec, base_ms, lambda below: space_floor_ms(space, predictor.predict, below))
    settings = dataclasses.replace(settings, budget_ms=budget.ms, table=str(table_path))
    out.mkdir(parents=True, exist_ok=True)
    study = st.open_study(settings, space, st.make_sampler(opts.sampler, opts.seed))
    st.reap_stale(study)
    st.warm_start(study, space)
    record = _search_json(opts, settings, space, table, budget, evaluator)
    write_json(out / "search.json", record)
    log.info("search %r: budget %.3f ms (%s; base %.3f ms predicted), %d trials, %s, %d worker(s), study %r in %s",
             space.name, budget.ms, opts.budget, base_ms, opts.trials, opts.sampler, opts.workers,
             settings.study, st.storage_label(settings))
    st.run_workers(settings, opts.workers, evaluator)
    return _finish(opts, settings, space, predictor, budget, evaluator, study, record)


def _search_json(opts: SearchOptions, settings: Any, space: Any, table: Any, budget: Any, evaluator: Any) -> dict:
    from ednas.latency.runner import machine_info
    from ednas.search.study import storage_label

    here = machine_info(table.meta.threads)
    return {
        "space": space.name, "space_fingerprint": space.fingerprint(), "metric": opts.metric,
        "budget_ms": budget.ms, "budget": budget.text, "precision": table.meta.precision,
        "threads": table.meta.threads, "table": str(table.path),
        "cpu": {k: v for k, v in here.items() if k not in ("date", "threads")},
        "storage": storage_label(settings), "study": settings.study, "sampler": settings.sampler,
        "seed": settings.seed, "trials_target": settings.trials,
        "eval_images": _eval_images(evaluator, opts.eval_images),
        "base_ms": budget.base_ms, "reference_ms": {},
    }


def _eval_images(evaluator: Any, asked: int | None) -> int:
    """How many images each candidate was scored on (the evaluator's dataset when it has one)."""
    dataset = getattr(evaluator, "dataset", None)
    if dataset is not None:
        return len(dataset)
    return int(getattr(evaluator, "eval_images", None) or asked or 0)


def _finish(opts: SearchOptions, settings: Any, space: Any, predictor: Any, budget: Any, evaluator: Any,
            study: Any, record: dict) -> SearchResult:
    """trials.csv (with the baselines), the front, its verification, pareto.csv and friends."""
    from ednas.search import study as st
    from ednas.search.genes import decode
    from ednas.search.pareto import Point, best_within, pareto_front
    from ednas.search.run_folder import ParetoRow, Row, write_json, write_pareto, write_trials

    out = Path(settings.out)
    rows = st.trial_rows(study, budget.ms)
    known = {k.removeprefix("map:"): v for k, v in study.user_attrs.items() if k.startswith("map:")}
    known.update({r.arch_hash: r.map for r in rows if r.state == "COMPLETE" and r.map is not None})
    baselines = {}
    for name, arch in st.baseline_archs(space).items():  # evaluated once per study, kept in its attrs
        ms = predictor.predict(arch)
        accuracy = known.get(arch.hash())
        if accuracy is None:
            accuracy = float(evaluator(arch))
            study.set_user_attr(f"map:{arch.hash()}", accuracy)
        baselines[name] = (arch, Row(number=-1, name=name, kind="baseline", state="COMPLETE",
                                     arch_hash=arch.hash(), genes=st.genes_of(space, arch) or {},
                                     predicted_ms=ms, map=accuracy, feasible=ms <= budget.ms))
    write_trials(out, rows + [r for _, r in baselines.values()])

    seen: dict[str, Row] = {}
    for r in rows:  # one point per architecture: its first finished, evaluated, feasible trial
        if r.state == "COMPLETE" and r.map is not None and r.feasible and r.arch_hash not in seen:
            seen[r.arch_hash] = r
    points = [Point(r.name, r.map, r.predicted_ms) for r in seen.values()]  # type: ignore[arg-type]
    front = pareto_front(points)
    by_name = {r.name: r for r in seen.values()}
    chosen = [(by_name[p.key], "pareto", decode(space, by_name[p.key].genes)[0]) for p in front]
    chosen += [(row, "baseline", arch) for arch, row in baselines.values()]

    measured: dict[str, Any] = {}
    reference_ms: dict[str, float] = {}
    if opts.verify and chosen:
        from ednas.search.verify import reference_archs, verify

        # reference detectors (NanoDet-Plus-m: COCO, 320 px) only mean something next to a space
        # of the same task; a 6-class 96 px space would only get a far-off line
        refs = {n: a for n, a in reference_archs().items() if a.num_classes == space.base.num_classes}
        measured = verify({**{row.name: arch for row, _, arch in chosen}, **refs}, space.base,
                          record["precision"], record["threads"], out)
        reference_ms = {name: measured[name].ratio * budget.base_ms for name in refs}
        record["reference_measured_ms"] = {name: measured[name].measured_ms for name in refs}
        record["base_measured_ms"] = measured["base"].base_ms if "base" in measured else None

    def ratio(row: Row) -> float | None:
        m = measured.get(row.name)
        return None if m is None or not row.predicted_ms else m.ratio / (row.predicted_ms / budget.base_ms)

    write_pareto(out, [ParetoRow(row, kind, arch, measured[row.name].measured_ms if row.name in measured else None,
                                 ratio(row), [(p.name, p.ms) for p in predictor.breakdown(arch)])
                       for row, kind, arch in chosen])
    record["reference_ms"] = reference_ms
    write_json(out / "search.json", record)

    best = best_within(points, budget.ms)
    shown = [ShownRow(row.name, kind, row.predicted_ms or 0.0,  # type: ignore[arg-type]
                      measured[row.name].measured_ms if row.name in measured else None, ratio(row), row.map,
                      best is not None and row.name == best.key) for row, kind, _ in chosen]
    return SearchResult(
        out=out, space=space.name, budget_ms=budget.ms, base_ms=budget.base_ms,
        done=sum(r.state == "COMPLETE" for r in rows), target=settings.trials,
        evaluated=sum(bool(t.user_attrs.get("evaluated")) for t in study.get_trials(deepcopy=False)),
        front=len(front), rows=shown, reference_ms=reference_ms)
