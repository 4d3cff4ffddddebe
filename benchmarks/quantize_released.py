"""Naive vs accuracy-aware INT8 of the released Enhanced NanoDet_s, side by side with FP32.

    python benchmarks/quantize_released.py [--weights W.onnx] [--coco DIR] [--max-drop 0.5]

coco-train128 is split: calibration on the 64 even-indexed images, model selection (the
accuracy-aware search) on the 64 odd ones; mAP is reported on both halves and on all 128,
so the half nobody calibrated on shows how much the search overfits. Latency: each INT8 model
against FP32, interleaved in one process (median of per-pair ratios).
"""

from __future__ import annotations

import argparse
import json
import logging
import tempfile
from pathlib import Path

from ednas.compress.quantize import QuantizeConfig, quantize
from ednas.compress import quantize_calib as calib
from ednas.compress import quantize_model as qmodel
from ednas.compress.quantize_latency import time_pair
from ednas.compress.quantize_ort import quantize_qdq
from ednas.compress.quantize_search import AccuracyBoundError
from ednas.data.coco import CocoDataset
from ednas.eval.coco_eval import evaluate
from ednas.eval.predictors import OnnxPredictor


def split(coco: Path, work: Path) -> tuple[Path, Path, Path]:
    """(calibration images dir, selection json, all json) for the even/odd split."""
    ann = coco / "annotations" / "instances_train128.json"
    gt = json.loads(ann.read_text())
    images = sorted(gt["images"], key=lambda im: im["file_name"])
    calib_dir = work / "calib"
    calib_dir.mkdir()
    for im in images[0::2]:
        (calib_dir / im["file_name"]).symlink_to(coco / "images" / im["file_name"])
    odd = {im["id"] for im in images[1::2]}
    sel = {**gt, "images": [im for im in gt["images"] if im["id"] in odd],
           "annotations": [a for a in gt["annotations"] if a["image_id"] in odd]}
    sel_json = work / "select.json"
    sel_json.write_text(json.dumps(sel))
    return calib_dir, sel_json, ann


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--weights", default="/work/shared/weights/enhanced_nanodet_s.onnx")
    p.add_argument("--coco", default="/work/shared/data/coco-train128")
    p.add_argument("--max-drop", type=float, default=0.5)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--out", default="quantize_released_out")
    args = p.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    coco, out = Path(args.coco), Path(args.out)
    out.mkdir(exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        calib_dir, sel_json, all_json = split(coco, work)
        # naive: everything INT8 (tail included), MinMax — what was tried before
        model = qmodel.name_nodes(qmodel.load_model(args.weights))
        prepared = qmodel.prepare(model, work)
        files = calib.list_images(calib_dir)
        stats = calib.collect_stats(prepared, calib.load_batch(files, 320), args.threads)
        models = {"fp32": Path(args.weights)}
        models["naive minmax"] = quantize_qdq(prepared, out / "naive.onnx", calib.compute_ranges(stats, "minmax"))
        tail = qmodel.tail_nodes(qmodel.load_model(prepared))
        models["tail fp32, percentile"] = quantize_qdq(
            prepared, out / "tail_pct.onnx", calib.compute_ranges(stats, "percentile"), tail)
        summary = None
        for max_drop in dict.fromkeys([args.max_drop, 1.0]):
            try:
                summary = quantize(args.weights, calib_dir, out / "aware.onnx", coco / "images", sel_json,
                                   QuantizeConfig(max_drop=max_drop, threads=args.threads))
                models[f"accuracy-aware (<= {max_drop:g})"] = out / "aware.onnx"
                break
            except AccuracyBoundError as exc:
                print(f"accuracy-aware, --max-drop {max_drop:g}: {exc}")
        rows = []
        for name, path in models.items():
            maps = []
            for ann in (sel_json, None, all_json):
                if ann is None:  # calibration half = all minus selection, scored on its own
                    ds = CocoDataset(coco / "images", all_json)
                    odd = {im["id"] for im in json.loads(sel_json.read_text())["images"]}
                    ds.records = [r for r in ds.records if r.id not in odd]
                else:
                    ds = CocoDataset(coco / "images", ann)
                maps.append(evaluate(OnnxPredictor(path, args.threads), ds, progress=False)["mAP"] * 100)
            t = time_pair(args.weights, path, args.threads, 150) if name != "fp32" else None
            rows.append((name, *maps, t))
    print(f"\n{'model':32s} {'mAP select(64)':>15s} {'mAP calib(64)':>14s} {'mAP all(128)':>13s} "
          f"{'speed-up':>9s} {'p10-p90':>11s} {'ms fp32/int8':>13s}")
    for name, sel, cal, all_, t in rows:
        speed = f"{t.speedup:9.2f} {t.speedup_p10:5.2f}-{t.speedup_p90:<5.2f} {t.reference_ms:6.1f}/{t.candidate_ms:<6.1f}" if t else f"{1:9.2f}"
        print(f"{name:32s} {sel:15.2f} {cal:14.2f} {all_:13.2f} {speed}")
    if summary:
        print(f"\naccuracy-aware: method {summary['calibration']['method']}, "
              f"{len(summary['fp32_tensors'])} tensors / {len(summary['fp32_nodes'])} nodes in FP32; "
              f"search: {[(t['method'], t['fp32_tensors'], round(t['drop'], 2)) for t in summary['tried']]}")


if __name__ == "__main__":
    main()
