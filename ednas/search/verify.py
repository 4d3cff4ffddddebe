"""Re-measuring the front: every Pareto point and baseline exported as the deployable ONNX model
and timed with ONNX Runtime, interleaved with the base architecture (point, base, point, ...).

The per-pair ratio to the base cancels load that comes and goes while timing, so the check
is `measured_over_predicted = (point / base, measured) / (point / base, predicted)`; 1.0 is a
perfect prediction. `measured_ms` is the plain median. A reference model outside the space
(NanoDet-Plus-m) is timed the same way and put on the table's scale: ratio x base predicted.
"""

from __future__ import annotations

import logging
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ednas.arch import ArchSpec
from ednas.latency import runner
from ednas.latency.export import export_arch

log = logging.getLogger(__name__)

REFERENCES = {"NanoDet-Plus-m": "nanodet_plus_m"}  # shown name -> zoo architecture


@dataclass(frozen=True)
class Measured:
    measured_ms: float  # median wall time of the point
    ratio: float  # median per-pair time ratio point / base
    base_ms: float  # median wall time of the base in the same pairs


def verify(archs: dict[str, ArchSpec], base: ArchSpec, precision: str = "fp32", threads: int = 2,
           work: Path | None = None, timing: dict[str, Any] | None = None) -> dict[str, Measured]:
    """Measure every architecture of `archs` against `base`; ONNX files go to a temporary
    folder inside `work` that is removed afterwards."""
    timing = timing or runner.MODEL_TIMING
    if work is not None:
        work.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=".verify-", dir=work) as tmp:
        folder = Path(tmp)
        base_timed = runner.Timed(export_arch(base, folder / "base.onnx", precision), threads)  # type: ignore[arg-type]
        out: dict[str, Measured] = {}
        for i, (name, arch) in enumerate(archs.items()):
            path = export_arch(arch, folder / f"m{i}.onnx", precision)  # type: ignore[arg-type]
            stats = runner.time_pair(runner.Timed(path, threads), base_timed, **timing)
            out[name] = Measured(stats["median_ms"], stats["ratio"], stats["probe_ms"])
            log.info("verified %s: %.2f ms measured, %.3f x the base", name, stats["median_ms"], stats["ratio"])
        return out


def reference_archs() -> dict[str, ArchSpec]:
    from ednas.arch.zoo import get_arch

    return {name: get_arch(zoo) for name, zoo in REFERENCES.items()}
