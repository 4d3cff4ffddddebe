"""Validation pre-processing, exactly as the released Enhanced NanoDet recipes do it.

BGR image -> resized to the square network input (cv2.resize, bilinear) -> `(img - mean) / std`
per BGR channel -> NCHW float32. `scale = (sx, sy)` maps a point of the network input back to
the original image (original size / input size), which is what `models.decode.postprocess`
takes to put boxes back into image coordinates.
"""

from __future__ import annotations

from pathlib import Path
from typing import NamedTuple, Sequence

import cv2
import numpy as np

from ednas.data.exif import ORIENTATION_NAMES, SWAPS_SIZE, apply_orientation, orientation
from ednas.errors import DataError, InputError

MEAN_BGR: tuple[float, float, float] = (103.53, 116.28, 123.675)
STD_BGR: tuple[float, float, float] = (57.375, 57.12, 58.395)

Scale = tuple[float, float]  # (sx, sy): network-input pixels -> original-image pixels


class Decoded(NamedTuple):
    """An image file's pixels as stored, and how a viewer turns them."""

    img: np.ndarray  # (H, W, 3) BGR uint8, EXIF orientation not applied
    orientation: int  # EXIF orientation tag, 1 when the file has none


def decode_image(path: str | Path) -> Decoded:
    """Image file -> its stored pixels and EXIF orientation; an unreadable file raises InputError."""
    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path}: no such image file")
    data = np.fromfile(path, dtype=np.uint8)
    if data.size == 0:
        raise InputError(f"{path}: the image file is empty")
    if _truncated_jpeg(data):
        raise InputError(f"{path}: truncated JPEG (the file ends before the image does); re-copy or remove it")
    img = cv2.imdecode(data, cv2.IMREAD_COLOR | cv2.IMREAD_IGNORE_ORIENTATION)
    if img is None:
        raise InputError(f"{path}: cannot be decoded as an image (corrupt or unsupported format)")
    return Decoded(img, orientation(data))


def file_orientation(path: str | Path, limit: int = 1 << 17) -> int:
    """The EXIF orientation of an image file from its first `limit` bytes (the headers, where
    the tag is) without decoding it; 1 when it has none."""
    with open(path, "rb") as f:
        return orientation(f.read(limit))


def read_image(path: str | Path) -> np.ndarray:
    """Image file -> (H, W, 3) BGR uint8 as a viewer shows it (EXIF orientation applied): the
    frame for images without annotations (infer, calibration, Grad-CAM)."""
    img, tag = decode_image(path)
    return apply_orientation(img, tag)


def read_annotated_image(path: str | Path, width: int, height: int) -> tuple[np.ndarray, bool]:
    """Image file -> ((H, W, 3) BGR uint8 in the frame its annotation is in, guessed).

    An image with an EXIF orientation is read in the frame whose size matches the annotated
    `width` x `height`: as stored, or turned as a viewer shows it. Where both match (tags 2 to 4,
    or a square image) it is read as stored, the frame COCO annotations are made in, and
    `guessed` is True; where neither does, a DataError names the file and both sizes. An image
    without the tag is read as stored.
    """
    img, tag = decode_image(path)
    if tag == 1:
        return img, False
    stored = (img.shape[1], img.shape[0])
    shown = stored[::-1] if tag in SWAPS_SIZE else stored
    annotated = (int(width), int(height))
    if annotated == stored:
        return img, shown == stored
    if annotated == shown:
        return apply_orientation(img, tag), False
    raise DataError(
        f"{path}: annotated as {_size(annotated)} but the image is {_size(stored)} as stored and "
        f"{_size(shown)} as shown (EXIF orientation {tag}, {ORIENTATION_NAMES[tag]}); fix its width "
        "and height in the annotations"
    )


def _size(wh: tuple[int, int]) -> str:
    return f"{wh[0]}x{wh[1]}"


def _truncated_jpeg(data: np.ndarray) -> bool:
    """True for a JPEG cut short. libjpeg fills the missing part with grey and only prints a
    warning, so cv2 would hand back a half-grey image. A complete JPEG has its end marker
    (FF D9) after the start of its scan data; header segments (which may hold a thumbnail with
    its own end marker) are skipped by their lengths."""
    if data.size < 4 or data[0] != 0xFF or data[1] != 0xD8:
        return False  # not a JPEG
    tail = bytes(data[-64:]).rstrip(b"\x00\r\n ")
    if tail.endswith(b"\xff\xd9"):
        return False  # the common case: nothing to parse
    pos, size = 2, int(data.size)
    while pos + 4 <= size:
        if data[pos] != 0xFF:
            return False  # not a layout we know: leave the verdict to the decoder
        marker = int(data[pos + 1])
        if marker == 0xFF:  # fill byte
            pos += 1
            continue
        if marker == 0xDA:  # start of scan: entropy-coded data, where FF D9 can only be the end
            scan = data[pos:]
            ff = np.flatnonzero(scan[:-1] == 0xFF)
            return not bool(np.any(scan[ff + 1] == 0xD9))
        pos += 2 + (int(data[pos + 2]) << 8 | int(data[pos + 3]))
    return True  # the headers run past the end of the file


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
