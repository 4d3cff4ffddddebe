"""Fine-tune check: one epoch of fine-tuning the released Enhanced NanoDet_s on coco-train128
must keep its accuracy on those images (|delta mAP| <= 2 points).

    python benchmarks/finetune_released.py [--weights s.ckpt | --onnx MODEL.onnx] [--coco DIR]
        [--epochs 1] [--lr 1e-4] [--warmup 2] [--batch-size 16] [--threads 1] [--tolerance 0.02]

--weights is a checkpoint from `ednas import-onnx ... --recipe enhanced_nanodet_s`; without it
the ONNX (default $EDNAS_TEST_WEIGHTS) is imported on the fly. --coco defaults to
$EDNAS_TEST_COCO. Three evaluations on the 128 images: the imported deploy model, the same
weights after the trainer has unfolded its BatchNorms (must be identical: eval outputs are
unchanged by design), and the EMA weights after fine-tuning with the full NanoDet-Plus
recipe (augmentation, aux branch, AdamW) at a small learning rate. Exit status 1 when the
fine-tuned mAP is more than --tolerance away from the imported one.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import platform
import sys
import tempfile
import time
from pathlib import Path


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--weights", help="imported released checkpoint (ednas import-onnx)")
    parser.add_argument("--onnx", default=os.environ.get("EDNAS_TEST_WEIGHTS"), help="released ONNX")
    parser.add_argument("--coco", default=os.environ.get("EDNAS_TEST_COCO"), help="coco-train128 folder")
    parser.add_argument("--recipe", default="enhanced_nanodet_s")
    parser.add_argument("--epochs", type=int, default=1)
    parser.add_argument("--lr", type=float, default=1e-4)
    parser.add_argument("--warmup", type=int, default=2, help="warm-up steps")
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--threads", type=int, default=1, help="torch intra-op threads")
    parser.add_argument("--tolerance", type=float, default=0.02, help="allowed |delta mAP| (fraction)")
    parser.add_argument("--out", help="output folder (default: a temporary one)")
    args = parser.parse_args()
    if not args.coco or not (args.weights or args.onnx):
        parser.error("give --coco and --weights or --onnx (or set EDNAS_TEST_COCO / EDNAS_TEST_WEIGHTS)")
    import logging

    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")

    import torch

    from ednas.data.coco import CocoDataset
    from ednas.data.transforms import TorchDetectionDataset, TrainTransform
    from ednas.eval.coco_eval import evaluate_model
    from ednas.models import build_model, save_checkpoint
    from ednas.models.checkpoint import load_checkpoint
    from ednas.recipe import load_recipe
    from ednas.train.trainer import Trainer

    torch.set_num_threads(args.threads)
    out = Path(args.out or tempfile.mkdtemp(prefix="finetune_released_"))
    recipe = load_recipe(args.recipe)
    weights = args.weights
    if weights is None:
        from ednas.models.onnx_import import import_onnx

        model = build_model(recipe.model)
        import_onnx(model, args.onnx)
        weights = out / "imported.ckpt"
        save_checkpoint(weights, model, source=str(args.onnx), recipe=recipe.name)
    recipe = dataclasses.replace(recipe, train=dataclasses.replace(
        recipe.train, epochs=args.epochs, lr=args.lr, warmup_steps=args.warmup,
        batch_size=args.batch_size, workers=0, val_interval=1,
    ))
    coco = Path(args.coco)
    dataset = CocoDataset(coco / "images", coco / "annotations" / "instances_train128.json", recipe.class_names)
    arch = recipe.model

    def score(model: torch.nn.Module) -> dict:
        t0 = time.perf_counter()
        result = evaluate_model(model, dataset, recipe, arch=arch, progress=False)
        result["seconds"] = time.perf_counter() - t0
        return result

    print(f"# {platform.node()} {platform.machine()}, {os.cpu_count()} cpus, torch {torch.__version__}, "
          f"{torch.get_num_threads()} thread(s), load {_load()}")
    deploy = build_model(arch)
    load_checkpoint(deploy, weights)
    before = score(deploy)

    train_set = TorchDetectionDataset(dataset, TrainTransform.from_config(recipe.data, arch.input_size))
    trainer = Trainer(recipe, out / "run", train_set, dataset, weights=weights, progress=False)
    unfolded = score(trainer.ema.model)
    t0 = time.perf_counter()
    trainer.fit()
    train_s = time.perf_counter() - t0  # includes the end-of-epoch evaluation
    after = trainer.last_metrics or {}

    cfg = recipe.train
    print(f"# {recipe.name} @ {arch.input_size}: {args.epochs} epoch(s) x {trainer.steps_per_epoch} steps of "
          f"{cfg.batch_size} on {len(dataset)} coco-train128 images, lr {cfg.lr}, warm-up {cfg.warmup_steps} "
          f"steps, augmented; {train_s:.0f} s (load {_load()})")
    print(f"{'':<22}{'mAP':>7}{'AP50':>7}{'AP75':>7}")
    for name, m in (("imported (deploy)", before), ("after BN unfold", unfolded), ("fine-tuned (EMA)", after)):
        print(f"{name:<22}{100 * m['mAP']:7.2f}{100 * m['AP50']:7.2f}{100 * m['AP75']:7.2f}")
    delta = after["mAP"] - before["mAP"]
    ok = abs(delta) <= args.tolerance
    print(f"delta mAP {100 * delta:+.2f} points (allowed +-{100 * args.tolerance:.1f}): {'ok' if ok else 'FAIL'}")
    return 0 if ok else 1


def _load() -> str:
    return "/".join(f"{x:.1f}" for x in os.getloadavg())


if __name__ == "__main__":
    sys.exit(main())
