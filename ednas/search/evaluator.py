"""Accuracy evaluators: what the search asks of "how good is this architecture".

Contract (`Evaluator`): calling it with an ArchSpec returns its accuracy as a fraction
(`metric` names which: "mAP" or "AP50"), measured on the evaluator's evaluation images.
Implementations cache by `ArchSpec.hash()`, so asking twice costs nothing.

`SupernetEvaluator` (ednas/supernet/evaluate.py) slices the weight-sharing supernet,
recalibrates BatchNorm on calibration images and runs COCO evaluation.
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable

from ednas.arch import ArchSpec


@runtime_checkable
class Evaluator(Protocol):
    metric: str  # what __call__ returns: "mAP" or "AP50" (fractions)

    def __call__(self, arch: ArchSpec) -> float: ...
