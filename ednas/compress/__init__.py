"""Model compression, two families: `prune/` (structured channel pruning to a latency target)
and `quantize/` (static INT8 ONNX, accuracy-aware and cross-validated)."""
