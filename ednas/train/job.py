"""The training job: a recipe plus what a run overrides (data, settings, a starting checkpoint,
resume) -> the recipe actually trained, its output folder, and the Trainer's result.
`ednas train` and benchmarks call `train(recipe, options)`.

Errors name the argument (`resume`, `out`, `data`), never a command-line flag.
"""

from __future__ import annotations

import dataclasses
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ednas.errors import InputError
from ednas.recipe import Recipe

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class TrainOptions:
    """What a run changes of its recipe; None keeps the recipe's value."""

    out: Path | None = None  # output folder (default: runs/<recipe name>)
    data: str | None = None  # training data folder or json; replaces data.train (see datasets.with_data)
    val_data: str | None = None  # validation data; replaces data.val
    weights: str | None = None  # initialise from this checkpoint (its architecture is used)
    resume: bool = False  # continue from OUT/last.ckpt
    epochs: int | None = None  # train.epochs
    batch_size: int | None = None  # train.batch_size (all processes together)
    lr: float | None = None  # train.lr
    workers: int | None = None  # train.workers
    val_interval: int | None = None  # train.val_interval


def plan(recipe: Recipe, options: TrainOptions) -> tuple[Recipe, Path]:
    """The recipe this run trains and its output folder, checked before any work.

    The network comes from the run being resumed, else from `weights` (a pruned or searched
    model keeps its own shape), else from the recipe; input size and classes from the recipe."""
    from ednas.io import check_output
    from ednas.models.checkpoint import checkpoint_arch
    from ednas.train.datasets import with_data
    from ednas.train.trainer import LAST

    overrides = {f: getattr(options, f) for f in ("epochs", "batch_size", "lr", "workers", "val_interval")}
    train_cfg = dataclasses.replace(recipe.train, **{k: v for k, v in overrides.items() if v is not None})
    recipe = with_data(dataclasses.replace(recipe, train=train_cfg), options.data, options.val_data)
    out = Path(options.out or Path("runs") / recipe.name)
    check_output(out, folder=True)
    if (out / LAST).exists() and not options.resume:
        raise InputError(f"{out} already holds a training run; add `resume` to continue it or give another `out`")
    if options.resume and not (out / LAST).exists():
        raise InputError(f"{out}: no {LAST} to resume from; drop `resume` or give the run's `out`")
    source = out / LAST if options.resume else options.weights
    if source:
        arch = checkpoint_arch(source)
        arch = dataclasses.replace(arch, input_size=recipe.model.input_size, num_classes=recipe.model.num_classes)
        if arch != recipe.model:
            log.info("using the architecture of %s", source)
        recipe = dataclasses.replace(recipe, model=arch)
    return recipe, out


def train(recipe: Recipe, options: TrainOptions) -> tuple[Any, Path]:
    """Train as `options` say; (the Trainer's FitResult, the output folder)."""
    from ednas.train.datasets import build_train_set, build_val_set
    from ednas.train.trainer import Trainer

    recipe, out = plan(recipe, options)
    trainer = Trainer(recipe, out, build_train_set(recipe), build_val_set(recipe), weights=options.weights,
                      resume=options.resume)
    return trainer.fit(), out
