"""Model compression: structured pruning (prune.py) and INT8 quantization (quantize*.py)."""
