"""Training augmentation (NanoDet-Plus) and the torch Dataset / collate the trainer consumes.

TrainTransform: one random affine warp (scale, per-axis stretch, horizontal flip, translate,
then resize to the square input) applied to the image with cv2.warpAffine and to the boxes
(corners warped, clipped to the input, boxes under 1 px dropped), then colour jitter
(brightness, contrast, saturation, each applied with probability 0.5 as in NanoDet), then
`(img - mean) / std`. ValTransform: the evaluation pre-processing (`preprocess.resize`).

    ds = TorchDetectionDataset(
        build_dataset(recipe.data.train, recipe.class_names),
        TrainTransform.from_config(recipe.data, recipe.model.input_size),
    )
    loader = DataLoader(ds, batch_size=96, shuffle=True, num_workers=2, collate_fn=collate)
    batch = next(iter(loader))
    batch["img"]        # (N, 3, S, S) float32, normalised, BGR channel order
    batch["gt_boxes"]   # list of N (K_i, 4) float32 tensors, x1y1x2y2 in network-input pixels
    batch["gt_labels"]  # list of N (K_i,) int64 tensors, contiguous labels 0..C-1
    batch["meta"]       # list of N dicts: the dataset's meta (id, path, width, height, ignore
                        # regions in original pixels) plus `warp_matrix`, the (3, 3) matrix
                        # taking original-image pixels to network-input pixels

Randomness comes from a numpy Generator seeded from torch's RNG per item, so runs are
reproducible under `torch.manual_seed` and DataLoader workers differ from each other.
"""

from __future__ import annotations

from typing import Any, NamedTuple, Sequence

import cv2
import numpy as np
import torch

from ednas.data.dataset import DetectionDataset, Sample
from ednas.data.preprocess import MEAN_BGR, STD_BGR, normalize, resize
from ednas.errors import DataError
from ednas.recipe import AugmentConfig, DataConfig


class Transformed(NamedTuple):
    """A sample ready for the network."""

    img: np.ndarray  # (3, S, S) float32 normalised
    boxes: np.ndarray  # (K, 4) float32 in network-input pixels
    labels: np.ndarray  # (K,) int64
    warp_matrix: np.ndarray  # (3, 3) original-image pixels -> network-input pixels


def resize_matrix(src_wh: tuple[int, int], size: int, keep_ratio: bool) -> np.ndarray:
    """(3, 3) matrix taking a (w, h) image to the square input, as `preprocess.resize` does."""
    w, h = src_wh
    sx, sy = size / w, size / h
    if keep_ratio:
        sx = sy = min(sx, sy)
    return np.diag([sx, sy, 1.0])


def random_affine(
    rng: np.random.Generator, aug: AugmentConfig, src_wh: tuple[int, int], size: int,
    keep_ratio: bool = False,
) -> np.ndarray:
    """NanoDet-Plus ShapeTransform as one (3, 3) matrix: centre, scale, stretch, flip,
    translate (fractions of the source size), then resize to the input."""
    w, h = src_wh
    center = np.array([[1, 0, -w / 2], [0, 1, -h / 2], [0, 0, 1]], dtype=np.float64)
    zoom = rng.uniform(*aug.scale)
    sx = zoom * rng.uniform(*aug.stretch[0])
    sy = zoom * rng.uniform(*aug.stretch[1])
    if rng.random() < aug.flip:
        sx = -sx
    tx = rng.uniform(0.5 - aug.translate, 0.5 + aug.translate) * w
    ty = rng.uniform(0.5 - aug.translate, 0.5 + aug.translate) * h
    affine = np.array([[sx, 0, tx], [0, sy, ty], [0, 0, 1]], dtype=np.float64)
    return resize_matrix(src_wh, size, keep_ratio) @ affine @ center


def pixel_grid(matrix: np.ndarray) -> np.ndarray:
    """`matrix` (continuous coordinates: pixel i spans [i, i+1], as boxes do) re-expressed
    for OpenCV's warp, which maps pixel centres i -> i; so a pure resize warps exactly like
    cv2.resize and image and boxes stay aligned to the sub-pixel."""
    half = np.array([[1, 0, 0.5], [0, 1, 0.5], [0, 0, 1]])
    return np.linalg.inv(half) @ matrix @ half


def warp_boxes(boxes: np.ndarray, matrix: np.ndarray, size: int) -> np.ndarray:
    """Warp (K, 4) x1y1x2y2 boxes by `matrix`: the enclosing box of the warped corners,
    clipped to the (size, size) input."""
    if len(boxes) == 0:
        return boxes.reshape(0, 4).astype(np.float32)
    corners = boxes[:, [0, 1, 2, 1, 2, 3, 0, 3]].reshape(-1, 2)  # (4K, 2)
    warped = np.concatenate([corners, np.ones((len(corners), 1))], 1) @ matrix.T  # (4K, 3)
    warped = (warped[:, :2] / warped[:, 2:]).reshape(-1, 4, 2)
    out = np.concatenate([warped.min(1), warped.max(1)], 1)
    return out.clip(0, size).astype(np.float32)


def keep_valid(boxes: np.ndarray, labels: np.ndarray, min_size: float = 1.0) -> tuple[np.ndarray, np.ndarray]:
    """Drop boxes narrower or lower than `min_size` pixels (e.g. warped out of the input)."""
    keep = ((boxes[:, 2:] - boxes[:, :2]) >= min_size).all(1)
    return boxes[keep], labels[keep]


def color_jitter(img: np.ndarray, rng: np.random.Generator, aug: AugmentConfig) -> np.ndarray:
    """NanoDet colour augmentation of a BGR image -> float32 in 0..255 (clipped like a camera,
    where NanoDet lets values run past the range)."""
    out = img.astype(np.float32)
    if rng.random() < 0.5:
        out += rng.uniform(-aug.brightness, aug.brightness) * 255.0
    if rng.random() < 0.5:
        out *= rng.uniform(*aug.contrast)
    out = np.clip(out / 255.0, 0.0, 1.0)
    if rng.random() < 0.5:
        hsv = cv2.cvtColor(out, cv2.COLOR_BGR2HSV)  # float input: S in 0..1
        hsv[..., 1] = np.clip(hsv[..., 1] * rng.uniform(*aug.saturation), 0, 1)
        out = cv2.cvtColor(hsv, cv2.COLOR_HSV2BGR)
    return out * 255.0


class TrainTransform:
    """Random affine + colour jitter + normalisation (the NanoDet-Plus training pipeline)."""

    def __init__(
        self, size: int, augment: AugmentConfig = AugmentConfig(),
        mean: Sequence[float] = MEAN_BGR, std: Sequence[float] = STD_BGR, keep_ratio: bool = False,
    ) -> None:
        self.size, self.augment, self.mean, self.std, self.keep_ratio = size, augment, mean, std, keep_ratio

    @classmethod
    def from_config(cls, data: DataConfig, size: int) -> "TrainTransform":
        return cls(size, data.augment, data.mean, data.std, data.keep_ratio)

    def __call__(self, sample: Sample, rng: np.random.Generator) -> Transformed:
        h, w = sample.img.shape[:2]
        matrix = random_affine(rng, self.augment, (w, h), self.size, self.keep_ratio)
        img = cv2.warpAffine(sample.img, pixel_grid(matrix)[:2], (self.size, self.size), flags=cv2.INTER_LINEAR)
        boxes, labels = keep_valid(warp_boxes(sample.boxes, matrix, self.size), sample.labels)
        img = normalize(color_jitter(img, rng, self.augment), self.mean, self.std)
        return Transformed(img, boxes, labels, matrix)


class ValTransform:
    """The evaluation pre-processing (resize + normalise), boxes mapped along."""

    def __init__(
        self, size: int, mean: Sequence[float] = MEAN_BGR, std: Sequence[float] = STD_BGR,
        keep_ratio: bool = False,
    ) -> None:
        self.size, self.mean, self.std, self.keep_ratio = size, mean, std, keep_ratio

    @classmethod
    def from_config(cls, data: DataConfig, size: int) -> "ValTransform":
        return cls(size, data.mean, data.std, data.keep_ratio)

    def __call__(self, sample: Sample, rng: np.random.Generator | None = None) -> Transformed:
        img, (sx, sy) = resize(sample.img, self.size, self.keep_ratio)
        matrix = np.diag([1 / sx, 1 / sy, 1.0])
        boxes, labels = keep_valid(warp_boxes(sample.boxes, matrix, self.size), sample.labels)
        return Transformed(normalize(img, self.mean, self.std), boxes, labels, matrix)


class TorchDetectionDataset(torch.utils.data.Dataset):
    """A DetectionDataset as a torch Dataset of transformed samples (see the module docstring).

    An unreadable image is replaced by the next readable one, so a batch is always full.
    """

    def __init__(self, dataset: DetectionDataset, transform: TrainTransform | ValTransform) -> None:
        self.dataset, self.transform = dataset, transform

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, index: int) -> dict[str, Any]:
        n = len(self.dataset)
        for step in range(n):
            sample = self.dataset.load((index + step) % n)
            if sample is not None:
                break
        else:
            raise DataError(f"{self.dataset.source}: no image of the dataset can be read")
        rng = np.random.default_rng(int(torch.randint(0, 2**62, ()).item()))
        out = self.transform(sample, rng)
        return {
            "img": torch.from_numpy(out.img),
            "gt_boxes": torch.from_numpy(out.boxes),
            "gt_labels": torch.from_numpy(out.labels),
            "meta": {**sample.meta, "warp_matrix": out.warp_matrix},
        }


def collate(items: list[dict[str, Any]]) -> dict[str, Any]:
    """Stack images into (N, 3, S, S); keep per-image boxes, labels and meta as lists."""
    return {
        "img": torch.stack([it["img"] for it in items]),
        "gt_boxes": [it["gt_boxes"] for it in items],
        "gt_labels": [it["gt_labels"] for it in items],
        "meta": [it["meta"] for it in items],
    }
