"""`ednas export`: checkpoint -> deployable ONNX with the released model's contract."""

from __future__ import annotations

import argparse

from ednas.commands._common import add_recipe, input_size


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("export", help="export a checkpoint to ONNX (BN folded, simplified)")
    add_recipe(p)
    p.add_argument("--weights", required=True, metavar="CKPT")
    p.add_argument("--out", required=True, metavar="MODEL.onnx")
    p.add_argument("--input-size", type=input_size, help="square input size (default: the recipe's)")
    p.add_argument("--opset", type=int, default=13, help="ONNX opset (>= 13; default 13)")
    p.add_argument("--no-simplify", action="store_true", help="skip onnxslim")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ednas.commands._common import load_model
    from ednas.errors import InputError
    from ednas.io import check_output
    from ednas.models.export import MAX_OPSET, export_onnx

    if not 13 <= args.opset <= MAX_OPSET:
        raise InputError(f"--opset {args.opset}: use 13 to {MAX_OPSET} (per-channel INT8 needs 13 or newer)")
    check_output(args.out)
    _, model = load_model(args.recipe, args.weights)
    path = export_onnx(model, args.out, args.input_size, args.opset, simplify=not args.no_simplify)
    size = args.input_size or model.arch.input_size
    print(f"wrote {path}: input data [1,3,{size},{size}], output [1,N,{model.arch.num_outputs}]")
    return 0
