"""`ednas infer`: detect objects in images and draw them (PyTorch or ONNX model)."""

from __future__ import annotations

import argparse

from ednas.commands._common import unit_fraction


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "infer", help="draw detections on images",
        description="ednas infer RECIPE --weights CKPT IMAGE... --out DIR   |   "
                    "ednas infer --onnx MODEL.onnx [--recipe RECIPE | --recipe CARD] IMAGE... --out DIR "
                    "(CARD: a peer card, recipes/peers/*.yml, for another project's ONNX file)",
    )
    p.add_argument("inputs", nargs="+", metavar="[RECIPE] IMAGE", help="recipe (with --weights), then images")
    p.add_argument("--weights", metavar="CKPT", help="PyTorch checkpoint (first positional is the recipe)")
    p.add_argument("--onnx", metavar="MODEL.onnx", help="ONNX model with the released contract")
    p.add_argument("--recipe", help="with --onnx: recipe for class names, strides (default: COCO classes), "
                                    "or the peer card (recipes/peers/*.yml) of the ONNX file")
    p.add_argument("--out", required=True, metavar="DIR", help="folder for the drawn images")
    p.add_argument("--ann", metavar="ANN.json",
                   help="COCO json: an image it lists is read in the frame its annotation is in (as ednas "
                        "test scores it); others as a viewer shows them (EXIF orientation applied)")
    p.add_argument("--score", type=unit_fraction, default=0.35, help="draw detections scoring at least this")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from pathlib import Path

    import cv2

    from ednas.commands._common import load_model
    from ednas.data.coco import annotated_sizes
    from ednas.data.preprocess import read_annotated_image, read_image
    from ednas.errors import EdnasError, InputError
    from ednas.io import atomic_path, check_output, write_error
    from ednas.eval.codec import NanoDetCodec
    from ednas.eval.predictors import OnnxPredictor, TorchPredictor
    from ednas.peers.loader import find_card
    from ednas.peers.predictor import PeerPredictor
    from ednas.recipe import load_recipe
    from ednas.report.draw import draw_detections

    if bool(args.weights) == bool(args.onnx):
        raise InputError("give exactly one of --weights CKPT (with a RECIPE) or --onnx MODEL.onnx")
    check_output(args.out, folder=True)
    card = find_card(args.recipe) if args.onnx and args.recipe else None
    if args.weights:
        if len(args.inputs) < 2:
            raise InputError("usage: ednas infer RECIPE --weights CKPT IMAGE... --out DIR")
        recipe, model = load_model(args.inputs[0], args.weights)
        predictor, images, arch = TorchPredictor(model), args.inputs[1:], model.arch
    elif card is not None:
        predictor, images = PeerPredictor(card, args.onnx), args.inputs
    else:
        recipe = load_recipe(args.recipe or "enhanced_nanodet_s")
        predictor, images, arch = OnnxPredictor(args.onnx), args.inputs, recipe.model
    if card is not None:
        codec, class_names = predictor.codec, card.class_names
    else:
        data = recipe.data
        codec = NanoDetCodec(predictor.input_size, arch.num_classes, arch.strides, arch.head.reg_max,
                             data.keep_ratio, data.mean, data.std)
        class_names = recipe.class_names
    sizes = annotated_sizes(args.ann) if args.ann else {}
    out_dir = Path(args.out)
    names = [Path(p).name for p in images]
    if len(set(names)) != len(names):
        twice = next(n for n in names if names.count(n) > 1)
        raise InputError(f"two images are named {twice}; their drawings would overwrite each other in --out")
    failed: list[str] = []
    for path in images:
        try:
            known = sizes.get(Path(path).name)
            img = read_annotated_image(path, *known)[0] if known else read_image(path)
        except EdnasError as exc:
            if len(images) == 1:
                raise
            print(f"skipped: {exc}")
            failed.append(str(exc))
            continue
        x, placement = codec.encode(img)
        det = codec.decode(predictor(x[None]), [placement])[0]
        target = out_dir / Path(path).name
        if not cv2.haveImageWriter(str(target)):
            target = target.with_suffix(".png")
        with atomic_path(target) as tmp:
            if not cv2.imwrite(str(tmp), draw_detections(img, det, class_names, args.score)):
                raise write_error(target, "OpenCV could not write the image")
        shown = int((det.scores >= args.score).sum())
        print(f"{target}: {shown} objects (score >= {args.score})")
    if len(failed) == len(images):
        raise InputError(f"none of the {len(images)} images could be read (first: {failed[0]})")
    return 0
