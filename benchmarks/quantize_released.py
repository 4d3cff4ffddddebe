"""Naive vs accuracy-aware INT8 of the released Enhanced NanoDet_s, side by side with FP32.

    python benchmarks/quantize_released.py [--weights W.onnx] [--coco DIR] [--max-drop 0.5]

Accuracy, with held-out images: coco-train128 is cut into its 64 even- and 64 odd-indexed
images. Fold "even" calibrates *and* tunes (the accuracy-aware search) on the even half, so
the odd half is images no one tuned on; fold "odd" swaps the halves. The shipped model is
calibrated and tuned on all 128 (what `ednas quantize` does with coco-train128).
Naive INT8 is ONNX Runtime's quantize_static as is: MinMax ranges, every node INT8, no graph
rewrites.

Latency: every model against the released FP32 in rounds (each round runs each model once,
the order rotating), in one process, at 2 threads and at 1 thread; medians of the per-round
ratios, their p10-p90, and the ratio of p10 latencies (each model's fast end).
"""

from __future__ import annotations

import argparse
import json
import logging
import tempfile
from pathlib import Path

from ednas.compress import quantize_calib as calib
from ednas.compress import quantize_model as qmodel
from ednas.compress.quantize import QuantizeConfig, quantize
from ednas.compress.quantize_latency import time_models
from ednas.compress.quantize_ort import quantize_qdq
from ednas.compress.quantize_search import AccuracyBoundError
from ednas.data.coco import CocoDataset
from ednas.eval.coco_eval import evaluate
from ednas.eval.predictors import OnnxPredictor

HALVES = ("even", "odd")


def split(coco: Path, work: Path) -> dict[str, tuple[Path, Path]]:
    """{half or "all": (images dir, annotation json)}; the halves' folders hold symlinks."""
    ann = coco / "annotations" / "instances_train128.json"
    gt = json.loads(ann.read_text())
    images = sorted(gt["images"], key=lambda im: im["file_name"])
    out = {"all": (coco / "images", ann)}
    for half, chosen in zip(HALVES, (images[0::2], images[1::2])):
        folder = work / half
        folder.mkdir()
        for im in chosen:
            (folder / im["file_name"]).symlink_to(coco / "images" / im["file_name"])
        ids = {im["id"] for im in chosen}
        sub = {**gt, "images": chosen, "annotations": [a for a in gt["annotations"] if a["image_id"] in ids]}
        (work / f"{half}.json").write_text(json.dumps(sub))
        out[half] = (folder, work / f"{half}.json")
    return out


def aware(weights: str, calib_dir: Path, images: Path, ann: Path, out: Path, args: argparse.Namespace
          ) -> tuple[Path | None, dict | None]:
    """`ednas quantize` accuracy-aware; relaxes to --max-drop 1.0 when the bound cannot be met."""
    for max_drop in dict.fromkeys([args.max_drop, 1.0]):
        try:
            return out, quantize(weights, calib_dir, out, images, ann,
                                 QuantizeConfig(max_drop=max_drop, threads=args.threads))
        except AccuracyBoundError as exc:
            print(f"{out.name}, --max-drop {max_drop:g}: {exc}")
    return None, None


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--weights", default="/work/shared/weights/enhanced_nanodet_s.onnx")
    p.add_argument("--coco", default="/work/shared/data/coco-train128")
    p.add_argument("--max-drop", type=float, default=0.5)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--rounds", type=int, default=200, help="timing rounds at 2 threads (half that at 1)")
    p.add_argument("--out", default="quantize_released_out")
    args = p.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    coco, out = Path(args.coco), Path(args.out)
    out.mkdir(exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        sets = split(coco, work)
        models: dict[str, Path] = {"fp32": Path(args.weights)}
        released = qmodel.name_nodes(qmodel.load_model(args.weights))
        for sub in ("plain_prep", "rw_prep"):
            (work / sub).mkdir()
        plain, _ = qmodel.prepare(released, work / "plain_prep", rewrite=False)
        rewritten, applied = qmodel.prepare(released, work / "rw_prep")
        print(f"exact rewrites: {'; '.join(applied)}")
        models["fp32 + exact rewrites"] = qmodel.save_atomic(rewritten, out / "fp32_rewritten.onnx")
        size = qmodel.contract_of(released).input_size
        stats = calib.collect_stats(plain, calib.load_batch(calib.list_images(sets["all"][0]), size), args.threads)
        models["naive (ORT minmax, all INT8)"] = quantize_qdq(plain, out / "naive.onnx",
                                                              calib.compute_ranges(stats, "minmax"))
        summaries, held_out = {}, {}  # held_out: model name -> the half it never saw
        for half, other in zip(HALVES, reversed(HALVES)):
            path, summaries[half] = aware(args.weights, sets[half][0], *sets[half], out / f"aware_{half}.onnx", args)
            if path:
                models[f"aware, fold {half}"] = path
                held_out[f"aware, fold {half}"] = other
        path, summaries["ship"] = aware(args.weights, sets["all"][0], *sets["all"], out / "aware.onnx", args)
        if path:
            models["aware, shipped (all 128)"] = path

        maps = {}
        for name, path in models.items():
            maps[name] = {}
            for subset in (*HALVES, "all"):
                ds = CocoDataset(coco / "images", sets[subset][1])
                maps[name][subset] = evaluate(OnnxPredictor(path, args.threads), ds, progress=False)["mAP"] * 100
        candidates = {n: p for n, p in models.items() if n != "fp32"}
        timings = {t: time_models(args.weights, candidates, t, args.rounds if t > 1 else args.rounds // 2)
                   for t in dict.fromkeys([args.threads, 1])}

    ref = maps["fp32"]
    print(f"\n{'model':32s} {'mAP even':>9s} {'odd':>6s} {'all':>6s} {'held-out drop':>14s}", end="")
    for t in timings:
        print(f" | {t} thr: {'speed-up':>8s} {'p10-p90':>9s} {'p10 lat':>7s} {'ms':>11s}", end="")
    print()
    for name in models:
        m, held = maps[name], held_out.get(name)
        drop = f"{ref[held] - m[held]:+.2f} ({held})" if held else ""
        print(f"{name:32s} {m['even']:9.2f} {m['odd']:6.2f} {m['all']:6.2f} {drop:>14s}", end="")
        for t, tm in timings.items():
            if name == "fp32":
                any_t = next(iter(tm.values()))
                print(f" | {'':7s} {1:8.2f} {'':9s} {1:7.2f} {any_t.reference_ms:5.1f}/{'':5s}", end="")
            else:
                x = tm[name]
                print(f" | {'':7s} {x.speedup:8.2f} {x.speedup_p10:4.2f}-{x.speedup_p90:<4.2f} "
                      f"{x.reference_p10_ms / x.candidate_p10_ms:7.2f} {x.reference_ms:5.1f}/{x.candidate_ms:<5.1f}", end="")
        print()
    for key, s in summaries.items():
        if s:
            print(f"\naware {key}: drop on its tuning set {s['drop_points']:.2f}, method {s['calibration']['method']}, "
                  f"{len(s['fp32_tensors'])} tensors / {len(s['fp32_nodes'])} nodes in FP32; "
                  f"search: {[(t['method'], t['fp32_tensors'], round(t['drop'], 2)) for t in s['tried']]}")


if __name__ == "__main__":
    main()
