"""Accuracy of each peer detector (recipes/peers/) through its card, next to the reference.

    python benchmarks/eval_peers.py [--peers DIR] [--coco DIR] [--person DIR] [--only NAME ...]

Each card's ONNX file (`--peers`, default $EDNAS_TEST_PEERS) is scored by `ednas test`'s
evaluator on coco-train128 (`--coco`, default $EDNAS_TEST_COCO: mAP) and on
val2017-person/holdout (`--person`, default $EDNAS_TEST_PERSON: person AP, with its bootstrap
interval), next to the card's `reference` (an independent pycocotools evaluation, see
../shared/weights/peers/README.md). A set whose folder is not given is left out. Exit status
1 when any score is off its reference by more than 0.3 points: a decoder that is off by a
detail (colour order, anchor offset, normalisation) loses several.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

TOLERANCE = 0.003  # 0.3 points: the resize interpolation alone moves scores by a few tenths
SETS = {  # reference field: (the folder's flag, images folder and annotations inside it)
    "coco_train128": ("coco", "images", "annotations/instances_train128.json"),
    "person_holdout": ("person", "holdout/images", "holdout/annotations/instances_person.json"),
}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--peers", default=os.environ.get("EDNAS_TEST_PEERS"),
                        help="folder of the peer ONNX files (default $EDNAS_TEST_PEERS)")
    parser.add_argument("--coco", default=os.environ.get("EDNAS_TEST_COCO"),
                        help="coco-train128 folder (default $EDNAS_TEST_COCO)")
    parser.add_argument("--person", default=os.environ.get("EDNAS_TEST_PERSON"),
                        help="val2017-person folder (default $EDNAS_TEST_PERSON)")
    parser.add_argument("--only", nargs="+", metavar="NAME", help="these cards only (e.g. yolox_nano_416)")
    parser.add_argument("--threads", type=int, default=None, help="ONNX Runtime intra-op threads")
    args = parser.parse_args()
    folders = {name: getattr(args, flag) for name, (flag, _, _) in SETS.items() if getattr(args, flag)}
    if not args.peers or not folders:
        parser.error("give --peers and --coco and/or --person (or set EDNAS_TEST_PEERS, EDNAS_TEST_COCO, "
                     "EDNAS_TEST_PERSON)")

    from ednas.data import load_eval_set
    from ednas.eval.coco_eval import evaluate_model
    from ednas.peers.loader import CARDS_DIR, load_card
    from ednas.peers.predictor import PeerPredictor

    names = args.only or sorted(p.stem for p in CARDS_DIR.glob("*.yml"))
    ok = True
    print(f"{'peer':<20} {'set':<15} {'ednas':>6} {'95% CI':>13} {'reference':>9}")
    for name in names:
        card = load_card(CARDS_DIR / f"{name}.yml")
        predictor = PeerPredictor(card, Path(args.peers) / f"{name}.onnx", threads=args.threads)
        for set_name, folder in folders.items():
            _, images, ann = SETS[set_name]
            dataset = load_eval_set(str(Path(folder) / images), str(Path(folder) / ann), card.class_names)
            result = evaluate_model(predictor, dataset, interval=True, progress=False)
            ci, ref = result["mAP_interval"], getattr(card.reference, set_name)
            line = f"{name:<20} {set_name:<15} {100 * result['mAP']:>6.2f} {ci.low:>6.1f}-{ci.high:<6.1f}"
            if ref is not None:
                good = abs(result["mAP"] - ref) <= TOLERANCE
                ok &= good
                line += f" {100 * ref:>9.2f}  {'ok' if good else 'OFF'}"
            print(line, flush=True)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
