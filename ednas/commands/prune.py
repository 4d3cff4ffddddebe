"""`ednas prune`: latency-targeted structured channel pruning (torch-pruning), optional
distillation fine-tune, re-evaluation. Writes CKPT, CKPT's ARCH.yml and a JSON summary."""

from __future__ import annotations

import argparse

from ednas.commands._common import add_batch_size, add_recipe, local_threads, nonnegative_int, positive_float


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
                        help="with its unit: e.g. 8ms or 8000us (absolute, on this machine now) or 75%% or "
                             "0.75x (of the unpruned model)")
    target.add_argument("--ratio", type=float, help="fraction of every width to remove, e.g. 0.3")
    p.add_argument("--table", help="latency table (CSV) to search with; default: measure candidates")
    p.add_argument("--threads", type=local_threads, default=2, help="ONNX Runtime threads for timing")
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


def run(args: argparse.Namespace) -> int:
    from pathlib import Path

    from ednas.commands._common import load_model
    from ednas.compress.prune.job import PruneOptions, parse_target, prune

    options = PruneOptions(
        out=Path(args.out), target=parse_target(args.target_latency) if args.target_latency is not None else None,
        ratio=args.ratio, table=args.table, threads=args.threads, calib=args.calib, images=args.images,
        ann=args.ann, finetune_epochs=args.finetune_epochs, data=args.data, batch_size=args.batch_size, lr=args.lr,
    )
    options.check()  # refuse bad options before loading the model
    recipe, model = load_model(args.recipe, args.weights)
    result = prune(recipe, model, args.weights, options)
    s = result.summary
    lat = s["latency"]
    print(f"pruned {s['ratio']:.1%} of every width: {s['params']['before']:,} -> {s['params']['after']:,} params, "
          f"{s['macs']['before'] / 1e9:.3f} -> {s['macs']['after'] / 1e9:.3f} GMAC, measured "
          f"{lat['relative_measured']:.3f}x the unpruned latency ({lat['pruned_ms']:.2f} vs {lat['unpruned_ms']:.2f} ms)")
    if "mAP" in s:
        m = s["mAP"]
        print(f"mAP before {100 * m['before']:.1f} %, after pruning {100 * m['after_pruning']:.1f} %")
        if "after_finetune" in m:
            print(f"mAP after {args.finetune_epochs} fine-tune epochs {100 * m['after_finetune']:.1f} %")
    print(f"wrote {result.checkpoint}, {result.arch}, {result.summary_path}")
    return 0
