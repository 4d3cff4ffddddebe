"""`ednas train`: train (or fine-tune) a detector with the NanoDet-Plus recipe."""

from __future__ import annotations

import argparse
import logging
import os

from ednas.commands._common import add_recipe, nonnegative_int, positive_float, positive_int

EPILOG = """\
data (--data / --val-data), any of:
  COCO_DIR        with annotations/instances_<split>.json and <split>/ or images/[<split>/]
                  (a folder with a train and a val json gives both splits)
  FILE.json       a COCO instances json; images in ../<split>/, ../images/ or ./images/
  VOC_DIR         with Annotations/*.xml and JPEGImages/ (class names from the recipe)
Without --data the recipe's data.train / data.val sections are used.

outputs in --out (default runs/<recipe name>):
  last.ckpt  full training state, every epoch (continue with --resume)
  best.ckpt  EMA weights with the best validation mAP (use with test/export)
  log.jsonl  per-epoch losses, learning rate and validation metrics

several processes / GPUs (DDP; --batch-size is the total over processes):
  torchrun --nproc_per_node 4 -m ednas.cli train RECIPE --data DIR

examples:
  ednas train enhanced_nanodet_s --data data/coco
  ednas train recipes/custom_voc.yml --weights s.ckpt --epochs 50 --out runs/voc
  ednas train recipes/custom_voc.yml --out runs/voc --resume
"""


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "train", help="train or fine-tune a detector (NanoDet-Plus recipe, DDP-ready)",
        description="Train RECIPE's model; command-line options override the recipe.",
        epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_recipe(p)
    p.add_argument("--data", metavar="DIR_OR_JSON", help="training data (see below); overrides data.train")
    p.add_argument("--val-data", metavar="DIR_OR_JSON", help="validation data; overrides data.val")
    p.add_argument("--weights", metavar="CKPT",
                   help="initialise from a checkpoint (e.g. from import-onnx); its architecture is used, "
                        "a missing aux branch or another class count is fine")
    p.add_argument("--epochs", type=positive_int, metavar="N", help="total epochs (train.epochs)")
    p.add_argument("--batch-size", "--batch", dest="batch_size", type=positive_int, metavar="N", help="images per step, all processes (train.batch_size)")
    p.add_argument("--lr", type=positive_float, help="peak learning rate (train.lr)")
    p.add_argument("--workers", type=nonnegative_int, metavar="N", help="data-loader processes per training process")
    p.add_argument("--val-interval", type=positive_int, metavar="N", help="epochs between evaluations")
    p.add_argument("--out", metavar="DIR", help="output folder (default: runs/<recipe name>)")
    p.add_argument("--resume", action="store_true", help="continue from OUT/last.ckpt")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ednas.recipe import load_recipe
    from ednas.train.job import TrainOptions, train
    from ednas.train.trainer import LAST

    rank = int(os.environ.get("RANK", "0"))
    if rank != 0:  # only the main process reports
        logging.getLogger().setLevel(logging.WARNING)
    options = TrainOptions(
        out=args.out, data=args.data, val_data=args.val_data, weights=args.weights, resume=args.resume,
        epochs=args.epochs, batch_size=args.batch_size, lr=args.lr, workers=args.workers,
        val_interval=args.val_interval,
    )
    result, out = train(load_recipe(args.recipe), options)
    if rank == 0:
        best = f", best mAP {100 * result.best_map:.1f} % -> {out / 'best.ckpt'}" if result.best_map is not None else ""
        print(f"trained {result.epochs} epochs ({result.steps} steps){best}; state in {out / LAST}")
    return 0
