"""`ednas data`: dataset utilities (`ednas data synth`: a synthetic COCO-format set)."""

from __future__ import annotations

import argparse

from ednas.commands._common import positive_float, positive_int


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("data", help="dataset utilities (synthetic data)", description="Dataset utilities.")
    actions = p.add_subparsers(dest="action", required=True, metavar="ACTION")
    synth = actions.add_parser(
        "synth", help="write a synthetic COCO-format shapes dataset",
        description="Coloured shapes (circle, square, triangle, star, ring, cross) on cluttered "
                    "backgrounds: DIR/images/*.jpg, DIR/annotations/{train,val}.json. "
                    "Deterministic given --seed.",
    )
    synth.add_argument("--out", required=True, metavar="DIR", help="output folder")
    synth.add_argument("--images", required=True, type=positive_int, metavar="N", help="number of images")
    synth.add_argument("--size", type=positive_int, default=320, help="image width in pixels (default 320)")
    synth.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    synth.add_argument("--val-fraction", type=float, default=0.2,
                       help="share of images in the held-out val split (default 0.2)")
    synth.add_argument("--min-object", type=positive_float, default=8.0, metavar="PX",
                       help="smallest object diameter in pixels (default 8; sizes are log-uniform "
                            "up to half the shorter image side)")
    synth.set_defaults(func=run_synth)


def run_synth(args: argparse.Namespace) -> int:
    from pathlib import Path

    from ednas.data.classes import SHAPE_CLASSES
    from ednas.data.synth import generate
    from ednas.io import atomic_dir, check_output

    # built beside --out and swapped in whole: a killed run leaves the old set or the new one;
    # an existing folder is replaced only if it is an earlier synthetic set
    check_output(args.out, folder=True)
    with atomic_dir(args.out, marker="annotations/train.json") as stage:
        out = generate(stage, args.images, args.size, args.seed, args.val_fraction, args.min_object)
    root = Path(args.out)
    print(f"wrote {out.num_train + out.num_val} images ({out.num_train} train, {out.num_val} val), "
          f"{out.num_boxes} boxes of {len(SHAPE_CLASSES)} classes ({', '.join(SHAPE_CLASSES)})")
    print(f"  images: {root / out.images.name}\n  train:  {root / 'annotations' / out.train.name}\n"
          f"  val:    {root / 'annotations' / out.val.name}")
    return 0
