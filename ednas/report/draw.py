"""Draw detections on an image (boxes, class names, scores)."""

from __future__ import annotations

import colorsys
from typing import Sequence

import cv2
import numpy as np

from ednas.models.decode import Detections


def class_color(label: int) -> tuple[int, int, int]:
    """A stable, well-separated BGR colour per class."""
    h = (label * 0.618033988749895) % 1.0
    r, g, b = colorsys.hsv_to_rgb(h, 0.85, 0.95)
    return int(b * 255), int(g * 255), int(r * 255)


def draw_detections(
    image: np.ndarray, det: Detections, class_names: Sequence[str], score_thr: float = 0.35
) -> np.ndarray:
    """A copy of BGR `image` with every detection scoring >= score_thr drawn on it."""
    out = image.copy()
    thick = max(1, round(min(out.shape[:2]) / 300))
    for box, score, label in zip(det.boxes.tolist(), det.scores.tolist(), det.labels.tolist()):
        if score < score_thr:
            continue
        x1, y1, x2, y2 = (int(round(v)) for v in box)
        color = class_color(int(label))
        cv2.rectangle(out, (x1, y1), (x2, y2), color, thick)
        text = f"{class_names[int(label)]} {score:.2f}"
        (tw, th), base = cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, 0.4 * thick, thick)
        ty = max(y1, th + base)
        cv2.rectangle(out, (x1, ty - th - base), (x1 + tw, ty), color, -1)
        cv2.putText(out, text, (x1, ty - base), cv2.FONT_HERSHEY_SIMPLEX, 0.4 * thick, (0, 0, 0), thick, cv2.LINE_AA)
    return out
