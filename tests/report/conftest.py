"""Fixtures of the report tests: a run folder made in code (see run_fixture.py)."""

from __future__ import annotations

from pathlib import Path

import pytest
from run_fixture import make_run


@pytest.fixture
def run_dir(tmp_path: Path) -> Path:
    return make_run(tmp_path / "run")
