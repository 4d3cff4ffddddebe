"""Images with an EXIF orientation tag, made in code (what phone photos carry)."""

from __future__ import annotations

import struct
import zlib

import cv2
import numpy as np


def tiff_orientation(tag: int, big_endian: bool = False) -> bytes:
    """A TIFF block whose IFD0 holds one entry: Orientation (0x0112, SHORT) = `tag`."""
    e = ">" if big_endian else "<"
    header = (b"MM" if big_endian else b"II") + struct.pack(e + "HI", 42, 8)
    entry = struct.pack(e + "HHIHH", 0x0112, 3, 1, tag, 0)
    return header + struct.pack(e + "H", 1) + entry + struct.pack(e + "I", 0)


def tagged_jpeg(jpeg: bytes, tag: int, big_endian: bool = False) -> bytes:
    """`jpeg` with an EXIF APP1 segment holding orientation `tag` right after its start marker."""
    payload = b"Exif\x00\x00" + tiff_orientation(tag, big_endian)
    return jpeg[:2] + b"\xff\xe1" + struct.pack(">H", len(payload) + 2) + payload + jpeg[2:]


def tagged_png(png: bytes, tag: int) -> bytes:
    """`png` with an eXIf chunk holding orientation `tag` right after its IHDR chunk."""
    data = tiff_orientation(tag)
    chunk = struct.pack(">I", len(data)) + b"eXIf" + data + struct.pack(">I", zlib.crc32(b"eXIf" + data))
    ihdr_end = 8 + 8 + 13 + 4
    return png[:ihdr_end] + chunk + png[ihdr_end:]


def encode(img: np.ndarray, ext: str = ".jpg") -> bytes:
    ok, buf = cv2.imencode(ext, img)
    assert ok
    return buf.tobytes()


def stored_for(shown: np.ndarray, tag: int) -> np.ndarray:
    """The stored pixels that a viewer turns into `shown` under orientation `tag` (the inverse
    of `ednas.data.exif.apply_orientation`)."""
    inverse = {
        2: lambda a: a[:, ::-1], 3: lambda a: a[::-1, ::-1], 4: lambda a: a[::-1],
        5: lambda a: a.transpose(1, 0, 2), 6: lambda a: np.rot90(a, 1), 7: lambda a: np.rot90(a, 2).transpose(1, 0, 2),
        8: lambda a: np.rot90(a, -1),
    }.get(tag, lambda a: a)
    return np.ascontiguousarray(inverse(shown))
