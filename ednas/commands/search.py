"""`ednas search`: multi-objective architecture search over a supernet under a latency budget.

Resumable: the study lives in RUN_DIR/study.journal (or --storage), so the same command run
again continues to --trials; --workers N runs N local processes on one study. Writes the run
folder (search.json, trials.csv, pareto.csv, pareto/*.arch.yml, breakdown.csv). The work is
`ednas.search.search.run_search`; this module parses and prints.
"""

from __future__ import annotations

import argparse

from ednas.commands._common import nonnegative_int, positive_int


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("search", help="latency-constrained architecture search over a supernet (Optuna)")
    p.add_argument("--supernet", required=True, metavar="SUPER.pt", help="supernet file (its space is searched)")
    p.add_argument("--budget", required=True, metavar="6ms|6000us|75%",
                   help="latency budget; a percentage is of the base architecture's predicted latency")
    p.add_argument("--table", metavar="CSV",
                   help="latency table (default: latency_tables/SPACE_cpu_PRECISION_Nt.csv)")
    p.add_argument("--precision", default="fp32", choices=["fp32", "int8"])
    p.add_argument("--threads", type=positive_int, help="ORT threads the table was measured at (default: the table's, or 2)")
    p.add_argument("--trials", type=positive_int, default=200, help="COMPLETE trials the study should hold (default 200)")
    p.add_argument("--timeout", metavar="30m", help="stop this run after a time (s, m or h); rerun to resume")
    p.add_argument("--sampler", default="tpe", choices=["tpe", "nsga2", "gp", "random"])
    p.add_argument("--seed", type=nonnegative_int, help="sampler seed (one worker: the same trials.csv every run)")
    p.add_argument("--storage", metavar="URL",
                   help="postgresql+psycopg://USER:PASSWORD@HOST/DB for workers on many machines, or a "
                        "journal file (default: RUN_DIR/study.journal)")
    p.add_argument("--study", metavar="NAME", help="study name (default: the RUN_DIR folder name)")
    p.add_argument("--workers", type=positive_int, default=1, help="local worker processes on the study (default 1)")
    p.add_argument("--images", metavar="DIR", help="evaluation images")
    p.add_argument("--ann", metavar="JSON", help="their COCO annotations")
    p.add_argument("--calib-images", type=positive_int, default=64, help="images for BatchNorm recalibration (default 64)")
    p.add_argument("--eval-images", type=positive_int, help="images to score on (default: all the others)")
    p.add_argument("--metric", default="mAP", choices=["mAP", "AP50"])
    p.add_argument("--no-verify", action="store_true", help="skip re-measuring the front with ONNX Runtime")
    p.add_argument("--out", required=True, metavar="RUN_DIR", help="run folder")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ednas.search.search import SearchOptions, run_search

    opts = SearchOptions(
        supernet=args.supernet, budget=args.budget, out=args.out, images=args.images, ann=args.ann,
        table=args.table, precision=args.precision, threads=args.threads, trials=args.trials,
        timeout=args.timeout, sampler=args.sampler, seed=args.seed, storage=args.storage, study=args.study,
        workers=args.workers, calib_images=args.calib_images, eval_images=args.eval_images,
        metric=args.metric, verify=not args.no_verify)
    result = run_search(opts)
    nan = float("nan")
    print(f"{result.done}/{result.target} trials complete ({result.evaluated} evaluated, the rest over budget "
          f"or duplicates); Pareto front {result.front} points; budget {result.budget_ms:.3f} ms "
          f"(base {result.base_ms:.3f} ms predicted)")
    print(f"{'name':<16}{'kind':<10}{'pred ms':>9}{'meas ms':>9}{'meas/pred':>10}{args.metric + ' %':>9}")
    for r in result.rows:
        print(f"{r.name:<16}{r.kind:<10}{r.predicted_ms:>9.3f}"
              f"{r.measured_ms if r.measured_ms is not None else nan:>9.3f}"
              f"{r.measured_over_predicted if r.measured_over_predicted is not None else nan:>10.3f}"
              f"{100 * r.map if r.map is not None else nan:>9.1f}{'  <- best within budget' if r.best else ''}")
    for name, ms in result.reference_ms.items():
        print(f"{name:<16}{'reference':<10}{ms:>9.3f}  (measured, on the table's scale)")
    print(f"wrote {result.out}/trials.csv, pareto.csv, breakdown.csv, pareto/*.arch.yml, search.json")
    if result.done < result.target:
        print(f"stopped at {result.done}/{result.target} trials (--timeout); run the same command again to resume")
    return 0
