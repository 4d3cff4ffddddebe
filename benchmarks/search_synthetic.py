"""Does the search beat plain scaling? (synthetic shapes, supernet of supernet_rank_synthetic.py)

Takes the from-scratch supernet that `benchmarks/supernet_rank_synthetic.py` trained (run it
first, same --work), profiles its space on this CPU (1 thread; once), and runs `ednas search`
with 200 trials under 60 % of the base's predicted latency, choosing on one half of the
held-out synthetic images. The best feasible point and every uniform-width scaling of the
base (each width at each input size) are then scored on the *other* half, which nothing chose
on, with 95 % bootstrap intervals of AP50:

    python benchmarks/search_synthetic.py --work /tmp/rank

The search must finish 200 trials within 30 minutes, its front must hold >= 5 points, and the
best feasible point must score a higher held-out AP50 than each uniform scaling whose predicted
latency is the same or higher.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np


def ednas(*args: str) -> None:
    subprocess.run([sys.executable, "-m", "ednas.cli", *args], check=True, env={**os.environ, "OMP_NUM_THREADS": "2"})


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--work", type=Path, required=True, help="supernet_rank_synthetic.py's work folder")
    ap.add_argument("--tag", default="super", help="its supernet's name (--tag there)")
    ap.add_argument("--budget", default="60%")
    ap.add_argument("--trials", type=int, default=200)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    work = args.work
    sup = work / f"{args.tag}.pt"
    if not (work / f"{args.tag}.done").exists():
        sys.exit(f"{sup}: not trained yet; run benchmarks/supernet_rank_synthetic.py --work {work} first")

    from ednas.cpu import cpu_info
    from ednas.data.split import coco_halves

    print(f"CPU: {cpu_info()}")
    halves = coco_halves(work / "data" / "images", work / "data" / "annotations" / "val.json", work / "val_halves")
    (choose_dir, choose_ann), (held_dir, held_ann) = halves["even"], halves["odd"]
    table = work / "table_fp32_1t.csv"
    if not table.exists():
        ednas("profile", "--space", str(work / "space.yml"), "--device", "cpu", "--threads", "1",
              "--calib-models", "12", "--out", str(table))
    run = work / f"search_{args.budget.rstrip('%')}_{args.tag}"
    ednas("search", "--supernet", str(sup), "--budget", args.budget, "--table", str(table), "--trials",
          str(args.trials), "--seed", str(args.seed), "--images", str(choose_dir), "--ann", str(choose_ann),
          "--calib-images", "32", "--metric", "AP50", "--threads", "1", "--out", str(run))
    minutes = study_minutes(run)

    from ednas.arch import ArchSpec
    from ednas.arch.space import SearchSpace
    from ednas.data import load_eval_set
    from ednas.data.classes import SHAPE_CLASSES
    from ednas.eval.bootstrap import PerImageAP, map_interval, paired_drop, predict_results
    from ednas.eval.predictors import TorchPredictor
    from ednas.latency import LatencyPredictor, LatencyTable
    from ednas.supernet.evaluate import CalibImages, recalibrated_subnet
    from ednas.supernet.supernet import Supernet

    space = SearchSpace.load(work / "space.yml")
    predict = LatencyPredictor(LatencyTable.load(table, space.fingerprint())).predict
    trials = list(csv.DictReader((run / "trials.csv").open()))
    pareto = list(csv.DictReader((run / "pareto.csv").open()))
    done = [t for t in trials if t["kind"] == "trial" and t["state"] == "COMPLETE"]
    summary = json.loads((run / "search.json").read_text())
    budget_ms = float(summary["budget_ms"])
    feasible = [t for t in done if t["feasible"].lower() == "true" and t["map"]]
    best = max(feasible, key=lambda t: float(t["map"]))
    genes = json.loads(best["genes"])
    best_arch = space.decode(lambda name, _choices: genes[name])
    best_ms = predict(best_arch)

    supernet = Supernet.load(sup)
    held = load_eval_set(str(held_dir), str(held_ann), SHAPE_CLASSES)
    calib = CalibImages(work / "data" / "images", 64)

    def score(arch: ArchSpec) -> PerImageAP:
        model = recalibrated_subnet(supernet, arch, calib)
        results, ids = predict_results(TorchPredictor(model), held, SHAPE_CLASSES, strides=arch.strides,
                                       reg_max=arch.head.reg_max)
        return PerImageAP(held.coco_gt(), results, ids, iou=0.5)

    print(f"best feasible: {best['name']} (selection AP50 {100 * float(best['map']):.1f})")
    rows = [("best feasible", best_arch, best_ms, score(best_arch))]
    for size in space.config.input_size.choices:
        for width in space.config.backbone.widths:
            arch = space.uniform(width).replace(input_size=size)
            ms = predict(arch)
            if ms >= best_ms:
                rows.append((f"uniform {width:g} @{size}", arch, ms, score(arch)))
    front = sum(r["kind"] == "pareto" for r in pareto)
    print(f"\nsearch: {len(done)} trials in {minutes:.1f} min (must <= 30), front {front} points (must >= 5), "
          f"budget {args.budget} = {budget_ms:.3f} ms; held-out: {held_ann.name}, {len(held)} images")
    print(f"{'model':22s} {'pred ms':>8s} {'held-out AP50 (95% CI)':>24s} {'best minus it (paired 95% CI)':>32s}  arch")
    everything = np.ones(rows[0][3].num_images, bool)
    for name, arch, ms, scores in rows:
        est = map_interval(scores)
        gap = paired_drop(scores, [rows[0][3]], [everything])  # best - this, same images
        gap_text = "" if scores is rows[0][3] else f"{-gap.value:+.1f} ({-gap.high:+.1f} to {-gap.low:+.1f})"
        print(f"{name:22s} {ms:8.3f} {est.value:10.1f} ({est.low:4.1f}-{est.high:4.1f}) {gap_text:>32s}  {arch.hash()}")
    beaten = all(rows[0][3].map() > r[3].map() for r in rows[1:])
    print(f"best feasible beats every uniform scaling at the same or higher latency: {beaten}")


def study_minutes(run: Path) -> float:
    """Minutes from the study's first trial start to its last trial end (the search's own time,
    also when this benchmark is rerun on a finished study)."""
    import optuna
    from optuna.storages.journal import JournalFileBackend

    storage = optuna.storages.JournalStorage(JournalFileBackend(str(run / "study.journal")))
    trials = [t for t in optuna.load_study(study_name=run.name, storage=storage).trials
              if t.datetime_start and t.datetime_complete]
    return (max(t.datetime_complete for t in trials) - min(t.datetime_start for t in trials)).total_seconds() / 60


if __name__ == "__main__":
    main()
