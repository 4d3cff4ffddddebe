"""Static INT8 for ONNX models. `job.quantize` is the entry point; `prepare` (contract, opset,
exact FP32 `rewrite`s), `calibration` (activation ranges), `ort_backend` / `inc_backend` (build
the INT8 model), `bias_correction`, `sensitivity` and `accuracy_search` (cross-validated choice
of recipe and FP32 fallback), `timing` (INT8 against FP32, interleaved)."""
