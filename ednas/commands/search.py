"""`ednas search`: multi-objective architecture search over a supernet under a latency budget.

Resumable: the study lives in RUN_DIR/study.journal (or --storage), so the same command run
again continues to --trials; --workers N runs N local processes on one study. Writes the run
folder (search.json, trials.csv, pareto.csv, pareto/*.arch.yml, breakdown.csv).
"""

from __future__ import annotations

import argparse
import os
import re
from pathlib import Path


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("search", help="latency-constrained architecture search over a supernet (Optuna)")
    p.add_argument("--supernet", required=True, metavar="SUPER.pt", help="supernet file (its space is searched)")
    p.add_argument("--budget", required=True, metavar="6ms|6000us|75%",
                   help="latency budget; a percentage is of the base architecture's predicted latency")
    p.add_argument("--table", metavar="CSV",
                   help="latency table (default: latency_tables/SPACE_cpu_PRECISION_Nt.csv)")
    p.add_argument("--precision", default="fp32", choices=["fp32", "int8"])
    p.add_argument("--threads", type=int, help="ORT threads the table was measured at (default: the table's, or 2)")
    p.add_argument("--trials", type=int, default=200, help="COMPLETE trials the study should hold (default 200)")
    p.add_argument("--timeout", metavar="30m", help="stop this run after a time (s, m or h); rerun to resume")
    p.add_argument("--sampler", default="tpe", choices=["tpe", "nsga2", "gp", "random"])
    p.add_argument("--seed", type=int, help="sampler seed (one worker: the same trials.csv every run)")
    p.add_argument("--storage", metavar="URL",
                   help="postgresql+psycopg://USER:PASSWORD@HOST/DB for workers on many machines, or a "
                        "journal file (default: RUN_DIR/study.journal)")
    p.add_argument("--study", metavar="NAME", help="study name (default: the RUN_DIR folder name)")
    p.add_argument("--workers", type=int, default=1, help="local worker processes on the study (default 1)")
    p.add_argument("--images", metavar="DIR", help="evaluation images")
    p.add_argument("--ann", metavar="JSON", help="their COCO annotations")
    p.add_argument("--calib-images", type=int, default=64, help="images for BatchNorm recalibration (default 64)")
    p.add_argument("--eval-images", type=int, help="images to score on (default: all the others)")
    p.add_argument("--metric", default="mAP", choices=["mAP", "AP50"])
    p.add_argument("--no-verify", action="store_true", help="skip re-measuring the front with ONNX Runtime")
    p.add_argument("--out", required=True, metavar="RUN_DIR", help="run folder")
    p.set_defaults(func=run)


def parse_duration(text: str | None) -> float | None:
    """'90s', '30m', '2h' or plain seconds -> seconds."""
    from ednas.errors import InputError

    if text is None:
        return None
    m = re.fullmatch(r"\s*(\d+(?:\.\d*)?)\s*([smh]?)\s*", text)
    if m is None or float(m.group(1)) <= 0:
        raise InputError(f"--timeout {text!r}: write a positive time such as 90s, 30m or 2h")
    return float(m.group(1)) * {"": 1, "s": 1, "m": 60, "h": 3600}[m.group(2)]


def run(args: argparse.Namespace) -> int:
    import dataclasses
    import logging

    from ednas.errors import InputError
    from ednas.latency import LatencyPredictor
    from ednas.latency.table import default_table
    from ednas.search import study as st
    from ednas.search.budget import parse_budget, resolve_budget, space_floor_ms

    log = logging.getLogger("ednas.search")
    spec = parse_budget(args.budget)  # a typo costs nothing: checked before anything loads
    st.check_storage_url(args.storage)
    for name in ("trials", "workers", "calib_images"):
        if getattr(args, name) < 1:
            raise InputError(f"--{name.replace('_', '-')} {getattr(args, name)}: give at least 1")
    if not Path(args.supernet).is_file():
        raise InputError(f"--supernet {args.supernet}: no such file (make one with `ednas supernet init`)")
    if not args.images or not args.ann:
        raise InputError("give --images DIR --ann JSON: the images every candidate is scored on (COCO json)")
    timeout_s = parse_duration(args.timeout)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    settings = st.SearchSettings(
        supernet=str(args.supernet), out=str(out), budget_ms=0.0, table="", trials=args.trials,
        study=args.study or out.resolve().name, storage=args.storage, sampler=args.sampler, seed=args.seed,
        timeout_s=timeout_s, images=args.images, ann=args.ann, calib_images=args.calib_images,
        eval_images=args.eval_images, metric=args.metric,
        eval_threads=max(1, (os.cpu_count() or 1) // args.workers))
    evaluator = st.build_evaluator(settings)
    space = evaluator.space
    table_path = Path(args.table) if args.table else default_table(space.name, args.precision, args.threads or 2)
    table = st.check_table(table_path, space, args.precision, args.threads)
    predictor = LatencyPredictor(table)
    base_ms = predictor.predict(space.base)
    budget = resolve_budget(spec, base_ms, lambda below: space_floor_ms(space, predictor.predict, below))
    settings = dataclasses.replace(settings, budget_ms=budget.ms, table=str(table_path))
    study = st.open_study(settings, space, st.make_sampler(args.sampler, args.seed))
    st.reap_stale(study)
    st.warm_start(study, space)
    record = _search_json(args, settings, space, table, budget, evaluator, {})
    from ednas.search.run_folder import write_json

    write_json(out / "search.json", record)
    print(f"search {space.name!r}: budget {budget.ms:.3f} ms ({args.budget}; base {base_ms:.3f} ms predicted), "
          f"{args.trials} trials, {args.sampler}, {args.workers} worker(s), study {settings.study!r} in "
          f"{st.storage_label(settings)}")
    st.run_workers(settings, args.workers, evaluator)
    log.info("search finished; writing %s", out)
    return _finish(args, settings, space, predictor, budget, evaluator, study, record)


def _search_json(args, settings, space, table, budget, evaluator, reference_ms: dict) -> dict:
    from ednas.latency.runner import machine_info
    from ednas.search.study import storage_label

    here = machine_info(table.meta.threads)
    return {
        "space": space.name, "space_fingerprint": space.fingerprint(), "metric": args.metric,
        "budget_ms": budget.ms, "budget": budget.text, "precision": table.meta.precision,
        "threads": table.meta.threads, "table": str(table.path),
        "cpu": {k: v for k, v in here.items() if k not in ("date", "threads")},
        "storage": storage_label(settings), "study": settings.study, "sampler": settings.sampler,
        "seed": settings.seed, "trials_target": settings.trials,
        "eval_images": _eval_images(evaluator, args.eval_images),
        "base_ms": budget.base_ms, "reference_ms": reference_ms,
    }


def _eval_images(evaluator, asked: int | None) -> int:
    """How many images each candidate was scored on (the evaluator's dataset when it has one)."""
    dataset = getattr(evaluator, "dataset", None)
    if dataset is not None:
        return len(dataset)
    return int(getattr(evaluator, "eval_images", None) or asked or 0)


def _finish(args, settings, space, predictor, budget, evaluator, study, record) -> int:
    from ednas.search import study as st
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
                                     predicted_ms=ms, map=accuracy,
                                     feasible=ms <= budget.ms))
    write_trials(out, rows + [r for _, r in baselines.values()])

    seen: dict[str, Row] = {}
    for r in rows:  # one point per architecture: its first finished, evaluated, feasible trial
        if r.state == "COMPLETE" and r.map is not None and r.feasible and r.arch_hash not in seen:
            seen[r.arch_hash] = r
    front = pareto_front(Point(r.name, r.map, r.predicted_ms) for r in seen.values())  # type: ignore[arg-type]
    by_name = {r.name: r for r in seen.values()}
    from ednas.search.genes import decode

    chosen = [(by_name[p.key], "pareto", decode(space, by_name[p.key].genes)[0]) for p in front]
    chosen += [(row, "baseline", arch) for arch, row in baselines.values()]

    measured, reference_ms = {}, {}
    if not args.no_verify and chosen:
        from ednas.search.verify import reference_archs, verify

        archs = {row.name: arch for row, _, arch in chosen}
        refs = reference_archs()
        measured = verify({**archs, **refs}, space.base, record["precision"], record["threads"], out)
        base_pred = budget.base_ms
        reference_ms = {name: measured[name].ratio * base_pred for name in refs}
        record["reference_measured_ms"] = {name: measured[name].measured_ms for name in refs}
        record["base_measured_ms"] = measured["base"].base_ms if "base" in measured else None

    def ratio(row: Row) -> float | None:
        m = measured.get(row.name)
        if m is None or not row.predicted_ms:
            return None
        return m.ratio / (row.predicted_ms / budget.base_ms)

    write_pareto(out, [ParetoRow(row, kind, arch, measured[row.name].measured_ms if row.name in measured else None,
                                 ratio(row), [(p.name, p.ms) for p in predictor.breakdown(arch)])
                       for row, kind, arch in chosen])
    record["reference_ms"] = reference_ms
    write_json(out / "search.json", record)

    done = sum(r.state == "COMPLETE" for r in rows)
    evaluated = sum(bool(t.user_attrs.get("evaluated")) for t in study.get_trials(deepcopy=False))
    print(f"{done}/{settings.trials} trials complete ({evaluated} evaluated, the rest over budget or "
          f"duplicates); Pareto front {len(front)} points")
    best = best_within([Point(r.name, r.map, r.predicted_ms) for r in seen.values()], budget.ms)  # type: ignore[arg-type]
    print(f"{'name':<16}{'kind':<10}{'pred ms':>9}{'meas ms':>9}{'meas/pred':>10}{args.metric:>9}")
    for row, kind, _ in chosen:
        m = measured.get(row.name)
        r = ratio(row)
        print(f"{row.name:<16}{kind:<10}{row.predicted_ms:>9.3f}{m.measured_ms if m else float('nan'):>9.3f}"
              f"{r if r is not None else float('nan'):>10.3f}{row.map if row.map is not None else float('nan'):>9.4f}"
              f"{'  <- best within budget' if best is not None and row.name == best.key else ''}")
    for name, ms in reference_ms.items():
        print(f"{name:<16}{'reference':<10}{ms:>9.3f}  (measured, on the table's scale)")
    print(f"wrote {out}/trials.csv, pareto.csv, breakdown.csv, pareto/*.arch.yml, search.json")
    if done < settings.trials:
        print(f"stopped at {done}/{settings.trials} trials (--timeout); run the same command again to resume")
    return 0
