"""Intel Neural Compressor backend: not available, for reasons that hold today (Nov 2026).

- neural-compressor >= 3.8 (what `pip install ednas[inc]` gets) has no ONNX quantization;
  its PyTorch PT2E path yields a torch graph, not an ONNX model with our contract.
- neural-compressor 3.7 still has the ONNX path but fails to import with onnx >= 1.19
  (`onnx.mapping` was removed); pinning older onnx would downgrade the main install.
- onnx-neural-compressor 1.0 (the only release of the ONNX successor) pins numpy<2, pulls
  transformers, imports undeclared prettytable/scipy, and calls exit(0) inside autotune when
  no config meets the bound; its tuning only varies op-type subsets and per-channel, which
  does not reach the bound on this model family (the loss is spread over the conv body).
The ONNX Runtime backend implements the same accuracy-aware loop (calibration methods,
per-tensor sensitivity, FP32 fallback), so `--backend ort` is the route to use.
"""

from __future__ import annotations

from ednas.errors import EdnasError


class BackendUnavailableError(EdnasError):
    """A quantization backend cannot run in this installation."""


REASON = (
    "--backend inc: Intel Neural Compressor has no usable ONNX path here (neural-compressor>=3.8 "
    "dropped ONNX, 3.7 breaks with onnx>=1.19, onnx-neural-compressor 1.0 needs numpy<2); "
    "use --backend ort, which runs the same accuracy-aware search"
)


def quantize_inc(*_args: object, **_kwargs: object) -> None:
    """Always raises BackendUnavailableError with the one-line reason."""
    raise BackendUnavailableError(REASON)
