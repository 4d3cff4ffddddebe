"""A peer card: what a detector of another project (NanoDet-m, PP-PicoDet, YOLOX, NanoDet-Plus)
feeds its network and what its outputs mean, as typed, frozen data.

One small YAML per ONNX file (`recipes/peers/`), parsed once by `peers.loader.load_card`:

    name: PP-PicoDet-S 320
    input: {size: 320, colour: rgb, mean: [...], std: [...], resize: stretch, interpolation: cubic}
    output: {layout: picodet, strides: [8, 16, 32, 64], scores: probabilities, anchor_offset: 0.5}
    class_names: coco
    reference: {coco_train128: 0.3855, person_holdout: 0.3607, coco_val2017: 0.271}

The output shapes follow from the layout, the strides, the input size and the class count;
they are checked against the ONNX file before any image is read.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from ednas.data.classes import NAMED_CLASS_LISTS


@dataclass(frozen=True)
class InputCard:
    """How an image becomes the network input."""

    size: int  # side S of the square network input, in pixels
    colour: Literal["bgr", "rgb"]  # channel order the network reads
    mean: tuple[float, float, float]  # subtracted per channel (in `colour` order, 0-255 pixels)
    std: tuple[float, float, float]  # then divided by, per channel (1, 1, 1: raw pixels)
    resize: Literal["stretch", "keep_ratio_centre", "keep_ratio_top_left"]  # see data/placement.py
    interpolation: Literal["nearest", "linear", "cubic", "area"]  # of the resize (OpenCV's)
    pad: float = 0.0  # value of the border a keep-ratio rule leaves, before normalisation

    def __post_init__(self) -> None:
        if self.size < 1:
            raise ValueError(f"size is {self.size}; it must be at least 1")
        if any(s == 0 for s in self.std):
            raise ValueError(f"std {list(self.std)} has a 0; every channel is divided by it")


@dataclass(frozen=True)
class OutputCard:
    """What the network's outputs mean."""

    layout: str  # a key of peers.layouts.LAYOUTS: nanodet, nanodet_plus, picodet, yolox
    strides: tuple[int, ...]  # of the output levels, in output order
    scores: Literal["probabilities", "logits"]  # class outputs with or without the sigmoid
    anchor_offset: float = 0.0  # a cell's point is (cell + anchor_offset) * stride + anchor_shift ...
    anchor_shift: float = 0.0  # ... NanoDet-m: 0.5 and -0.5, PicoDet: 0.5 and 0, NanoDet-Plus: 0, 0
    reg_max: int = 7  # box-side distributions have reg_max + 1 bins (distribution layouts)

    def __post_init__(self) -> None:
        if not self.strides or any(s < 1 for s in self.strides):
            raise ValueError(f"strides {list(self.strides)}: give at least one stride, each at least 1")
        if self.reg_max < 1:
            raise ValueError(f"reg_max is {self.reg_max}; it must be at least 1")


@dataclass(frozen=True)
class ReferenceScores:
    """mAP (a fraction) measured by others with an independent evaluator: what an implementation
    of the card must reproduce (within a few tenths of a point)."""

    coco_train128: float | None = None  # mAP on coco-train128 (training images of the peers: runs high)
    person_holdout: float | None = None  # person AP on val2017-person/holdout (unseen images)
    coco_val2017: float | None = None  # the published COCO val2017 mAP


@dataclass(frozen=True)
class PeerCard:
    """A foreign detector described as data (see the module docstring)."""

    name: str  # shown in tables and reports, e.g. "PP-PicoDet-S 320"
    input: InputCard
    output: OutputCard
    class_names: tuple[str, ...] | str = "coco"  # a list, or the name of a known list
    reference: ReferenceScores = field(default_factory=ReferenceScores)  # scores measured by others

    def __post_init__(self) -> None:
        if isinstance(self.class_names, str):
            if self.class_names not in NAMED_CLASS_LISTS:
                raise ValueError(f"class_names {self.class_names!r} is not a known list "
                                 f"({', '.join(NAMED_CLASS_LISTS)}); give the names as a list")
            object.__setattr__(self, "class_names", NAMED_CLASS_LISTS[self.class_names])
        if not self.class_names:
            raise ValueError("class_names is empty")

    @property
    def num_classes(self) -> int:
        return len(self.class_names)
