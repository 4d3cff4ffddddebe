"""Finding and parsing peer cards: a card YAML, or the name of a bundled card (recipes/peers/)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ednas.config import from_dict, load_yaml
from ednas.errors import ConfigError
from ednas.peers.card import PeerCard
from ednas.peers.layouts import get_layout

CARDS_DIR = Path(__file__).resolve().parent.parent.parent / "recipes" / "peers"
_RECIPE_KEYS = ("model", "data", "train")  # a recipe's sections: such a YAML is no card
_CARD_KEYS = ("input", "output")  # at least one of them marks a YAML as a card


def is_card(data: Any) -> bool:
    """A parsed YAML that is a peer card, not a recipe or an ARCH.yml."""
    return isinstance(data, dict) and bool(set(data) & set(_CARD_KEYS)) and not set(data) & set(_RECIPE_KEYS)


def parse_card(data: Any, where: str) -> PeerCard:
    """Plain data -> PeerCard: unknown keys listed, a missing key named, the layout known."""
    card = from_dict(PeerCard, data, f"{where}: card")
    get_layout(card.output.layout, f"{where}: card.output.layout")
    return card


def find_card(spec: str | Path) -> PeerCard | None:
    """The card `spec` names: a card YAML, or a bundled card name (e.g. picodet_s_320_coco) that
    is not also a bundled recipe; None when `spec` names something else (a recipe, an
    architecture), which the recipe resolver then reads."""
    path = Path(spec)
    if not path.exists() and len(path.parts) == 1 and path.suffix not in (".yml", ".yaml"):
        bundled = CARDS_DIR / f"{spec}.yml"
        if not bundled.is_file() or (CARDS_DIR.parent / f"{spec}.yml").is_file():
            return None
        path = bundled
    if path.suffix not in (".yml", ".yaml") or not path.is_file():
        return None
    data = load_yaml(path)
    return parse_card(data, str(path)) if is_card(data) else None


def load_card(spec: str | Path) -> PeerCard:
    """The card `spec` names, refused in one line when it names none."""
    card = find_card(spec)
    if card is None:
        known = ", ".join(sorted(p.stem for p in CARDS_DIR.glob("*.yml")))
        raise ConfigError(f"{spec}: not a peer card (a YAML with input and output sections); "
                          f"bundled cards: {known}")
    return card
