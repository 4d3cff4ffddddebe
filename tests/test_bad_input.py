"""Bad input ends with one line on stderr (exit 2), never a traceback."""

from __future__ import annotations

import numpy as np
import pytest

from ednas.cli import main


def _one_line_error(capsys, argv: list[str], expect: str) -> None:
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err, err
    assert expect in err, err


def test_missing_onnx(capsys, tmp_path):
    _one_line_error(capsys, ["import-onnx", str(tmp_path / "none.onnx"), "--recipe", "enhanced_nanodet_s",
                             "--out", str(tmp_path / "s.ckpt")], "no such ONNX file")


def test_non_onnx_file(capsys, tmp_path):
    bogus = tmp_path / "model.onnx"
    bogus.write_bytes(b"\x00garbage")
    _one_line_error(capsys, ["import-onnx", str(bogus), "--recipe", "enhanced_nanodet_s",
                             "--out", str(tmp_path / "s.ckpt")], "not an ONNX model")
    assert not (tmp_path / "s.ckpt").exists()


def test_recipe_with_a_typo(capsys, tmp_path):
    recipe = tmp_path / "r.yml"
    recipe.write_text("model: {arch: enhanced_nanodet_s}\ntrain: {epochz: 3}\n")
    _one_line_error(capsys, ["flops", str(recipe)], "unknown key 'epochz'; valid keys are: epochs")


def test_unknown_architecture(capsys):
    _one_line_error(capsys, ["flops", "enhanced_nanodet_xl"], "known: enhanced_nanodet_l")


def test_missing_checkpoint(capsys, tmp_path):
    _one_line_error(capsys, ["export", "enhanced_nanodet_s", "--weights", str(tmp_path / "x.ckpt"),
                             "--out", str(tmp_path / "x.onnx")], "no such checkpoint")


def test_undecodable_image(capsys, tmp_path):
    from ednas.models import build_model, save_checkpoint
    from ednas.arch.zoo import get_arch

    ckpt = tmp_path / "tiny.ckpt"
    save_checkpoint(ckpt, build_model(get_arch("enhanced_nanodet_s").replace(input_size=64)))
    broken = tmp_path / "broken.jpg"
    broken.write_bytes(np.random.default_rng(0).bytes(100))
    _one_line_error(capsys, ["infer", "enhanced_nanodet_s", "--weights", str(ckpt), str(broken),
                             "--out", str(tmp_path / "o")], "cannot be decoded")
    assert not (tmp_path / "o").exists()


@pytest.mark.parametrize("argv", [["infer", "--onnx", "m.onnx", "--weights", "w.ckpt", "x.jpg", "--out", "o"]])
def test_conflicting_model_flags(capsys, argv):
    _one_line_error(capsys, argv, "exactly one of --weights")
