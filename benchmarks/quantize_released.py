"""Accuracy-aware INT8 of the released Enhanced NanoDet_s (or any FP32 ONNX of the family):
held-out drop with its interval, and speed against FP32, for each weight format (--target-cpu),
with and without activation equalization (--equalize on / off), and without and with
quantization-aware fine-tuning (--finetune off / always).

    python benchmarks/quantize_released.py [--weights W.onnx] [--coco DIR [--ann JSON]] [--targets vnni avx2]
        [--equalize on off] [--finetune off always]

--weights defaults to $EDNAS_TEST_WEIGHTS, --coco (a folder with images/ and annotations/) to
$EDNAS_TEST_COCO, --ann to its annotations/instances_train128.json: any annotated COCO folder,
e.g. val2017 images a model never saw, can take coco-train128's place.

Accuracy: `ednas quantize` with coco-train128 as both calibration and annotated images and 2
folds (even / odd images in file-name order): each fold's models are calibrated and chosen
on one half and checked on the other; the headline is the mean of the two checked drops with
a paired bootstrap 95% interval. The benchmark's --max-drop defaults to no bound, so the
first level (every conv INT8) is what is measured; the line "at --max-drop 0.5" says what
`ednas quantize` with its default bound would conclude from the same numbers.

Latency: every shipped model against the released FP32 in rounds (each round runs each
model once, the order rotating), in one process, at 1 thread and at 2; medians of the
per-round ratios with their p10-p90. The CPU and its INT8 flags are printed first.
"""

from __future__ import annotations

import argparse
import itertools
import logging
import os
from pathlib import Path

from ednas.compress.quantize.job import QuantizeConfig, quantize
from ednas.compress.quantize.timing import time_models
from ednas.cpu import cpu_info
from ednas.eval.bootstrap import Estimate


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--weights", default=os.environ.get("EDNAS_TEST_WEIGHTS"), help="default $EDNAS_TEST_WEIGHTS")
    p.add_argument("--coco", default=os.environ.get("EDNAS_TEST_COCO"),
                   help="folder with images/ and annotations/ (default $EDNAS_TEST_COCO)")
    p.add_argument("--ann", help="its COCO json (default COCO/annotations/instances_train128.json)")
    p.add_argument("--targets", nargs="+", default=["vnni", "avx2"], choices=["vnni", "avx2"])
    p.add_argument("--finetune", nargs="+", default=["off", "always"], choices=["off", "always"],
                   help="off: the grid's level alone; always: its recipe fine-tuned (default both)")
    p.add_argument("--equalize", nargs="+", default=["on", "off"], choices=["on", "off"],
                   help="activation equalization before calibrating (default both)")
    p.add_argument("--max-drop", type=float, default=100.0, help="search bound (default: none, first level)")
    p.add_argument("--threads", type=int, default=2, help="threads for calibration and evaluation")
    p.add_argument("--rounds", type=int, default=200, help="timing rounds per thread count")
    p.add_argument("--out", default="quantize_released_out")
    args = p.parse_args()
    if not args.weights or not args.coco:
        p.error("give --weights and --coco (or set EDNAS_TEST_WEIGHTS and EDNAS_TEST_COCO)")
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    logging.getLogger("root").setLevel(logging.WARNING)  # ORT's per-channel scale notices
    coco, out = Path(args.coco), Path(args.out)
    out.mkdir(exist_ok=True)
    print(f"CPU: {cpu_info().describe()}")
    images = coco / "images"
    ann = Path(args.ann) if args.ann else coco / "annotations" / "instances_train128.json"
    models, summaries = {}, {}
    for target, equalize, finetune in itertools.product(args.targets, args.equalize, args.finetune):
        fixes = ["equalized"] * (equalize == "on") + ["fine-tuned"] * (finetune == "always")
        name = ", ".join([target, *fixes])
        path = out / f"int8_{target}{'_eq' * (equalize == 'on')}{'_ft' * (finetune == 'always')}.onnx"
        summaries[name] = quantize(args.weights, images, path, images, ann, QuantizeConfig(
            max_drop=args.max_drop, threads=args.threads, target_cpu=target, timing_runs=20,
            finetune=finetune, equalize=equalize == "on"))
        models[name] = path
    timings = {t: time_models(args.weights, models, t, args.rounds) for t in (1, 2)}

    print(f"\nCPU: {cpu_info().describe()}; {Path(args.weights).name} FP32 vs INT8, {coco.name}, 2 folds "
          "(even/odd)")
    print(f"{'weights':44s} {'held-out drop (95% CI)':28s} {'fold drops':>13s} {'shipped recipe':44s}"
          f" {'1 thr speed-up (p10-p90)':>25s} {'2 thr speed-up (p10-p90)':>25s}")
    for target, s in summaries.items():
        h = s["held_out"]
        folds = "/".join(f"{d['value']:+.2f}" for d in h["per_fold"])
        speed = [f"{tm[target].speedup:.2f} ({tm[target].speedup_p10:.2f}-{tm[target].speedup_p90:.2f})"
                 for tm in timings.values()]
        print(f"{target + ' (' + s['calibration']['per_channel_weights'] + ')':44s} "
              f"{h['drop_points']:+.2f} ({h['ci95'][0]:+.2f} to {h['ci95'][1]:+.2f})".ljust(63)
              + f" {folds:>13s} {s['recipe']:44s} {speed[0]:>25s} {speed[1]:>25s}")
    for target, s in summaries.items():
        h = s["held_out"]
        est = Estimate(h["drop_points"], h["ci95"][0], h["ci95"][1], h["images"])
        needed = est.images_needed(0.5)
        verdict = ("shown" if est.high <= 0.5 else f"not shown on {est.images} images; about {needed} would show it"
                   if needed else "not reachable (the point drop is above it)")
        print(f"\n{target}: at --max-drop 0.5: {verdict}. Fold recipes: {h['fold_recipes']}; "
              f"in-sample drop of the shipped model {s['in_sample_drop_points']:+.2f} "
              f"(on the images that chose it); FP32 {s['fp32_map'] * 100:.2f}, INT8 {s['int8_map'] * 100:.2f}")
        print("search: " + "; ".join(f"{t['fold']}:{t['recipe']} {t['drop_on_choosing_images']:+.2f}"
                                     for t in s["tried"] if "fold" in t))
    for t, tm in timings.items():
        any_t = next(iter(tm.values()))
        print(f"{t} thread(s): FP32 {any_t.reference_ms:.1f} ms; "
              + ", ".join(f"{n} {x.candidate_ms:.1f} ms" for n, x in tm.items()) + f" ({args.rounds} rounds)")


if __name__ == "__main__":
    main()
