"""PeerPredictor: a file that does not fit its card is refused in one line before any image
is read; `ednas test` and `ednas infer` take a card."""

from __future__ import annotations

import re

import numpy as np
import pytest

from ednas.cli import main
from ednas.errors import InputError, ModelMismatchError
from ednas.peers.loader import parse_card
from ednas.peers.predictor import PeerPredictor

from tiny_peers import SIZE, card_data, write_card, write_peer_onnx

A = 8 * 8 + 4 * 4 + 2 * 2  # anchor points at strides 8, 16, 32 of a 64-px input


def _yolox(tmp_path, sigmoid: bool = True, anchors: int = A):
    return write_peer_onnx(tmp_path / "yolox.onnx", [([1, anchors, 8], sigmoid)])


def _nanodet(tmp_path, interleaved: bool = False):
    """NanoDet-m's files: no batch dimension, the three score outputs first (or, `interleaved`,
    scores and distributions level by level)."""
    scores, dists = [([n, 3], True) for n in (64, 16, 4)], [([n, 32], False) for n in (64, 16, 4)]
    shapes = [o for pair in zip(scores, dists) for o in pair] if interleaved else scores + dists
    return write_peer_onnx(tmp_path / f"nanodet{int(interleaved)}.onnx", shapes)


def test_outputs_are_decoded_to_scores_and_boxes(tmp_path):
    predictor = PeerPredictor(parse_card(card_data("yolox"), "c"), _yolox(tmp_path))
    out = predictor(np.zeros((3, 3, SIZE, SIZE), np.float32))
    assert out.shape == (3, A, 3 + 4) and predictor.input_size == SIZE and predictor.fixed_batch == 1


def test_nanodet_outputs_are_matched_by_shape(tmp_path):
    card = parse_card(card_data("nanodet", anchor_offset=0.5), "c")
    assert PeerPredictor(card, _nanodet(tmp_path)).order == [0, 1, 2, 3, 4, 5]
    predictor = PeerPredictor(card, _nanodet(tmp_path, interleaved=True))
    assert predictor.order == [0, 2, 4, 1, 3, 5]
    assert predictor(np.zeros((2, 3, SIZE, SIZE), np.float32)).shape == (2, A, 7)


def _refused(card: dict, onnx, error, match: str) -> None:
    with pytest.raises(error, match=match) as err:
        PeerPredictor(parse_card(card, "c"), onnx)
    assert "\n" not in str(err.value)


def test_an_output_shape_the_card_does_not_predict_is_refused(tmp_path):
    _refused(card_data("yolox", strides=(8, 16)), _yolox(tmp_path), ModelMismatchError,
             r"yolox layout \(3 classes, strides \[8, 16\], input 64\) expects outputs \[80, 8\], the file has "
             r"\[1, 84, 8\]; check the card's output section")
    _refused(card_data("picodet"), _nanodet(tmp_path, interleaved=True), ModelMismatchError,
             r"expects outputs \[64, 3\], \[16, 3\]")  # picodet's order is fixed


def test_scores_must_be_what_the_card_says(tmp_path):
    _refused(card_data("yolox"), _yolox(tmp_path, sigmoid=False), ModelMismatchError,
             "no Sigmoid feeds its class output 'out0'.*set `output.scores: logits`")
    _refused(card_data("yolox", scores="logits"), _yolox(tmp_path), ModelMismatchError,
             "a Sigmoid feeds .*set `output.scores: probabilities`")


def test_an_input_of_another_size_is_refused(tmp_path):
    card = card_data("yolox")
    card["input"]["size"] = 32
    _refused(card, _yolox(tmp_path), InputError, r"expected one input of shape \[N, 3, 32, 32\]")


def test_ednas_test_scores_a_card(tmp_path, blank_set, capsys):
    images, ann = blank_set
    card = write_card(tmp_path / "tiny.yml", card_data("yolox"))
    code = main(["test", str(card), "--onnx", str(_yolox(tmp_path)), "--images", str(images), "--ann", str(ann)])
    assert code == 0
    out = capsys.readouterr().out
    assert "on 2 images" in out and "mAP" in out


@pytest.mark.parametrize("change, match", [
    (lambda c: c["output"].update(layout="ssd"), "'ssd' is not a known layout; known layouts are"),
    (lambda c: c["input"].pop("mean"), "missing required key 'mean'"),
    (lambda c: c["output"].update(strides=[8, 16]), "expects outputs"),
])
def test_a_malformed_card_is_refused_in_one_line_before_any_image_is_read(tmp_path, capsys, change, match):
    data = card_data("yolox")
    change(data)
    card = write_card(tmp_path / "bad.yml", data)
    ann = tmp_path / "ann.json"
    ann.write_text("{}")  # never read: the card is refused first
    code = main(["test", str(card), "--onnx", str(_yolox(tmp_path)), "--images", str(tmp_path / "no-images"),
                 "--ann", str(ann)])
    err = capsys.readouterr().err.strip()
    assert code == 2 and err.startswith("ednas test: error:") and "\n" not in err
    assert re.search(match, err)


def test_a_card_wants_its_onnx_file(tmp_path, blank_set, capsys):
    images, ann = blank_set
    card = write_card(tmp_path / "tiny.yml", card_data("yolox"))
    code = main(["test", str(card), "--weights", str(tmp_path / "x.ckpt"), "--images", str(images), "--ann", str(ann)])
    assert code == 2 and "is a peer card: give --onnx MODEL.onnx" in capsys.readouterr().err


def test_ednas_infer_draws_with_a_card(tmp_path, blank_set, capsys):
    images, _ = blank_set
    card = write_card(tmp_path / "tiny.yml", card_data("yolox"))
    out = tmp_path / "drawn"
    code = main(["infer", "--onnx", str(_yolox(tmp_path)), "--recipe", str(card), str(images / "0.png"),
                 "--out", str(out), "--score", "0.0"])
    assert code == 0 and (out / "0.png").is_file() and "objects" in capsys.readouterr().out
