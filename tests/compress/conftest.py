"""Shared fixtures of the compression tests."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest


@pytest.fixture(scope="module")
def calib_dir(tmp_path_factory) -> Path:
    """Six small smooth JPEGs: a calibration folder made in code."""
    folder = tmp_path_factory.mktemp("calib")
    rng = np.random.default_rng(0)
    for i in range(6):
        img = cv2.GaussianBlur(rng.integers(0, 255, (48, 64, 3), dtype=np.uint8), (5, 5), 0)
        cv2.imwrite(str(folder / f"{i}.jpg"), img)
    return folder
