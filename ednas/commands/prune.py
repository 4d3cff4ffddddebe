"""`ednas prune`: latency-targeted structured channel pruning (torch-pruning), optional
distillation fine-tune, re-evaluation. Writes CKPT, CKPT's ARCH.yml and a JSON summary."""

from __future__ import annotations

import argparse
import re

from ednas.commands._common import add_batch_size, add_recipe, nonnegative_int, positive_float, positive_int


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "prune", help="prune channels to a latency target or ratio, optionally fine-tune",
        description="Structured channel pruning of an Enhanced NanoDet checkpoint. The pruned model "
                    "stays an architecture description (per-row widths, neck and head width), so it "
                    "rebuilds, exports and is priced by the latency table.",
    )
    add_recipe(p)
    p.add_argument("--weights", required=True, metavar="CKPT", help="checkpoint to prune")
    target = p.add_mutually_exclusive_group(required=True)
    target.add_argument("--target-latency", metavar="T",
                        help="e.g. 8ms (absolute, on this machine now) or 75%% (of the unpruned model)")
    target.add_argument("--ratio", type=float, help="fraction of every width to remove, e.g. 0.3")
    p.add_argument("--table", help="latency table (CSV) to search with; default: measure candidates")
    p.add_argument("--threads", type=positive_int, default=2, help="ONNX Runtime threads for timing")
    p.add_argument("--calib", metavar="DIR",
                   help="images to recalibrate BatchNorm statistics on after pruning (default: --images)")
    p.add_argument("--images", help="evaluate before/after on these images (with --ann)")
    p.add_argument("--ann", help="COCO json (or VOC folder) for --images")
    p.add_argument("--finetune-epochs", type=nonnegative_int, default=0, help="distillation fine-tune epochs (needs --data)")
    p.add_argument("--data", help="training data for the fine-tune (as for `ednas train --data`)")
    add_batch_size(p, 16, "fine-tune batch size (default 16)")
    p.add_argument("--lr", type=positive_float, default=2e-4, help="fine-tune learning rate")
    p.add_argument("--out", required=True, metavar="CKPT",
                   help="pruned checkpoint to write; CKPT.arch.yml and CKPT.json are written with it, as one set")
    p.set_defaults(func=run)


def parse_target(text: str) -> tuple[str, float]:
    """'8ms' / '8' -> ("ms", 8.0); '75%' / '0.75x' -> ("relative", 0.75). A relative target must
    be below the unpruned model (under 100 %) and above 0; an absolute one above 0."""
    m = re.fullmatch(r"\s*([0-9]*\.?[0-9]+)\s*(ms|%|x)?\s*", text)
    from ednas.errors import InputError

    if not m:
        raise InputError(f"--target-latency {text!r}: write e.g. 8ms or 75%")
    value, unit = float(m.group(1)), m.group(2) or "ms"
    if value <= 0:
        raise InputError(f"--target-latency {text}: must be above 0")
    if unit == "ms":
        return "ms", value
    relative = value / 100 if unit == "%" else value
    if relative >= 1:
        raise InputError(f"--target-latency {text}: pruning only makes a model faster; give less than 100% "
                         "(or 1x) of the unpruned latency, e.g. 75%")
    return "relative", relative


def run(args: argparse.Namespace) -> int:
    from pathlib import Path

    from ednas.commands._common import load_model
    from ednas.errors import InputError
    from ednas.io import check_output, scratch_dir

    if args.ratio is not None and not 0 < args.ratio < 1:
        raise InputError(f"--ratio {args.ratio}: give a fraction between 0 and 1")
    if args.target_latency is not None:
        parse_target(args.target_latency)  # refuse a bad target before any work
    if args.finetune_epochs and not args.data:
        raise InputError("--finetune-epochs needs --data (the training images)")
    if bool(args.images) != bool(args.ann):
        raise InputError("give both --images and --ann, or neither")
    out = Path(args.out)
    if out.suffix in (".yml", ".yaml", ".json"):
        raise InputError(f"--out {out}: give the checkpoint path (e.g. pruned.ckpt); the .arch.yml and .json go beside it")
    for path in (out, out.with_suffix(".arch.yml"), out.with_suffix(".json")):
        check_output(path)
    recipe, model = load_model(args.recipe, args.weights)
    model.eval()
    if args.images:  # before minutes of pruning: the evaluation set must hold the images
        from ednas.commands.test import check_images_found
        from ednas.data import build_dataset, split_from_paths

        check_images_found(build_dataset(split_from_paths(args.images, args.ann), recipe.class_names),
                           args.images, args.ann)
    with scratch_dir("prune") as work:  # candidate ONNX files, fine-tune state; always removed
        return _prune(args, recipe, model, work)


def _prune(args: argparse.Namespace, recipe, model, work) -> int:
    """Find the ratio, prune, (fine-tune), evaluate, then commit the output set."""
    import json
    from pathlib import Path

    from ednas.compress.prune.latency_target import MeasuredLatency, find_ratio
    from ednas.compress.prune.weights import PruningError, prune_weights, shrink_arch
    from ednas.io import output_set
    from ednas.models import save_checkpoint
    from ednas.models.complexity import complexity
    from ednas.models.export import export_onnx

    base = model.arch
    measured = MeasuredLatency(base, args.threads, work)

    if args.ratio is not None:
        ratio, target_arch = args.ratio, shrink_arch(base, args.ratio)
        goal = None
    else:
        kind, value = parse_target(args.target_latency)
        if kind == "ms":
            base_ms = measured.time_onnx(work / "base.onnx")["median_ms"]
            goal = value / base_ms
            print(f"unpruned model: {base_ms:.2f} ms now ({args.threads} threads); target {value} ms = {goal:.3f}x")
        else:
            goal = value
        latency = measured
        if args.table:
            latency = _table_latency(args.table, base, measured)
        ratio, target_arch, rel = find_ratio(lambda r: shrink_arch(base, r), latency, goal, cost=_macs)
        if rel > goal * 1.02:
            if ratio >= 0.9:
                raise PruningError(
                    f"--target-latency {args.target_latency} is out of reach: removing 90% of every width "
                    f"still runs at {rel:.2f}x the unpruned model (target {goal:.2f}x); raise the target"
                )
            raise PruningError(
                f"--target-latency {args.target_latency}: the closest candidate measured {rel:.3f}x "
                f"(target {goal:.3f}x) at ratio {ratio:.3f}; timings may be disturbed by other load, "
                f"retry on a quiet machine or give --ratio {ratio + 0.02:.2f}"
            )
    calib = _calibration_batches(args.calib or args.images, base.input_size)
    pruned = prune_weights(model, target_arch, calib)
    before, after = complexity(model), complexity(pruned)

    onnx_path = export_onnx(pruned, work / "pruned.onnx")
    timing = measured.time_onnx(onnx_path)
    summary = {
        "recipe": recipe.name, "source": str(args.weights), "ratio": round(ratio, 4),
        "target_relative": goal,
        "params": {"before": before["params"], "after": after["params"]},
        "macs": {"before": before["macs"], "after": after["macs"]},
        "latency": {"relative_measured": round(timing["ratio"], 4), "pruned_ms": round(timing["median_ms"], 3),
                    "unpruned_ms": round(timing["probe_ms"], 3), "threads": args.threads},
        "widths": {"backbone": list(target_arch.backbone.widths) if hasattr(target_arch.backbone, "widths") else None,
                   "neck": target_arch.neck.width, "head": target_arch.head.feat_channels},
    }
    if args.table:
        try:
            summary["latency"]["relative_predicted"] = round(_table_latency(args.table, base, None)(target_arch), 4)
        except Exception as exc:  # a table that cannot price the pruned widths
            summary["latency"]["relative_predicted"] = f"n/a ({exc})"
    print(f"pruned {ratio:.1%} of every width: {before['params']:,} -> {after['params']:,} params, "
          f"{before['macs'] / 1e9:.3f} -> {after['macs'] / 1e9:.3f} GMAC, measured {timing['ratio']:.3f}x "
          f"the unpruned latency ({timing['median_ms']:.2f} vs {timing['probe_ms']:.2f} ms)")

    if args.images:
        summary["mAP"] = {"before": _evaluate(model, recipe, args), "after_pruning": _evaluate(pruned, recipe, args)}
        print(f"mAP before {100 * summary['mAP']['before']:.1f} %, "
              f"after pruning {100 * summary['mAP']['after_pruning']:.1f} %")
    if args.finetune_epochs:
        pruned = _finetune(pruned, model, recipe, args, work)
        if args.images:
            summary["mAP"]["after_finetune"] = _evaluate(pruned, recipe, args)
            print(f"mAP after {args.finetune_epochs} fine-tune epochs {100 * summary['mAP']['after_finetune']:.1f} %")

    # checkpoint, ARCH.yml and summary are one output: committed together (a kill leaves the
    # old set or the new one, never a mix; see ednas.io.output_set)
    out = Path(args.out)
    arch_path = out.with_suffix(".arch.yml")
    summary_path = out.with_suffix(".json")
    with output_set(out, arch_path, summary_path) as (tmp_ckpt, tmp_arch, tmp_summary):
        save_checkpoint(tmp_ckpt, pruned, source=str(args.weights), pruning=summary)
        pruned.arch.save(tmp_arch)
        tmp_summary.write_text(json.dumps(summary, indent=2) + "\n")
    print(f"wrote {out}, {arch_path}, {summary_path}")
    return 0



def _calibration_batches(folder: str | None, size: int, images: int = 64, batch: int = 16):
    """Pre-processed batches (N, 3, S, S) of up to `images` images of `folder` (None: no folder)."""
    if not folder:
        return None
    import torch

    from ednas.errors import InputError

    from ednas.compress.quantize.calibration import list_images, load_batch

    files = list_images(folder, images)
    if len(files) < 2:
        raise InputError(f"{folder}: BatchNorm recalibration needs at least 2 images, found {len(files)}")
    starts = list(range(0, len(files), batch))
    if len(files) - starts[-1] == 1:  # a last batch of one image: BatchNorm cannot use it
        starts.pop()
    ends = starts[1:] + [len(files)]
    return [torch.from_numpy(load_batch(files[a:b], size)) for a, b in zip(starts, ends)]


def _macs(arch) -> float:
    from ednas.models import build_model
    from ednas.models.complexity import complexity

    return complexity(build_model(arch))["macs"]


def _table_latency(table: str, base, fallback):
    """Relative latency from the table when it prices the candidate, else from `fallback`."""
    import logging

    from ednas.compress.prune.latency_target import PredictedLatency
    from ednas.latency.predictor import LatencyPredictor
    from ednas.latency.table import LatencyTable, LatencyTableError

    predicted = PredictedLatency(LatencyPredictor(LatencyTable.load(table)), base)
    if fallback is None:
        return predicted

    def relative(arch) -> float:
        try:
            return predicted(arch)
        except LatencyTableError as exc:
            logging.getLogger(__name__).info("table cannot price this candidate (%s); measuring", exc)
            return fallback(arch)

    return relative


def _evaluate(model, recipe, args) -> float:
    from ednas.commands.test import check_images_found
    from ednas.data import build_dataset, split_from_paths
    from ednas.eval.coco_eval import evaluate
    from ednas.eval.predictors import TorchPredictor

    dataset = build_dataset(split_from_paths(args.images, args.ann), recipe.class_names)
    check_images_found(dataset, args.images, args.ann)
    arch, data = model.arch, recipe.data
    result = evaluate(TorchPredictor(model), dataset, recipe.class_names, strides=arch.strides,
                      reg_max=arch.head.reg_max, keep_ratio=data.keep_ratio, mean=data.mean, std=data.std,
                      progress=False)
    return float(result["mAP"])


def _finetune(pruned, teacher, recipe, args, work):
    import dataclasses

    from ednas.models import build_model, save_checkpoint
    from ednas.train.datasets import build_train_set, with_data
    from ednas.train.trainer import Trainer

    init = work / "pruned_init.ckpt"
    save_checkpoint(init, pruned)
    train_cfg = dataclasses.replace(
        recipe.train, epochs=args.finetune_epochs, batch_size=args.batch_size, lr=args.lr,
        min_lr=args.lr / 10, warmup_steps=3, detach_epoch=0, val_interval=10**6,  # a short run
    )
    ft_recipe = with_data(dataclasses.replace(recipe, model=pruned.arch, train=train_cfg), args.data, None)
    trainer = Trainer(ft_recipe, work / "finetune", build_train_set(ft_recipe), None, weights=init, teacher=teacher, aux=False)
    trainer.fit()
    result = build_model(pruned.arch)
    result.load_state_dict({k: v for k, v in trainer.ema.model.state_dict().items()
                            if not k.startswith(("aux_fpn.", "aux_head."))}, strict=True)
    return result.eval()
