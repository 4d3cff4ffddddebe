"""Model compression: INT8 quantization (quantize*.py)."""

from ednas.compress.quantize import QuantizeConfig, quantize

__all__ = ["QuantizeConfig", "quantize"]
