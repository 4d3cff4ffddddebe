"""Each peer's decoder against the independent reference (EDNAS_TEST_PEERS, EDNAS_TEST_COCO):
its mAP on coco-train128 within 0.3 points of the card's `reference`, and the imported
NanoDet-Plus-m checkpoint within 0.1 of its ONNX file. Person AP on val2017-person/holdout
(971 images, minutes per peer): benchmarks/eval_peers.py."""

from __future__ import annotations

import pytest

from ednas.data import load_eval_set
from ednas.eval.coco_eval import evaluate_model
from ednas.models import save_checkpoint
from ednas.models.onnx_import import import_and_check
from ednas.peers.loader import CARDS_DIR, load_card
from ednas.peers.predictor import PeerPredictor
from ednas.recipe import load_model

CARDS = sorted(p.stem for p in CARDS_DIR.glob("*.yml"))


def _coco(coco128, class_names):
    return load_eval_set(str(coco128 / "images"), str(coco128 / "annotations" / "instances_train128.json"),
                         class_names)


@pytest.mark.parametrize("name", CARDS)
def test_peer_scores_its_reference_on_coco_train128(name, peers_dir, coco128):
    card = load_card(CARDS_DIR / f"{name}.yml")
    result = evaluate_model(PeerPredictor(card, peers_dir / f"{name}.onnx"), _coco(coco128, card.class_names),
                            progress=False)
    assert result["images"] == 128
    assert result["mAP"] == pytest.approx(card.reference.coco_train128, abs=0.003)


def test_imported_nanodet_plus_scores_like_its_onnx(peers_dir, coco128, tmp_path):
    onnx = peers_dir / "nanodet_plus_m_416.onnx"
    recipe, model = load_model("nanodet_plus_m_416")
    diff = import_and_check(model, onnx)
    assert diff["file_logits"] and diff["scores"] < 1e-4 and diff["logits"] < 1e-3
    save_checkpoint(tmp_path / "m.ckpt", model)
    recipe, model = load_model("nanodet_plus_m_416", str(tmp_path / "m.ckpt"))  # as `ednas test --weights` does
    dataset = _coco(coco128, recipe.class_names)
    imported = evaluate_model(model, dataset, recipe, progress=False)["mAP"]
    card = load_card(CARDS_DIR / "nanodet_plus_m_416.yml")
    onnx_map = evaluate_model(PeerPredictor(card, onnx), dataset, progress=False)["mAP"]
    assert imported == pytest.approx(onnx_map, abs=0.001)
