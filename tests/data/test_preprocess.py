"""Validation pre-processing: the spec's formula, letterboxing and unreadable images."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from ednas.data.preprocess import MEAN_BGR, STD_BGR, preprocess, read_image, resize
from ednas.errors import InputError


def test_matches_the_formula(tmp_path):
    img = np.random.default_rng(0).integers(0, 256, (48, 80, 3), dtype=np.uint8)
    path = tmp_path / "a.png"
    cv2.imwrite(str(path), img)
    x, scale = preprocess(path, 32)
    expected = (cv2.resize(img, (32, 32), interpolation=cv2.INTER_LINEAR).astype(np.float32)
                - np.array(MEAN_BGR, np.float32)) / np.array(STD_BGR, np.float32)
    assert x.shape == (1, 3, 32, 32) and x.dtype == np.float32
    np.testing.assert_allclose(x[0], expected.transpose(2, 0, 1), rtol=1e-6)
    assert scale == (80 / 32, 48 / 32)  # input pixels -> original pixels


def test_keep_ratio_pads_right_and_bottom():
    img = np.full((20, 40, 3), 200, np.uint8)
    out, (sx, sy) = resize(img, 32, keep_ratio=True)
    assert out.shape == (32, 32, 3)
    assert (out[:16] == 200).all() and (out[16:] == 0).all()
    assert sx == sy == 40 / 32


def test_undecodable_image_is_a_one_line_input_error(tmp_path):
    path = tmp_path / "broken.jpg"
    path.write_bytes(b"not a jpeg at all")
    with pytest.raises(InputError, match="cannot be decoded") as err:
        read_image(path)
    assert str(path) in str(err.value) and "\n" not in str(err.value)
