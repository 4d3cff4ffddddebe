"""Latency lookup tables: units of a search space timed with ONNX Runtime, calibrated on whole
models, and a predictor fast enough for a search loop.

    units.py      cutting an ArchSpec into timed units (built from ednas.models)
    export.py     unit / whole-model ONNX files, FP32 or INT8 (INT8: what `ednas quantize` ships)
    runner.py     timing against a probe model (standalone: also the remote runner)
    table.py      the table files
    target.py     LatencyTarget (device, precision, threads, spin, CPU) and check_table
    extra.py      units a table lacks (pruned widths), measured later into a sidecar
    profiler.py   building tables (local, bundle, import) and calibration
    predictor.py  LatencyPredictor
    validate.py   predicted vs measured on random architectures
"""

from ednas.latency.predictor import LatencyPredictor
from ednas.latency.table import LatencyTable, LatencyTableError, default_table
from ednas.latency.target import LatencyTarget, check_table

__all__ = ["LatencyPredictor", "LatencyTable", "LatencyTableError", "LatencyTarget", "check_table", "default_table"]
