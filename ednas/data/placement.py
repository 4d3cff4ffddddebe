"""Placing an image in a square network input, and boxes back into the image.

Detectors from other projects put the image into their square input in one of three ways
(`RESIZE_RULES`): stretched to the square; scaled keeping its aspect ratio and centred, as
NanoDet's affine warp does; or scaled keeping its ratio at the top-left corner of a padded
square, as YOLOX does. Each is an axis-aligned affine map, network = image * scale + offset,
so one inverse (`to_image`) takes every rule's boxes back to the original image.
"""

from __future__ import annotations

from typing import NamedTuple

import cv2
import numpy as np
import torch

RESIZE_RULES = ("stretch", "keep_ratio_centre", "keep_ratio_top_left")
INTERPOLATIONS = {"nearest": cv2.INTER_NEAREST, "linear": cv2.INTER_LINEAR,
                  "cubic": cv2.INTER_CUBIC, "area": cv2.INTER_AREA}


class Placement(NamedTuple):
    """Where an image went in the network input: network = image * scale + offset, per axis."""

    scale: tuple[float, float]  # (kx, ky): network pixels per image pixel
    offset: tuple[float, float]  # (ox, oy): network pixels
    image_wh: tuple[int, int]  # the original image's (width, height), to clip boxes to


def place(img: np.ndarray, size: int, rule: str, interpolation: str = "linear",
          pad: float = 0.0) -> tuple[np.ndarray, Placement]:
    """(H, W, 3) image -> ((size, size, 3) image of the same dtype, its Placement)."""
    h, w = img.shape[:2]
    flag = INTERPOLATIONS[interpolation]
    if rule == "stretch":
        out = cv2.resize(img, (size, size), interpolation=flag)
        return out, Placement((size / w, size / h), (0.0, 0.0), (w, h))
    ratio = min(size / w, size / h)
    if rule == "keep_ratio_centre":
        # NanoDet's warp: the image centre onto the square's centre, no half-pixel shift
        ox, oy = size / 2 - ratio * w / 2, size / 2 - ratio * h / 2
        matrix = np.array([[ratio, 0.0, ox], [0.0, ratio, oy]])
        out = cv2.warpAffine(img, matrix, (size, size), flags=flag, borderMode=cv2.BORDER_CONSTANT,
                             borderValue=(pad, pad, pad))
        return out, Placement((ratio, ratio), (ox, oy), (w, h))
    if rule == "keep_ratio_top_left":
        # YOLOX's pre-processing: truncated size, pasted at (0, 0); boxes go back by 1 / ratio
        nw, nh = max(1, int(w * ratio)), max(1, int(h * ratio))
        out = np.full((size, size, img.shape[2]), pad, dtype=img.dtype)
        out[:nh, :nw] = cv2.resize(img, (nw, nh), interpolation=flag)
        return out, Placement((ratio, ratio), (0.0, 0.0), (w, h))
    raise ValueError(f"resize rule {rule!r} is not one of {', '.join(RESIZE_RULES)}")


def to_image(boxes: torch.Tensor, placement: Placement) -> torch.Tensor:
    """Boxes (K, 4) x1y1x2y2 in network pixels -> in original-image pixels, clipped to the image."""
    (kx, ky), (ox, oy), (w, h) = placement
    out = (boxes - boxes.new_tensor([ox, oy, ox, oy])) / boxes.new_tensor([kx, ky, kx, ky])
    out[:, 0::2] = out[:, 0::2].clamp(0, w)
    out[:, 1::2] = out[:, 1::2].clamp(0, h)
    return out
