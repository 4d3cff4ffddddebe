"""`ednas supernet init|train|extract|eval`: the weight-sharing supernet of a search space."""

from __future__ import annotations

import argparse
from pathlib import Path

from ednas.commands._common import local_threads, nonnegative_int, positive_float, positive_int, unit_fraction


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("supernet", help="weight-sharing supernet: init, train, extract, eval",
                       description="Every architecture of a search space with usable weights from one trained model.")
    verbs = p.add_subparsers(dest="verb", required=True, metavar="VERB")

    init = verbs.add_parser("init", help="build a supernet from a trained base model (or from scratch)")
    init.add_argument("--space", metavar="SPACE.yml", help="search space (default: search_spaces/enhanced_nanodet.yml)")
    init.add_argument("--from", dest="source", metavar="MODEL", help="trained base model: released .onnx or ednas .ckpt")
    init.add_argument("--images", metavar="DIR", help="unlabeled images: BN statistics of an ONNX model, fitting the other neck block type")
    init.add_argument("--classes", default="coco", metavar="NAME|a,b,..", help="class names (coco, shapes or a comma list)")
    init.add_argument("--calib-images", type=positive_int, default=64, metavar="N", help="images used from --images (64)")
    init.add_argument("--fit-steps", type=nonnegative_int, default=120, metavar="N", help="steps per fitted neck block (120; 0: none)")
    init.add_argument("--seed", type=nonnegative_int, default=0)
    init.add_argument("--out", required=True, metavar="SUPER.pt")
    init.set_defaults(func=run_init)

    train = verbs.add_parser("train", help="sandwich-rule training with in-place distillation (torchrun for many processes)")
    train.add_argument("supernet", metavar="SUPER.pt")
    train.add_argument("--recipe", required=True, metavar="RECIPE", help="data, augmentation and class names")
    train.add_argument("--images", metavar="DIR", help="training images (default: the recipe's data.train)")
    train.add_argument("--ann", metavar="JSON|DIR", help="their annotations (COCO json or VOC folder)")
    train.add_argument("--teacher", metavar="MODEL", help="distil from this trained model (.onnx or .ckpt of the base)")
    stop = train.add_mutually_exclusive_group(required=True)
    stop.add_argument("--epochs", type=positive_int, metavar="N")
    stop.add_argument("--minutes", type=positive_float, metavar="M", help="train for M minutes of wall time")
    train.add_argument("--random-subnets", type=nonnegative_int, default=2, metavar="K", help="random sub-networks per step (2)")
    train.add_argument("--lr", type=positive_float, default=2e-4)
    train.add_argument("--batch-size", type=positive_int, default=16, metavar="N")
    train.add_argument("--distill-only", action="store_true", help="no detection loss (images need no labels; needs --teacher)")
    train.add_argument("--inplace-kd-from", type=unit_fraction, default=0.5, metavar="PART",
                       help="without --teacher: distil from the largest sub-network from this part of the run on "
                            "(0.5; 0: from the first step)")
    train.add_argument("--threads", type=local_threads, default=None, metavar="N", help="torch threads per process")
    train.add_argument("--save-every", type=positive_int, default=25, metavar="N", help="steps between resumable states (25)")
    train.add_argument("--resume", action="store_true", help="continue a killed or finished run from SUPER.pt.state")
    train.add_argument("--seed", type=nonnegative_int, default=0)
    train.set_defaults(func=run_train)

    extract = verbs.add_parser("extract", help="a standalone checkpoint (+ ARCH.yml) of one architecture")
    extract.add_argument("supernet", metavar="SUPER.pt")
    extract.add_argument("arch", metavar="ARCH", help="ARCH.yml, or base | largest | smallest | uniform-W (e.g. uniform-0.75)")
    extract.add_argument("--images", metavar="DIR", help="recalibrate BatchNorm on these images first (recommended)")
    extract.add_argument("--calib-images", type=positive_int, default=64, metavar="N")
    extract.add_argument("--out", required=True, metavar="CKPT")
    extract.set_defaults(func=run_extract)

    ev = verbs.add_parser("eval", help="COCO metrics of one architecture (slice, recalibrate BN, evaluate)")
    ev.add_argument("supernet", metavar="SUPER.pt")
    ev.add_argument("arch", metavar="ARCH", help="ARCH.yml, or base | largest | smallest | uniform-W")
    ev.add_argument("--images", required=True, metavar="DIR")
    ev.add_argument("--ann", required=True, metavar="JSON|DIR")
    ev.add_argument("--calib", metavar="DIR", help="BN calibration images (default: --images)")
    ev.add_argument("--calib-images", type=positive_int, default=64, metavar="N")
    ev.add_argument("--eval-images", type=positive_int, default=None, metavar="N")
    ev.add_argument("--threads", type=local_threads, default=1, metavar="N")
    ev.set_defaults(func=run_eval)


def resolve_arch(text: str, supernet):
    """An ARCH.yml path or a named configuration of the supernet's space."""
    from ednas.arch import ArchSpec
    from ednas.supernet.supernet import widest
    from ednas.supernet.train import smallest

    space = supernet.space
    named = {"base": lambda: space.base, "largest": lambda: widest(space), "smallest": lambda: smallest(space)}
    if text in named:
        arch = named[text]()
    elif text.startswith("uniform-"):
        try:
            arch = space.uniform(float(text.split("-", 1)[1]))
        except ValueError:
            from ednas.errors import InputError

            raise InputError(f"{text}: write uniform-W with a width of the space, e.g. uniform-0.75") from None
    else:
        arch = ArchSpec.load(text)
    supernet.check(arch)
    return arch


def _class_names(text: str) -> tuple[str, ...]:
    from ednas.data.classes import NAMED_CLASS_LISTS

    if text in NAMED_CLASS_LISTS:
        return NAMED_CLASS_LISTS[text]
    return tuple(n.strip() for n in text.split(",") if n.strip())


CHECKPOINT_SUFFIXES = (".ckpt", ".pt", ".pth")


def _checkpoint_out(out: str, option: str = "--out") -> Path:
    """The output path of a torch file, refused before any work when it cannot be written or
    does not name a checkpoint (a `.json` or `.yml` there would be taken for something else)."""
    from ednas.errors import InputError
    from ednas.io import check_output

    path = check_output(out)
    if Path(out).suffix.lower() not in CHECKPOINT_SUFFIXES:
        raise InputError(f"{option} {out}: give a checkpoint path ending in {', '.join(CHECKPOINT_SUFFIXES)} "
                         f"(e.g. {Path(out).with_suffix('.ckpt').name})")
    return path


def run_init(args: argparse.Namespace) -> int:
    from ednas.errors import InputError
    from ednas.arch.space import SearchSpace
    from ednas.supernet.init import init_supernet

    _checkpoint_out(args.out)
    space = SearchSpace.load(args.space)
    names = _class_names(args.classes)
    if len(names) != space.base.num_classes:
        raise InputError(f"--classes gives {len(names)} names, the space's base predicts "
                         f"{space.base.num_classes} classes")
    supernet = init_supernet(space, args.out, args.source, args.images, args.calib_images, args.fit_steps,
                             args.seed, names)
    fit = supernet.meta.get("fit_error")
    print(f"supernet of space {space.name!r} ({len(supernet.tensors)} tensors, "
          f"{sum(t.numel() for t in supernet.parameters()):,} weights) -> {args.out}")
    if args.source:
        print(f"base sub-network = {args.source}" + (
            "; other block type fitted, relative error " + ", ".join(f"{v:.2f}" for v in fit.values()) if fit else ""))
    return 0


def run_train(args: argparse.Namespace) -> int:
    import dataclasses

    import torch

    from ednas.recipe import load_recipe
    from ednas.supernet.init import load_trained
    from ednas.supernet.supernet import Supernet
    from ednas.supernet.train import SupernetTrainConfig, SupernetTrainer
    from ednas.data import split_from_paths
    from ednas.train.datasets import build_train_set

    if args.threads:
        torch.set_num_threads(args.threads)
    supernet = Supernet.load(args.supernet)
    recipe = load_recipe(args.recipe)
    if bool(args.images) != bool(args.ann):
        from ednas.errors import InputError

        raise InputError("give both --images DIR and --ann JSON|DIR, or neither (to use the recipe's data.train)")
    if args.images:
        recipe = dataclasses.replace(recipe, data=dataclasses.replace(recipe.data, train=split_from_paths(args.images, args.ann)))
    # images are loaded at the space's largest size and scaled down per step
    size = supernet.space.config.input_size.max
    recipe = dataclasses.replace(recipe, model=recipe.model.replace(input_size=size))
    train_set = build_train_set(recipe)
    teacher = load_trained(args.teacher, supernet.space.base) if args.teacher else None
    cfg = SupernetTrainConfig(random_subnets=args.random_subnets, epochs=args.epochs, minutes=args.minutes,
                              lr=args.lr, batch_size=args.batch_size, det_weight=0.0 if args.distill_only else 1.0,
                              inplace_kd_from=args.inplace_kd_from, save_every=args.save_every, seed=args.seed)
    trainer = SupernetTrainer(supernet, args.supernet, recipe, train_set, cfg, teacher)
    if args.resume:
        trainer.resume()
    result = trainer.fit()
    if trainer.env.is_main:
        print(f"trained {result['steps']} steps ({result['seconds'] / 60:.1f} min) -> {args.supernet}")
    return 0


def run_extract(args: argparse.Namespace) -> int:
    from ednas.io import output_set, write_yaml
    from ednas.models.checkpoint import save_checkpoint
    from ednas.supernet.evaluate import CalibImages, recalibrated_subnet
    from ednas.supernet.supernet import Supernet

    out = _checkpoint_out(args.out)
    supernet = Supernet.load(args.supernet)
    arch = resolve_arch(args.arch, supernet)
    if args.images:
        model = recalibrated_subnet(supernet, arch, CalibImages(args.images, args.calib_images))
    else:
        model = supernet.extract(arch)
    with output_set(out, out.with_suffix(".arch.yml")) as (ckpt_tmp, arch_tmp):  # one set: old or new
        save_checkpoint(ckpt_tmp, model, source=str(args.supernet))
        write_yaml(arch_tmp, arch.to_dict())
    print(f"{arch.hash()} ({model.num_params():,} parameters, {arch.input_size} px) -> {out} and "
          f"{out.with_suffix('.arch.yml')}")
    return 0


def run_eval(args: argparse.Namespace) -> int:
    from ednas.data import load_eval_set
    from ednas.supernet.evaluate import CalibImages, SupernetEvaluator, class_names, subset
    from ednas.supernet.supernet import Supernet

    supernet = Supernet.load(args.supernet)
    arch = resolve_arch(args.arch, supernet)
    dataset = subset(load_eval_set(args.images, args.ann, class_names(supernet)), args.eval_images)
    evaluator = SupernetEvaluator(supernet, dataset, CalibImages(args.calib or args.images, args.calib_images),
                                  threads=args.threads, progress=True)
    m = evaluator.metrics(arch)
    print(f"{arch.hash()} on {m['images']} images: mAP {100 * m['mAP']:.1f}  AP50 {100 * m['AP50']:.1f}  "
          f"AP75 {100 * m['AP75']:.1f}")
    return 0
