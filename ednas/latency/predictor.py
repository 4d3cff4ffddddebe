"""Latency prediction from a lookup table: the sum of an architecture's units, calibrated.

Fast enough to sit inside a search loop (>= 10^4 architectures/s): an architecture is cut
into a handful of hashable segments (stem, each backbone row, neck + head) and each segment's
cost is computed once from the table, so a prediction is a few dict lookups.
"""

from __future__ import annotations

from dataclasses import dataclass

from ednas.arch import ArchSpec
from ednas.latency.table import Calibration, LatencyTable, LatencyTableError
from ednas.latency.target import LatencyTarget, check_table
from ednas.latency.units import Segment, segment_units, segments


@dataclass(frozen=True)
class Part:
    """One line of a breakdown."""

    name: str  # e.g. backbone.block3, neck.top_down0, calibration
    key: str  # the table key ("" for calibration terms)
    ms: float


class LatencyPredictor:
    """`predict(arch)` in ms on the table's time scale times `scale` (e.g. probe_now /
    table probe, to follow a machine that got slower or faster). With `target`, a table
    measured for another one is refused (check_table)."""

    def __init__(self, table: LatencyTable, scale: float = 1.0, target: LatencyTarget | None = None) -> None:
        if target is not None:
            check_table(table, target)
        if table.meta.calibration is None:
            raise LatencyTableError(f"{table.path} has no calibration; finish it with `ednas profile --out {table.path}`")
        self.table = table
        self.scale = scale
        self.calibration: Calibration = table.meta.calibration
        self._segments: dict[Segment, tuple[float, float]] = {}  # segment -> (ms, Melements)

    def _segment(self, seg: Segment) -> tuple[float, float]:
        cost = self._segments.get(seg)
        if cost is None:
            ms = elems = 0.0
            for _, unit in segment_units(seg):
                ms += self._unit_ms(unit.key)
                elems += unit.io_elems
            cost = self._segments[seg] = (ms, elems / 1e6)
        return cost

    def _unit_ms(self, key: str) -> float:
        try:
            return self.table.ms[key]
        except KeyError:
            raise LatencyTableError(
                f"{self.table.path} has no unit {key!r}: the architecture is outside the table's search "
                f"space {self.table.meta.space_name!r} (e.g. pruned widths); time the units it lacks with "
                "ednas.latency.extra.measure_missing (`ednas latency --measure-missing`) or profile a space "
                "that contains it") from None

    def units(self, arch: ArchSpec) -> tuple[float, float]:
        """(sum of unit ms, boundary Melements) of `arch`, uncalibrated."""
        ms = elems = 0.0
        for seg in segments(arch):
            m, e = self._segment(seg)
            ms += m
            elems += e
        return ms, elems

    def predict(self, arch: ArchSpec) -> float:
        """Predicted end-to-end latency of `arch` in ms."""
        ms, elems = self.units(arch)
        c = self.calibration
        return (c.overhead_ms + c.scale * ms + c.ms_per_melem * elems) * self.scale

    def breakdown(self, arch: ArchSpec) -> list[Part]:
        """Per unit (scaled like the prediction), then the calibration terms; sums to predict()."""
        c, k = self.calibration, self.scale
        parts, elems = [], 0.0
        for seg in segments(arch):
            for name, unit in segment_units(seg):
                parts.append(Part(name, unit.key, self._unit_ms(unit.key) * c.scale * k))
                elems += unit.io_elems / 1e6
        parts.append(Part("calibration.overhead", "", c.overhead_ms * k))
        parts.append(Part("calibration.boundaries", "", c.ms_per_melem * elems * k))
        return parts
