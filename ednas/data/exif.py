"""EXIF orientation: which way a camera says its stored pixels are to be shown.

Phone photos store the sensor's pixels and a tag (1..8) saying how a viewer turns them.
Annotations may be in either frame: COCO jsons are usually made on the stored pixels, a tool
that shows the photo as a viewer does gives boxes in the turned frame. `orientation` reads the
tag from the file's bytes (JPEG APP1 or PNG eXIf; no decoding), `apply_orientation` turns
stored pixels into what a viewer shows. Tags 5 to 8 swap width and height.
"""

from __future__ import annotations

import numpy as np

ORIENTATION_TAG = 0x0112
SWAPS_SIZE = frozenset({5, 6, 7, 8})  # orientations that turn a W x H image into H x W

# tag -> what a viewer does with the stored pixels (for messages)
ORIENTATION_NAMES = {
    1: "as stored", 2: "mirrored", 3: "rotated 180", 4: "flipped", 5: "transposed",
    6: "rotated 90 clockwise", 7: "transversed", 8: "rotated 90 counter-clockwise",
}


def orientation(data: bytes | np.ndarray) -> int:
    """The EXIF orientation (1..8) of an encoded image; 1 when it has none or it is malformed."""
    blob = data.tobytes() if isinstance(data, np.ndarray) else bytes(data)
    if blob[:2] == b"\xff\xd8":
        tiff = _jpeg_exif(blob)
    elif blob[:8] == b"\x89PNG\r\n\x1a\n":
        tiff = _png_exif(blob)
    else:
        tiff = None
    value = _tiff_orientation(tiff) if tiff else None
    return value if value in ORIENTATION_NAMES else 1


def apply_orientation(img: np.ndarray, tag: int) -> np.ndarray:
    """Stored pixels (H, W, C) -> what a viewer shows for EXIF orientation `tag` (as OpenCV's
    and Pillow's readers turn them); tags 5 to 8 give (W, H, C)."""
    turned = {
        2: lambda a: a[:, ::-1],
        3: lambda a: a[::-1, ::-1],
        4: lambda a: a[::-1],
        5: lambda a: a.transpose(1, 0, 2),
        6: lambda a: np.rot90(a, -1),
        7: lambda a: np.rot90(a, 2).transpose(1, 0, 2),
        8: lambda a: np.rot90(a, 1),
    }.get(tag)
    return img if turned is None else np.ascontiguousarray(turned(img))


def _jpeg_exif(blob: bytes) -> bytes | None:
    """The TIFF block of a JPEG's first EXIF APP1 segment (header segments only)."""
    pos = 2
    while pos + 4 <= len(blob) and blob[pos] == 0xFF:
        marker = blob[pos + 1]
        if marker == 0xFF:  # fill byte
            pos += 1
            continue
        if marker in (0xDA, 0xD9):  # scan data or end: no more headers
            return None
        length = int.from_bytes(blob[pos + 2:pos + 4], "big")
        if marker == 0xE1 and blob[pos + 4:pos + 10] == b"Exif\x00\x00":
            return blob[pos + 10:pos + 2 + length]
        pos += 2 + length
    return None


def _png_exif(blob: bytes) -> bytes | None:
    """The data of a PNG's eXIf chunk (chunks are skipped by their lengths)."""
    pos = 8
    while pos + 8 <= len(blob):
        length = int.from_bytes(blob[pos:pos + 4], "big")
        kind = blob[pos + 4:pos + 8]
        if kind == b"eXIf":
            return blob[pos + 8:pos + 8 + length]
        if kind == b"IEND":
            return None
        pos += 12 + length
    return None


def _tiff_orientation(tiff: bytes) -> int | None:
    """Tag 0x0112 of IFD0 of a TIFF block, or None."""
    order = {b"II": "little", b"MM": "big"}.get(tiff[:2])
    if order is None or len(tiff) < 8:
        return None
    ifd = int.from_bytes(tiff[4:8], order)
    if ifd + 2 > len(tiff):
        return None
    count = int.from_bytes(tiff[ifd:ifd + 2], order)
    for i in range(count):
        entry = tiff[ifd + 2 + 12 * i:ifd + 14 + 12 * i]
        if len(entry) < 12:
            return None
        if int.from_bytes(entry[:2], order) == ORIENTATION_TAG:
            return int.from_bytes(entry[8:10], order)  # a SHORT, left-justified in the value field
    return None
