"""`ednas gradcam`: a Grad-CAM heatmap of one class (or one detection) over an image."""

from __future__ import annotations

import argparse

from ednas.commands._common import nonnegative_int, unit_fraction


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "gradcam", help="Grad-CAM heatmap of a class score over an image",
        description="ednas gradcam RECIPE --weights CKPT --image IMG [--class NAME] [--level L | --box K] "
                    "--out PNG. Explains the class logit summed over one pyramid level's priors "
                    "(or at the prior of one detection) through that level's neck map.",
    )
    p.add_argument("recipe", metavar="RECIPE",
                   help="recipe YAML or a bundled recipe name (e.g. enhanced_nanodet_s)")
    p.add_argument("--weights", required=True, metavar="CKPT", help="PyTorch checkpoint")
    p.add_argument("--image", required=True, metavar="IMG", help="image to explain")
    p.add_argument("--class", dest="class_name", metavar="NAME",
                   help="class to explain (default: that of the top-scoring detection)")
    group = p.add_mutually_exclusive_group()
    group.add_argument("--level", type=nonnegative_int, metavar="L",
                       help="pyramid level index, 0 = finest (default: that of the class's strongest detection)")
    group.add_argument("--box", type=nonnegative_int, metavar="K",
                       help="explain only the K-th detection of the class (0 = highest score), at its own prior")
    p.add_argument("--method", metavar="NAME",
                   help="channel weights: averaged gradients (gradcam, default for a level) or per-position "
                        "gradients (hirescam, default for --box: stays on that detection)")
    p.add_argument("--score", type=unit_fraction, default=0.35,
                   help="detections scoring at least this are drawn and counted")
    p.add_argument("--out", required=True, metavar="PNG", help="where to write the overlay image")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from pathlib import Path

    import cv2

    from ednas.commands._common import load_model
    from ednas.data.preprocess import read_image
    from ednas.errors import InputError
    from ednas.io import atomic_path, check_output, write_error
    from ednas.report.gradcam import class_index, explain

    out = Path(args.out)
    if not cv2.haveImageWriter(str(out)):
        raise InputError(f"--out {out}: not an image file name OpenCV can write (use a .png path)")
    check_output(out)
    image = read_image(args.image)
    recipe, model = load_model(args.recipe, args.weights)
    names = recipe.class_names
    label = class_index(args.class_name, names) if args.class_name else None
    cam = explain(model, image, names, label=label, level=args.level, box=args.box,
                  keep_ratio=recipe.data.keep_ratio, mean=recipe.data.mean, std=recipe.data.std,
                  score_thr=args.score, method=args.method)
    with atomic_path(out) as tmp:
        if not cv2.imwrite(str(tmp), cam.overlay):
            raise write_error(out, "OpenCV could not write the image")
    what = f"detection {cam.detection}" if args.box is not None else f"all priors of level {cam.level}"
    print(f"{out}: {cam.method} of {names[cam.label]!r} logit, {what} (level {cam.level}, stride {cam.stride})")
    if cam.bbox is None:
        print(f"  no detection of {names[cam.label]!r} scoring >= {args.score} on this level "
              f"(best prior score {cam.score:.2f})")
    else:
        box = ", ".join(f"{v:.0f}" for v in cam.bbox)
        print(f"  detection {cam.detection} of {len(cam.detections.scores)} (score >= {args.score}): "
              f"score {cam.score:.2f}, box [{box}] (x1, y1, x2, y2)")
    return 0
