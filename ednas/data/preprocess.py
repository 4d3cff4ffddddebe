"""Validation pre-processing, exactly as the released Enhanced NanoDet recipes do it.

BGR image -> resized to the square network input (cv2.resize, bilinear) -> `(img - mean) / std`
per BGR channel -> NCHW float32. `scale = (sx, sy)` maps a point of the network input back to
the original image (original size / input size), which is what `models.decode.postprocess`
takes to put boxes back into image coordinates.
"""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import cv2
import numpy as np

from ednas.errors import InputError

MEAN_BGR: tuple[float, float, float] = (103.53, 116.28, 123.675)
STD_BGR: tuple[float, float, float] = (57.375, 57.12, 58.395)

Scale = tuple[float, float]  # (sx, sy): network-input pixels -> original-image pixels


def read_image(path: str | Path) -> np.ndarray:
    """Image file -> (H, W, 3) BGR uint8; an unreadable file raises InputError."""
    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path}: no such image file")
    img = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if img is None:
        raise InputError(f"{path}: cannot be decoded as an image (corrupt or unsupported format)")
    return img


def resize(img: np.ndarray, size: int, keep_ratio: bool = False) -> tuple[np.ndarray, Scale]:
    """Resize to (size, size) bilinearly; return the resized image and its Scale.

    keep_ratio=False stretches the image (the released recipes). keep_ratio=True scales the
    longer side to `size` and pads right/bottom with zeros, so the same (sx, sy) mapping (no
    offset) still takes boxes back to the original image.
    """
    h, w = img.shape[:2]
    if not keep_ratio:
        out = cv2.resize(img, (size, size), interpolation=cv2.INTER_LINEAR)
        return out, (w / size, h / size)
    ratio = min(size / w, size / h)
    nw, nh = max(1, round(w * ratio)), max(1, round(h * ratio))
    out = np.zeros((size, size, img.shape[2]), dtype=img.dtype)
    out[:nh, :nw] = cv2.resize(img, (nw, nh), interpolation=cv2.INTER_LINEAR)
    return out, (w / nw, h / nh)


def normalize(
    img: np.ndarray, mean: Sequence[float] = MEAN_BGR, std: Sequence[float] = STD_BGR
) -> np.ndarray:
    """(H, W, 3) BGR image (uint8 or float, 0..255) -> (3, H, W) float32 `(img - mean) / std`."""
    mean_a = np.asarray(mean, dtype=np.float32)
    std_a = np.asarray(std, dtype=np.float32)
    out = (img.astype(np.float32) - mean_a) / std_a  # (H, W, 3)
    return np.ascontiguousarray(out.transpose(2, 0, 1))  # (3, H, W)


def preprocess(
    image: str | Path | np.ndarray, size: int, keep_ratio: bool = False,
    mean: Sequence[float] = MEAN_BGR, std: Sequence[float] = STD_BGR,
) -> tuple[np.ndarray, Scale]:
    """An image path or BGR array -> ((1, 3, size, size) float32 network input, Scale)."""
    img = image if isinstance(image, np.ndarray) else read_image(image)
    resized, scale = resize(img, size, keep_ratio)
    return normalize(resized, mean, std)[None], scale
