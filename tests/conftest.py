"""Fixtures shared by all tests. Data from ../shared is found through environment variables
(set by .ci/run); tests that need it skip with the reason when a variable is unset."""

from __future__ import annotations

import os
from pathlib import Path

import pytest


def _env_path(var: str, what: str) -> Path:
    value = os.environ.get(var)
    if not value:
        pytest.skip(f"{var} is not set: point it at {what} to run this test")
    path = Path(value)
    if not path.exists():
        pytest.skip(f"{var}={value} does not exist")
    return path


@pytest.fixture(scope="session")
def released_onnx() -> Path:
    """The released Enhanced NanoDet_s ONNX (EDNAS_TEST_WEIGHTS)."""
    return _env_path("EDNAS_TEST_WEIGHTS", "enhanced_nanodet_s.onnx")


@pytest.fixture(scope="session")
def coco128() -> Path:
    """The coco-train128 folder with images/ and annotations/instances_train128.json (EDNAS_TEST_COCO)."""
    return _env_path("EDNAS_TEST_COCO", "the coco-train128 folder")



@pytest.fixture(scope="session")
def peers_dir() -> Path:
    """The folder of the peer detectors' ONNX files, recipes/peers/NAME.yml -> NAME.onnx (EDNAS_TEST_PEERS)."""
    return _env_path("EDNAS_TEST_PEERS", "the folder of the peer ONNX files (../shared/weights/peers)")
