"""Overfit check of the trainer: train on a few coco-train128 images until AP50 on those same
images reaches a target; print the AP50 curve and the wall time.

    python benchmarks/overfit.py [--coco DIR] [--images 8] [--recipe enhanced_nanodet_s]
        [--size 320] [--weights CKPT [--reinit-head]] [--target 0.9] [--eval-every 10]
        [--max-steps 1000] [--threads 1]

--coco defaults to $EDNAS_TEST_COCO. Without augmentation (add --augment for the full
NanoDet-Plus pipeline) each step sees the same 8 images, so a correct loss / assigner /
decoding chain must drive AP50 on them towards 1. Exit status 0 when the target is reached,
1 otherwise. The whole batch is the 8 images; one epoch = one optimizer step.

Expected: from the released weights (`ednas import-onnx ... --out s.ckpt`, then
`--weights s.ckpt`) AP50 on 8 images starts near the released model's level and passes 0.9
within a few dozen steps; from scratch it takes a few hundred steps (a GPU run). With
--reinit-head the backbone and neck come from --weights and the head starts from its fresh
initialisation (the detection head has to be learnt again; the aux branch always is).
Measured: --weights s.ckpt --reinit-head --size 256 reached AP50 0.910 after 30 steps, 223 s
wall on a shared 2-core CPU (load ~3, one thread); AP50 0.385 / 0.867 / 0.910 at steps 10/20/30.

One torch thread by default: on a shared 2-core machine two threads made steps 10-20x slower.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import os
import platform
import sys
import tempfile
import time
from pathlib import Path


def subset_json(ann: Path, n: int, out: Path) -> Path:
    """The first `n` images of a COCO json (with their annotations) written to `out`."""
    gt = json.loads(ann.read_text())
    images = gt["images"][:n]
    ids = {img["id"] for img in images}
    gt = {**gt, "images": images, "annotations": [a for a in gt["annotations"] if a["image_id"] in ids]}
    out.write_text(json.dumps(gt))
    return out


def reinit_head(trainer) -> None:
    """Re-initialise the detection head of `trainer`'s model in place (after the trainer has
    loaded --weights and unfolded its BatchNorms), and restart the EMA from the result.

    Done here, not by saving a checkpoint with a fresh head: the trainer would take the fresh
    head's BNs (running mean 0, variance 1) for folded ones and "unfold" them to keep their
    eval output, shrinking their scale to the std of the tiny initial activations (~1e-2).
    The head's BN statistics are then measured on the training images: the 0.01-std convs
    give activations of variance ~1e-5, and a running variance left at 1 needs ~100 steps of
    momentum 0.1 to come down, all the while the evaluated (eval-mode) head scores < 0.05."""
    import torch
    from torch import nn

    from ednas.train.ema import ModelEMA

    head = trainer.model.head
    for m in head.modules():
        if isinstance(m, nn.BatchNorm2d):
            m.reset_parameters()
    head.init_weights()
    bns = [m for m in head.modules() if isinstance(m, nn.BatchNorm2d)]
    model = trainer.model
    momenta = [bn.momentum for bn in bns]
    with torch.no_grad():
        for bn in bns:
            bn.reset_running_stats()
            bn.momentum = None  # cumulative average over the batches below
        model.train()
        for img in trainer._images(trainer.cfg.bn_unfold_images):
            model.forward_train(img, detach_aux=True)
        for bn, momentum in zip(bns, momenta):
            bn.momentum = momentum
    trainer.ema = ModelEMA(trainer.model, trainer.cfg.ema_decay, trainer.cfg.ema_warmup)


def _load() -> str:
    return "/".join(f"{x:.1f}" for x in os.getloadavg())


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--coco", default=os.environ.get("EDNAS_TEST_COCO"), help="coco-train128 folder")
    parser.add_argument("--images", type=int, default=8)
    parser.add_argument("--recipe", default="enhanced_nanodet_s")
    parser.add_argument("--size", type=int, default=None, help="input size (default: the recipe's)")
    parser.add_argument("--weights", help="initial checkpoint (default: from scratch)")
    parser.add_argument("--reinit-head", action="store_true",
                        help="keep backbone + neck of --weights, re-initialise the head")
    parser.add_argument("--threads", type=int, default=1, help="torch intra-op threads")
    parser.add_argument("--target", type=float, default=0.9, help="AP50 to reach")
    parser.add_argument("--eval-every", type=int, default=10, help="steps between evaluations")
    parser.add_argument("--max-steps", type=int, default=1000)
    parser.add_argument("--lr", type=float, default=None, help="peak learning rate (default: the recipe's)")
    parser.add_argument("--warmup", type=int, default=20, help="warm-up steps")
    parser.add_argument("--augment", action="store_true", help="use the NanoDet-Plus augmentation")
    parser.add_argument("--out", help="output folder (default: a temporary one)")
    args = parser.parse_args()
    if not args.coco:
        parser.error("give --coco or set EDNAS_TEST_COCO")
    if args.reinit_head and not args.weights:
        parser.error("--reinit-head needs --weights")
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")

    import torch

    from ednas.data.coco import CocoDataset
    from ednas.data.transforms import TorchDetectionDataset, TrainTransform, ValTransform
    from ednas.recipe import load_recipe
    from ednas.train.trainer import Trainer

    torch.set_num_threads(args.threads)
    out = Path(args.out or tempfile.mkdtemp(prefix="overfit_"))
    out.mkdir(parents=True, exist_ok=True)
    coco = Path(args.coco)
    ann = subset_json(coco / "annotations" / "instances_train128.json", args.images, out / "subset.json")

    recipe = load_recipe(args.recipe)
    model = recipe.model if args.size is None else dataclasses.replace(recipe.model, input_size=args.size)
    train = dataclasses.replace(
        recipe.train, epochs=args.max_steps, batch_size=args.images, workers=0,
        warmup_steps=args.warmup, val_interval=args.eval_every, lr=args.lr or recipe.train.lr,
    )
    recipe = dataclasses.replace(recipe, model=model, train=train)
    dataset = CocoDataset(coco / "images", ann, recipe.class_names)
    transform = (TrainTransform if args.augment else ValTransform).from_config(recipe.data, model.input_size)
    trainer = Trainer(recipe, out / "run", TorchDetectionDataset(dataset, transform), dataset,
                      weights=args.weights, progress=False)
    if args.reinit_head:
        reinit_head(trainer)

    print(f"# {platform.node()} {platform.processor() or platform.machine()}, torch {torch.__version__}, "
          f"{torch.get_num_threads()} threads, device {trainer.env.device}")
    print(f"# {recipe.name} @ {model.input_size}, {args.images} images, "
          f"{'augmented' if args.augment else 'no augmentation'}, weights {args.weights or 'scratch'}"
          f"{' (head re-initialised)' if args.reinit_head else ''}, load {_load()}")
    if args.weights:
        start = trainer.evaluate()
        print(f"step 0  AP50 {start['AP50']:.3f}  mAP {start['mAP']:.3f}")
    print("step  loss    qfl     giou    dfl     AP50   mAP    train_s  total_s")
    t0 = time.perf_counter()
    train_s = 0.0
    while trainer.epoch < args.max_steps:
        trainer.fit(stop_after=args.eval_every)
        metrics = trainer.last_metrics or {}
        lines = [json.loads(line) for line in (out / "run" / "log.jsonl").read_text().splitlines()]
        record = lines[-1]
        train_s += sum(line["seconds"] for line in lines[-args.eval_every:])
        print(f"{trainer.step:4d}  {record['loss']:.3f}  {record['qfl']:.3f}  {record['giou']:.3f}  "
              f"{record['dfl']:.3f}  {metrics.get('AP50', float('nan')):.3f}  {metrics.get('mAP', float('nan')):.3f}  "
              f"{train_s:7.0f}  {time.perf_counter() - t0:7.0f}", flush=True)
        if metrics.get("AP50", 0.0) >= args.target:
            print(f"reached AP50 {metrics['AP50']:.3f} >= {args.target} after {trainer.step} steps, "
                  f"{time.perf_counter() - t0:.0f} s wall ({train_s:.0f} s training), load {_load()}")
            return 0
    ap50 = (trainer.last_metrics or {}).get("AP50", float("nan"))
    print(f"AP50 {ap50:.3f} < {args.target} after {trainer.step} steps, {time.perf_counter() - t0:.0f} s wall")
    return 1


if __name__ == "__main__":
    sys.exit(main())
