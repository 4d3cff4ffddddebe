"""Synthetic check of the trainer: train from scratch on the synthetic shapes set for a fixed
wall-clock budget, evaluate on the held-out split after every epoch, print the AP50 curve.

    python benchmarks/train_synthetic.py [--recipe recipes/synthetic_shapes.yml] [--images 1250] [--min-object 20]
        [--budget 600] [--epochs N] [--threads 1] [--data DIR] [--out DIR] [--target 0.6]

Generates `--images` images at the recipe's input size (80 % train, 20 % held out) unless
--data points at an existing `ednas data synth` folder. The cosine schedule runs over the
recipe's (or --epochs) epochs; training stops at the first evaluation past --budget seconds
of wall time (data generation excluded, evaluation included). Exit status 0 when AP50 on the
held-out split reaches --target within --budget.

One torch thread by default: on a shared 2-core machine two threads made each step 10-20x
slower (the threads spin waiting for each other), see the header of recipes/synthetic_shapes.yml.
Both cores are used by data parallelism instead (one thread per process, half the batch each):

    ednas data synth --out /tmp/synth --images 1250 --size 128 --min-object 20
    torchrun --nproc_per_node 2 benchmarks/train_synthetic.py --data /tmp/synth
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

RECIPE = Path(__file__).resolve().parent.parent / "recipes" / "synthetic_shapes.yml"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--recipe", default=str(RECIPE))
    parser.add_argument("--images", type=int, default=1250, help="images to generate (train + val)")
    parser.add_argument("--min-object", type=float, default=20.0, help="smallest object diameter (px)")
    parser.add_argument("--data", help="an existing `ednas data synth` folder (skip generation)")
    parser.add_argument("--budget", type=float, default=600.0, help="wall seconds of training + evaluation")
    parser.add_argument("--epochs", type=int, help="schedule length (default: the recipe's)")
    parser.add_argument("--threads", type=int, default=1, help="torch intra-op threads")
    parser.add_argument("--target", type=float, default=0.6, help="held-out AP50 to reach")
    parser.add_argument("--out", help="output folder (default: a temporary one)")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")

    import torch

    from ednas.data.synth import generate
    from ednas.recipe import load_recipe
    from ednas.train.datasets import build_train_set, build_val_set, with_data
    from ednas.train import distributed
    from ednas.train.trainer import Trainer

    torch.set_num_threads(args.threads)
    out = Path(args.out or tempfile.mkdtemp(prefix="train_synthetic_"))
    recipe = load_recipe(args.recipe)
    if args.epochs:
        recipe = dataclasses.replace(recipe, train=dataclasses.replace(recipe.train, epochs=args.epochs))
    main_process = int(os.environ.get("RANK", "0")) == 0
    if int(os.environ.get("WORLD_SIZE", "1")) > 1 and not (args.data and args.out):
        sys.exit("with torchrun, give --data (made once with `ednas data synth`) and --out (shared by all processes)")
    data = Path(args.data) if args.data else out / "synth"
    if not args.data:
        t0 = time.perf_counter()
        made = generate(data, args.images, size=recipe.model.input_size, seed=0, min_object=args.min_object)
        print(f"# generated {made.num_train} train + {made.num_val} val images ({made.num_boxes} boxes) "
              f"at {recipe.model.input_size} px in {time.perf_counter() - t0:.0f} s")
    recipe = with_data(recipe, str(data), None)
    train_set, val_set = build_train_set(recipe), build_val_set(recipe)
    trainer = Trainer(recipe, out / "run", train_set, val_set, progress=False)
    say = print if main_process else (lambda *a, **k: None)
    params = sum(p.numel() for n, p in trainer.model.named_parameters() if not n.startswith("aux_"))

    cfg = recipe.train
    say(f"# {platform.node()} {platform.machine()}, {os.cpu_count()} cpus, torch {torch.__version__}, "
        f"{torch.get_num_threads()} thread(s), load {_load()}")
    say(f"# {recipe.name}: {recipe.model.input_size} px, neck {recipe.model.neck.width}, {params:,} params "
        f"(deploy), batch {cfg.batch_size}, lr {cfg.lr}, {cfg.epochs} epochs x {trainer.steps_per_epoch} steps, "
        f"{len(train_set)} train / {len(val_set)} val images")
    say("epoch  step  loss    AP50   mAP    train_s  wall_s  s/step  load")
    t0 = time.perf_counter()
    train_s, curve = 0.0, []
    while trainer.epoch < cfg.epochs:
        trainer.fit(stop_after=1)
        record = json.loads((out / "run" / "log.jsonl").read_text().splitlines()[-1])
        train_s += record["seconds"]
        wall = time.perf_counter() - t0
        ap50, m = record.get("val_AP50", float("nan")), record.get("val_mAP", float("nan"))
        curve.append((trainer.epoch, trainer.step, wall, ap50))
        say(f"{trainer.epoch:5d}  {trainer.step:4d}  {record['loss']:.3f}  {ap50:.3f}  {m:.3f}  "
            f"{train_s:7.0f}  {wall:6.0f}  {train_s / trainer.step:6.2f}  {_load()}", flush=True)
        if distributed.broadcast_object(wall >= args.budget) and trainer.epoch < cfg.epochs:
            say(f"# budget of {args.budget:.0f} s spent after epoch {trainer.epoch} of {cfg.epochs}")
            break
    evaluated = [c for c in curve if c[3] == c[3]]  # epochs with an evaluation (AP50 not NaN)
    in_budget = [c for c in evaluated if c[2] <= args.budget] or evaluated[:1]
    best = max(in_budget, key=lambda c: c[3]) if in_budget else (0, 0, 0.0, float("nan"))
    reached = best[3] >= args.target
    say(f"{'reached' if reached else 'did not reach'} AP50 {args.target} within {args.budget:.0f} s: best held-out "
        f"AP50 {best[3]:.3f} at epoch {best[0]} ({best[2]:.0f} s wall); {train_s / max(trainer.step, 1):.2f} s "
        f"per step of {cfg.batch_size} images; run in {out / 'run'}")
    return 0 if reached else 1


def _load() -> str:
    return "/".join(f"{x:.1f}" for x in os.getloadavg())


if __name__ == "__main__":
    sys.exit(main())
