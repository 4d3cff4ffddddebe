"""Fidelity and speed of the PyTorch Enhanced NanoDet_s against the released ONNX.

    python benchmarks/fidelity_export.py [--weights enhanced_nanodet_s.onnx] [--images DIR] [--threads 2]

1. import the released ONNX into the PyTorch model; over every image: max |d| of class scores
   (bound 1e-4) and regression logits (bound 1e-3) against ONNX Runtime on the released file;
2. export that checkpoint (BN folded, opset 13, onnxslim) and compare it the same way;
3. time exported vs released with ONNX Runtime, interleaved in one process with the same
   threads; print the median of per-pair ratios (goal: exported >= 5 % faster).
Defaults come from EDNAS_TEST_WEIGHTS / EDNAS_TEST_COCO.
"""

from __future__ import annotations

import argparse
import os
import platform
import tempfile
from pathlib import Path

import numpy as np
import onnxruntime as ort
import torch

from ednas.compress.quantize.timing import time_pair
from ednas.data.preprocess import preprocess
from ednas.models import build_model
from ednas.models.export import export_onnx
from ednas.models.onnx_import import import_onnx
from ednas.onnx_runtime import session
from ednas.arch.zoo import get_arch


def max_diffs(a: np.ndarray, b: np.ndarray, c: int) -> tuple[float, float]:
    return float(np.abs(a[..., :c] - b[..., :c]).max()), float(np.abs(a[..., c:] - b[..., c:]).max())


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--weights", default=os.environ.get("EDNAS_TEST_WEIGHTS"))
    ap.add_argument("--images", default=os.path.join(os.environ.get("EDNAS_TEST_COCO", ""), "images"))
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--pairs", type=int, default=200, help="interleaved timing pairs")
    args = ap.parse_args()
    if not args.weights or not Path(args.images).is_dir():
        raise SystemExit("set EDNAS_TEST_WEIGHTS and EDNAS_TEST_COCO (or pass --weights / --images)")

    arch = get_arch("enhanced_nanodet_s")
    model = build_model(arch)
    import_onnx(model, args.weights)
    model.eval()
    exported = Path(tempfile.mkdtemp()) / "exported.onnx"
    export_onnx(model, exported)
    released, ours = session(args.weights, args.threads), session(exported, args.threads)

    images = sorted(Path(args.images).glob("*.jpg"))
    torch_d, export_d = np.zeros(2), np.zeros(2)
    for path in images:
        x, _ = preprocess(path, arch.input_size)
        ref = released.run(None, {"data": x})[0]
        with torch.no_grad():
            got = model.inference(torch.from_numpy(x)).numpy()
        torch_d = np.maximum(torch_d, max_diffs(got, ref, arch.num_classes))
        export_d = np.maximum(export_d, max_diffs(ours.run(None, {"data": x})[0], ref, arch.num_classes))

    timing = time_pair(args.weights, exported, args.threads, runs=args.pairs, warmup=20)

    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
          f"ORT {ort.__version__}, {args.threads} threads, {len(images)} images")
    print(f"{'':<28}{'scores max|d|':>15}{'logits max|d|':>15}")
    print(f"{'PyTorch (imported)':<28}{torch_d[0]:>15.2e}{torch_d[1]:>15.2e}")
    print(f"{'exported ONNX':<28}{export_d[0]:>15.2e}{export_d[1]:>15.2e}")
    print(f"{'bound':<28}{1e-4:>15.0e}{1e-3:>15.0e}")
    print(f"latency median: released {timing.reference_ms:.2f} ms, exported {timing.candidate_ms:.2f} ms")
    print(f"speed-up exported vs released (median of {timing.runs} interleaved pairs): {timing.speedup:.3f}x  "
          f"[p10 {timing.speedup_p10:.3f}, p90 {timing.speedup_p90:.3f}]  (goal >= 1.05)")


if __name__ == "__main__":
    main()
