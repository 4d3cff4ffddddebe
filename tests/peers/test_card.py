"""Peer cards: every bundled card parses; a malformed one is refused in one line."""

from __future__ import annotations

import pytest

from ednas.errors import ConfigError
from ednas.peers.layouts import LAYOUTS
from ednas.peers.loader import CARDS_DIR, find_card, load_card, parse_card

from tiny_peers import card_data, write_card

BUNDLED = sorted(p.stem for p in CARDS_DIR.glob("*.yml"))


def test_the_five_peers_have_cards():
    assert BUNDLED == ["nanodet_m_320", "nanodet_plus_m_416", "picodet_s_320_coco", "picodet_s_416_coco",
                       "yolox_nano_416"]


@pytest.mark.parametrize("name", BUNDLED)
def test_bundled_cards_parse(name):
    card = load_card(CARDS_DIR / f"{name}.yml")
    assert card.num_classes == 80 and card.output.layout in LAYOUTS
    assert str(card.input.size) in name and card.reference.coco_train128 and card.reference.person_holdout


def test_nanodet_plus_card_says_logits_and_picodet_rgb():
    assert load_card(CARDS_DIR / "nanodet_plus_m_416.yml").output.scores == "logits"
    picodet = load_card("picodet_s_320_coco")  # a bundled card by name
    assert (picodet.input.colour, picodet.input.resize, picodet.input.interpolation) == ("rgb", "stretch", "cubic")


def _refused(data: dict, match: str) -> str:
    with pytest.raises(ConfigError, match=match) as err:
        parse_card(data, "card.yml")
    assert "\n" not in str(err.value)
    return str(err.value)


def test_an_unknown_key_lists_the_valid_ones():
    data = card_data()
    data["input"]["colour_order"] = "bgr"
    message = _refused(data, "unknown key 'colour_order'")
    assert "valid keys are: size, colour, mean, std, resize, interpolation, pad" in message


def test_a_missing_key_is_named():
    data = card_data()
    del data["output"]["scores"]
    _refused(data, "card.yml: card.output: missing required key 'scores'")
    data = card_data()
    del data["input"]
    _refused(data, "missing required key 'input'")


def test_an_unknown_layout_lists_the_known_ones():
    _refused(card_data(layout="ssd"), "'ssd' is not a known layout; known layouts are: nanodet, nanodet_plus, "
                                      "picodet, yolox")


@pytest.mark.parametrize("key, value, match", [
    ("resize", "letterbox", "'letterbox' is not one of 'stretch'"),
    ("colour", "rgba", "'rgba' is not one of 'bgr', 'rgb'"),
    ("std", [1, 0, 1], "has a 0"),
    ("size", 0, "at least 1"),
])
def test_impossible_input_values(key, value, match):
    data = card_data()
    data["input"][key] = value
    _refused(data, match)


def test_find_card_tells_cards_from_recipes(tmp_path):
    assert find_card("enhanced_nanodet_s") is None  # an architecture
    assert find_card("nanodet_plus_m_416") is None  # the bundled recipe wins over the card of that name
    assert find_card(CARDS_DIR.parent / "nanodet_plus_m_416.yml") is None  # a recipe file
    assert find_card(write_card(tmp_path / "c.yml", card_data())).name == "tiny yolox"
    with pytest.raises(ConfigError, match="not a peer card.*bundled cards: nanodet_m_320"):
        load_card(CARDS_DIR.parent / "enhanced_nanodet_s.yml")
