"""A supernet file (or training state, or teacher) whose pickle would run code is refused by
every supernet command, and the code never runs."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from ednas.cli import main
from ednas.supernet.supernet import Supernet


class _WritesMarker:
    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (exec, (f"open({str(self.marker)!r}, 'w').write('code ran')",))


@pytest.fixture()
def hostile_supernet(tiny_space, tmp_path) -> tuple[Path, Path]:
    marker = tmp_path / "marker.txt"
    data = Supernet(tiny_space).to_dict()
    data["meta"] = {"note": _WritesMarker(marker)}
    path = tmp_path / "hostile.pt"
    torch.save(data, path)
    return path, marker


def _argv(verb: str, path: Path, tmp: Path, recipe: Path, synth: Path) -> list[str]:
    images, ann = str(synth / "images"), str(synth / "annotations" / "val.json")
    return {
        "eval": ["supernet", "eval", str(path), "base", "--images", images, "--ann", ann],
        "extract": ["supernet", "extract", str(path), "base", "--out", str(tmp / "x.ckpt")],
        "train": ["supernet", "train", str(path), "--recipe", str(recipe), "--epochs", "1"],
        "search": ["search", "--supernet", str(path), "--budget", "90%", "--images", images, "--ann", ann,
                   "--out", str(tmp / "run")],
    }[verb]


@pytest.mark.parametrize("verb", ["eval", "extract", "train", "search"])
def test_hostile_supernet_is_refused(verb, hostile_supernet, tmp_path, tiny_recipe, synth, capsys):
    path, marker = hostile_supernet
    assert main(_argv(verb, path, tmp_path, tiny_recipe, synth)) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "refused" in err[0]
    assert not marker.exists()


def test_hostile_training_state_is_refused(tiny_space_file, tiny_recipe, tmp_path, capsys):
    sup = tmp_path / "s.pt"
    assert main(["supernet", "init", "--space", str(tiny_space_file), "--classes", "shapes", "--out", str(sup)]) == 0
    marker = tmp_path / "marker.txt"
    torch.save({"format": "ednas-supernet-state", "step": _WritesMarker(marker)}, tmp_path / "s.pt.state")
    capsys.readouterr()
    assert main(["supernet", "train", str(sup), "--recipe", str(tiny_recipe), "--epochs", "1", "--resume"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "refused" in err[0]
    assert not marker.exists()
