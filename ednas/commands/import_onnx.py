"""`ednas import-onnx`: released ONNX weights (BN folded) -> an ednas checkpoint."""

from __future__ import annotations

import argparse


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("import-onnx", help="load a released NanoDet-family ONNX into a PyTorch checkpoint")
    p.add_argument("onnx", metavar="MODEL.onnx")
    p.add_argument("--recipe", required=True, help="recipe (or architecture name) the ONNX was exported from")
    p.add_argument("--out", required=True, metavar="CKPT", help="checkpoint to write")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ednas.io import atomic_path, check_output
    from ednas.models import save_checkpoint
    from ednas.models.onnx_import import import_and_check
    from ednas.recipe import load_model

    check_output(args.out)
    recipe, model = load_model(args.recipe)
    diff = import_and_check(model, args.onnx)
    with atomic_path(args.out) as tmp:  # one-line errors for a full or read-only destination
        save_checkpoint(tmp, model, source=str(args.onnx), recipe=recipe.name)
    print(f"wrote {args.out}: {recipe.name}, {model.num_params():,} parameters; vs ONNX Runtime "
          f"max |d| scores {diff['scores']:.1e}, logits {diff['logits']:.1e}"
          + (" (the file's class outputs are logits: compared after the sigmoid the checkpoint applies)"
             if diff["file_logits"] else ""))
    return 0
