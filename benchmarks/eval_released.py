"""Accuracy of the released Enhanced NanoDet_s ONNX on coco-train128, next to the reference.

    python benchmarks/eval_released.py [--onnx MODEL.onnx] [--coco DIR] [--threads N]

Paths default to $EDNAS_TEST_WEIGHTS and $EDNAS_TEST_COCO (a folder with images/ and
annotations/instances_train128.json). Reference: an independent pycocotools evaluation of
this ONNX with the spec's pre/post-processing gave mAP 36.3, AP50 51.3. Exit status 1 when
either is off by more than 0.3 points. These are train2017 images: this checks the
pipeline (pre-processing, decoding, NMS, coordinate and category mapping), not accuracy.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

REFERENCE = {"mAP": 0.363, "AP50": 0.513}
TOLERANCE = 0.003


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--onnx", default=os.environ.get("EDNAS_TEST_WEIGHTS"),
                        help="released ONNX (default $EDNAS_TEST_WEIGHTS)")
    parser.add_argument("--coco", default=os.environ.get("EDNAS_TEST_COCO"),
                        help="coco-train128 folder (default $EDNAS_TEST_COCO)")
    parser.add_argument("--threads", type=int, default=None, help="ONNX Runtime intra-op threads")
    args = parser.parse_args()
    if not args.onnx or not args.coco:
        parser.error("give --onnx and --coco (or set EDNAS_TEST_WEIGHTS and EDNAS_TEST_COCO)")

    from ednas.data.coco import CocoDataset
    from ednas.eval.coco_eval import METRICS, evaluate_model
    from ednas.eval.predictors import OnnxPredictor
    from ednas.recipe import load_recipe

    recipe = load_recipe("enhanced_nanodet_s")
    coco = Path(args.coco)
    dataset = CocoDataset(coco / "images", coco / "annotations" / "instances_train128.json", recipe.class_names)
    predictor = OnnxPredictor(args.onnx, threads=args.threads)
    start = time.perf_counter()
    result = evaluate_model(predictor, dataset, recipe, progress=False)
    seconds = time.perf_counter() - start

    ok = True
    print(f"released Enhanced NanoDet_s on {result['images']} coco-train128 images ({seconds:.1f} s)")
    print(f"{'metric':<8} {'ednas':>7} {'reference':>10}")
    for m in METRICS:
        ref = REFERENCE.get(m)
        line = f"{m:<8} {100 * result[m]:>7.2f}"
        if ref is not None:
            good = abs(result[m] - ref) <= TOLERANCE
            ok &= good
            line += f" {100 * ref:>10.1f}  {'ok' if good else 'OFF'}"
        print(line)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
