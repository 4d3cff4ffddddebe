"""A tiny search space (6 classes, 64-96 px, narrow widths) and synthetic images for the
supernet tests: everything builds and trains in seconds."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from ednas.arch.zoo import get_arch
from ednas.arch.space import SearchSpace


def write_tiny_space(folder: Path) -> Path:
    arch = get_arch("enhanced_nanodet_s")
    arch = arch.replace(num_classes=6, input_size=96,
                        backbone=dataclasses.replace(arch.backbone, widths=(0.25,) * 5),
                        neck=dataclasses.replace(arch.neck, width=24),
                        head=dataclasses.replace(arch.head, feat_channels=24))
    arch.save(folder / "tiny_base.yml")
    space = folder / "tiny_space.yml"
    space.write_text("base: tiny_base.yml\n"
                     "backbone: {widths: [0.25, 0.5], kr: [true, false]}\n"
                     "neck: {block_types: [normal, plus], width: [16, 24]}\n"
                     "input_size: {min: 64, max: 96, step: 32}\n")
    return space


@pytest.fixture(scope="session")
def tiny_space_file(tmp_path_factory) -> Path:
    return write_tiny_space(tmp_path_factory.mktemp("space"))


@pytest.fixture(scope="session")
def tiny_space(tiny_space_file) -> SearchSpace:
    return SearchSpace.load(tiny_space_file)


@pytest.fixture(scope="session")
def synth(tmp_path_factory) -> Path:
    from ednas.data.synth import generate

    out = tmp_path_factory.mktemp("synth")
    generate(out, 16, size=96, seed=0, min_object=16)
    return out


@pytest.fixture()
def tiny_recipe(tmp_path, tiny_space_file, synth) -> Path:
    path = tmp_path / "tiny_recipe.yml"
    path.write_text(f"model: {{arch: {tiny_space_file.parent / 'tiny_base.yml'}}}\n"
                    "data:\n  class_names: shapes\n"
                    f"  train: {{format: coco, images: {synth / 'images'}, ann: {synth / 'annotations' / 'train.json'}}}\n"
                    "train: {workers: 0}\n")
    return path
