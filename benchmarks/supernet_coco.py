"""Supernet from the released Enhanced NanoDet_s on COCO (issue: accurate sub-networks).

Trains on the even half of coco-train128 (teacher: the released s) for a wall-time budget and
scores sub-networks on the odd half, which nothing trained, calibrated or selected on:

    python benchmarks/supernet_coco.py --weights enhanced_nanodet_s.onnx --coco coco-train128 \
        --work /tmp/sn --minutes 55

Per architecture it prints the predicted latency (fp32 table, ratio to s), the mAP of the
same architecture cut from the released weights with BN recalibration only (the supernet
right after `init`), and after supernet training; each with a 95 % bootstrap interval over
the 64 held-out images when ednas.eval.bootstrap is available. Phases resume: rerun the
same command after an interruption.
"""

from __future__ import annotations

import argparse
import os
import random
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

from ednas.data.split import coco_halves
from ednas.latency.runner import machine_info
from ednas.latency.predictor import LatencyPredictor
from ednas.latency.table import LatencyTable, default_table
from ednas.arch.space import SearchSpace
from ednas.supernet.evaluate import CalibImages, SupernetEvaluator, class_names
from ednas.supernet.supernet import Supernet
from ednas.supernet.train import smallest


def ednas(*args: str) -> None:
    subprocess.run([sys.executable, "-m", "ednas.cli", *args], check=True)


def cpu_line() -> str:
    m = machine_info(1)
    flags = " ".join(m.get("cpu_flags") or [])
    return f"CPU: {m.get('cpu')} ({m.get('logical_cores')} cores) {flags}"


def fidelity(init: Path, args: argparse.Namespace) -> None:
    """The base extracted right after `init` against the released ONNX on all of coco-train128:
    class-score max |delta| and mAP (the release's pipeline check: 36.33)."""
    import numpy as np
    import torch

    from ednas.data import build_dataset, split_from_paths
    from ednas.data.classes import COCO_CLASSES
    from ednas.eval.coco_eval import evaluate
    from ednas.eval.predictors import OnnxPredictor, TorchPredictor

    sn = Supernet.load(init)
    model = sn.extract(sn.space.base)
    onnx = OnnxPredictor(args.weights, threads=args.threads)
    worst = 0.0
    for batch in CalibImages(args.coco / "images", 128).batches(320):
        with torch.no_grad():
            ours = model.inference(batch).numpy()
        worst = max(worst, float(np.abs(ours[..., :80] - onnx(batch.numpy())[..., :80]).max()))
    ds = build_dataset(split_from_paths(str(args.coco / "images"),
                                        str(args.coco / "annotations" / "instances_train128.json")), COCO_CLASSES)
    m = evaluate(TorchPredictor(model), ds, progress=False)["mAP"]
    print(f"base extracted after init vs released ONNX, 128 images: class scores max |delta| {worst:.2e}, "
          f"mAP {m:.4f} (released 0.3633)")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--weights", default=os.environ.get("EDNAS_TEST_WEIGHTS"), help="default $EDNAS_TEST_WEIGHTS")
    ap.add_argument("--coco", default=os.environ.get("EDNAS_TEST_COCO"), type=Path,
                    help="coco-train128 folder (default $EDNAS_TEST_COCO)")
    ap.add_argument("--work", required=True, type=Path)
    ap.add_argument("--minutes", type=float, default=55.0)
    ap.add_argument("--random-subnets", type=int, default=1)
    ap.add_argument("--batch-size", type=int, default=16)
    ap.add_argument("--lr", type=float, default=2e-4)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--random-archs", type=int, default=5)
    args = ap.parse_args()
    if not args.weights or not args.coco:
        ap.error("give --weights and --coco (or set EDNAS_TEST_WEIGHTS and EDNAS_TEST_COCO)")
    work = args.work
    work.mkdir(parents=True, exist_ok=True)
    halves = coco_halves(args.coco / "images", args.coco / "annotations" / "instances_train128.json", work / "halves")
    (even_dir, even_ann), (odd_dir, odd_ann) = halves["even"], halves["odd"]
    init, trained = work / "init.pt", work / "super.pt"
    if not init.exists():
        ednas("supernet", "init", "--from", args.weights, "--images", str(even_dir), "--out", str(init))
    if not (work / "trained.done").exists():
        if not trained.exists():
            shutil.copy(init, trained)
        ednas("supernet", "train", str(trained), "--recipe", "enhanced_nanodet_s", "--images", str(even_dir),
              "--ann", str(even_ann), "--teacher", args.weights, "--minutes", str(args.minutes),
              "--random-subnets", str(args.random_subnets), "--batch-size", str(args.batch_size),
              "--lr", str(args.lr), "--threads", str(args.threads), "--resume")
        (work / "trained.done").write_text("")

    fidelity(init, args)
    space = SearchSpace.load()
    predictor = LatencyPredictor(LatencyTable.load(default_table()))
    base_ms = predictor.predict(space.base)
    rng = random.Random(1)
    archs = {"base (s)": space.base, "smallest": smallest(space), "uniform 0.75": space.uniform(0.75),
             "uniform 0.5": space.uniform(0.5), "base @256": space.base.replace(input_size=256)}
    archs.update({f"random {i}": space.sample(rng) for i in range(args.random_archs)})
    scores, seconds = {}, []
    for label, path in (("cut", init), ("trained", trained)):
        sn = Supernet.load(path)
        from ednas.data import build_dataset, split_from_paths

        ds = build_dataset(split_from_paths(str(odd_dir), str(odd_ann)), class_names(sn))
        ev = SupernetEvaluator(sn, ds, CalibImages(even_dir, 64), threads=args.threads)
        scores[label] = {}
        for name, arch in archs.items():
            t0 = time.perf_counter()
            scores[label][name] = 100 * ev(arch)
            seconds.append(time.perf_counter() - t0)
    from ednas.eval.coco_eval import evaluate
    from ednas.eval.predictors import OnnxPredictor

    released = 100 * evaluate(OnnxPredictor(args.weights, threads=args.threads), ds, progress=False)["mAP"]
    print(f"\n{cpu_line()}")
    print(f"evaluator: median {statistics.median(seconds):.1f} s per sub-network (slice + BN recalibration on 64 "
          f"images + COCO mAP on 64; {len(seconds)} calls, {args.threads} threads)")
    print(f"released s on the odd half (64 held-out images): mAP {released:.1f}")
    print(f"{'architecture':16s} {'pred ms':>8s} {'x s':>6s} {'cut mAP':>8s} {'trained mAP':>12s} {'% of s':>7s}")
    for name, arch in archs.items():
        ms = predictor.predict(arch)
        t = scores["trained"][name]
        print(f"{name:16s} {ms:8.2f} {ms / base_ms:6.2f} {scores['cut'][name]:8.1f} {t:12.1f} {100 * t / released:6.0f}%")


if __name__ == "__main__":
    main()
