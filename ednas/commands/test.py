"""`ednas test`: COCO mAP of a checkpoint or an ONNX model on an annotated image set."""

from __future__ import annotations

import argparse
from typing import Any

from ednas.commands._common import add_batch_size, add_recipe, local_threads


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "test", help="COCO mAP of a checkpoint or ONNX model on annotated images",
        description="ednas test RECIPE (--weights CKPT | --onnx MODEL.onnx) --images DIR --ann JSON. "
                    "RECIPE gives the class names, strides and pre-processing; with --onnx a bare "
                    "architecture name such as enhanced_nanodet_s is enough. A peer card "
                    "(recipes/peers/*.yml) in place of RECIPE scores another project's ONNX file "
                    "(--onnx) as the card describes it.",
    )
    add_recipe(p, card=True)
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--weights", metavar="CKPT", help="PyTorch checkpoint")
    src.add_argument("--onnx", metavar="MODEL.onnx", help="ONNX model with the released output contract")
    p.add_argument("--images", metavar="DIR", help="images folder (default: the recipe's data.val)")
    p.add_argument("--ann", metavar="JSON|DIR",
                   help="COCO instances json, or a folder of Pascal VOC XML files (default: the recipe's data.val)")
    p.add_argument("--out", "--json", dest="json", metavar="OUT.json",
                   help="also write the metrics (fractions, not percent) to this JSON file")
    add_batch_size(p, 8, "images per forward pass (default 8; --batch is an alias)")
    p.add_argument("--threads", type=local_threads, default=None, metavar="N", help="ONNX Runtime intra-op threads")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ednas.commands._common import load_model
    from ednas.data import build_dataset, check_images_found, split_from_paths
    from ednas.errors import DataError, InputError
    from ednas.eval.coco_eval import METRICS, evaluate_model
    from ednas.io import check_output, write_json
    from ednas.eval.predictors import OnnxPredictor
    from ednas.peers.loader import find_card
    from ednas.peers.predictor import PeerPredictor
    from ednas.recipe import load_recipe

    if args.json:
        check_output(args.json)
    if bool(args.images) != bool(args.ann):
        raise InputError("give both --images DIR and --ann JSON|DIR, or neither (to use the recipe's data.val)")
    card = find_card(args.recipe)
    if card is not None:
        if not (args.onnx and args.images):
            raise InputError(f"{args.recipe} is a peer card: give --onnx MODEL.onnx (the file it describes) "
                             "and --images DIR --ann JSON")
        recipe, model, class_names = None, PeerPredictor(card, args.onnx, threads=args.threads), card.class_names
    elif args.onnx:
        recipe = load_recipe(args.recipe)
        model, class_names = OnnxPredictor(args.onnx, threads=args.threads), recipe.class_names
    else:
        recipe, model = load_model(args.recipe, args.weights)
        class_names = recipe.class_names

    if args.images:
        split = split_from_paths(args.images, args.ann)
    else:
        split = recipe.data.val
        if not (split.images and split.ann):
            raise InputError(f"recipe {recipe.name} has no data.val; give --images DIR --ann JSON")
    dataset = build_dataset(split, class_names)
    check_images_found(dataset, split.images, split.ann)

    result = evaluate_model(model, dataset, recipe, interval=True, batch_size=args.batch_size)
    if not result["images"]:
        raise DataError(f"{split.images}: none of the annotated images could be read ({len(dataset.skipped)} "
                        f"unreadable, first: {dataset.skipped[0][1] if dataset.skipped else '?'})")
    model_name = args.onnx or args.weights
    print(f"{model_name} on {result['images']} images of {split.ann}"
          + (f" ({len(dataset.skipped)} unreadable, skipped)" if dataset.skipped else ""))
    print(format_table(result))
    ci = result["mAP_interval"] if result["mAP"] >= 0 else None  # -1: undefined, nothing to bootstrap
    if ci is None:
        print(f"mAP n/a: none of the {result['images']} images scored has a ground-truth box")
    else:
        print(f"mAP {ci.value:.1f} (95% CI {ci.low:.1f} to {ci.high:.1f}: bootstrap over the {ci.images} images)")
    if args.json:
        out = {m: result[m] for m in METRICS}  # -1 where undefined (COCOeval's convention)
        out["per_class"] = dict(result["per_class"])
        out["images"] = result["images"]
        out["mAP_interval"] = [ci.low / 100, ci.high / 100] if ci is not None else None
        write_json(args.json, out)
        print(f"wrote {args.json}")
    return 0


def format_table(result: dict[str, Any], columns: int = 3) -> str:
    """The COCO metrics, then the per-class AP in `columns` columns (percent; 'n/a' where
    undefined: no ground-truth box of that class or size)."""
    from ednas.eval.coco_eval import METRICS

    lines = ["metric   AP (%)"] + [f"{m:<8} {_pct(result[m]):>6}" for m in METRICS]
    cells = [f"{name:<16} {_pct(ap):>5}" for name, ap in result["per_class"]]
    lines.append("")
    lines.append("per-class AP (%)")
    for i in range(0, len(cells), columns):
        lines.append("   ".join(cells[i:i + columns]))
    return "\n".join(lines)


def _pct(value: float | None) -> str:
    return "n/a" if value is None or value < 0 else f"{100 * value:.1f}"
