"""read_image refuses a JPEG cut short (libjpeg would hand back a half-grey image with only a
warning) and accepts complete ones, with padding, appended data or a thumbnail."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from ednas.data.preprocess import read_image
from ednas.errors import InputError


@pytest.fixture
def jpeg() -> bytes:
    img = np.random.default_rng(0).integers(0, 255, (64, 64, 3), dtype=np.uint8)
    return cv2.imencode(".jpg", img)[1].tobytes()


def _with_thumbnail(jpeg: bytes) -> bytes:
    """An APP1 segment holding a whole JPEG (its own FF D9), like an EXIF thumbnail."""
    return jpeg[:2] + b"\xff\xe1" + (len(jpeg) + 2).to_bytes(2, "big") + jpeg + jpeg[2:]


@pytest.mark.parametrize("make", [
    lambda j: j,
    lambda j: j + b"\x00" * 100,  # zero padding after the end marker
    lambda j: j + b"appended video" * 10,  # data after the end marker (motion photos)
    _with_thumbnail,
])
def test_complete_jpegs_are_read(tmp_path, jpeg, make):
    path = tmp_path / "a.jpg"
    path.write_bytes(make(jpeg))
    assert read_image(path).shape == (64, 64, 3)


@pytest.mark.parametrize("make", [
    lambda j: j[: len(j) // 2],  # cut in the scan data
    lambda j: j[:100],  # cut in the headers
    lambda j: _with_thumbnail(j)[:-600],  # cut after a thumbnail's end marker
])
def test_truncated_jpegs_are_refused(tmp_path, jpeg, make):
    path = tmp_path / "a.jpg"
    path.write_bytes(make(jpeg))
    with pytest.raises(InputError, match="truncated JPEG"):
        read_image(path)


def test_progressive_jpeg(tmp_path):
    img = np.random.default_rng(1).integers(0, 255, (64, 64, 3), dtype=np.uint8)
    data = cv2.imencode(".jpg", img, [cv2.IMWRITE_JPEG_PROGRESSIVE, 1])[1].tobytes()
    (tmp_path / "p.jpg").write_bytes(data)
    assert read_image(tmp_path / "p.jpg").shape == (64, 64, 3)
    (tmp_path / "t.jpg").write_bytes(data[: len(data) * 2 // 3])
    with pytest.raises(InputError, match="truncated JPEG"):
        read_image(tmp_path / "t.jpg")
