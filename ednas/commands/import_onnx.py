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
    import numpy as np
    import onnxruntime as ort
    import torch

    from ednas.commands._common import load_model
    from ednas.io import atomic_path, check_output
    from ednas.models import save_checkpoint
    from ednas.models.onnx_import import import_onnx

    check_output(args.out)
    recipe, model = load_model(args.recipe)
    import_onnx(model, args.onnx)
    model.eval()
    # check the import on one random input against ONNX Runtime
    session = ort.InferenceSession(args.onnx, providers=["CPUExecutionProvider"])
    shape = [d if isinstance(d, int) else 1 for d in session.get_inputs()[0].shape]
    x = np.random.default_rng(0).standard_normal(shape).astype(np.float32)
    expected = session.run(None, {session.get_inputs()[0].name: x})[0]
    with torch.no_grad():
        got = model.inference(torch.from_numpy(x)).numpy()
    c = model.arch.num_classes
    with atomic_path(args.out) as tmp:  # one-line errors for a full or read-only destination
        save_checkpoint(tmp, model, source=str(args.onnx), recipe=recipe.name)
    print(f"wrote {args.out}: {recipe.name}, {model.num_params():,} parameters; vs ONNX Runtime "
          f"max |d| scores {np.abs(got[..., :c] - expected[..., :c]).max():.1e}, "
          f"logits {np.abs(got[..., c:] - expected[..., c:]).max():.1e}")
    return 0
