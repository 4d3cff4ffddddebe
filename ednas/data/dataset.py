"""The common base of the detection datasets (COCO json, Pascal VOC XML).

A dataset is a list of ImageRecords parsed once from the annotations; images are read lazily.
`load(i)` gives a Sample (BGR image, boxes, labels, meta) or None when the image is missing or
cannot be decoded: that image is logged, counted in `skipped` and never crashes a run.
An image with an EXIF orientation is read in the frame its annotation's width and height are
in (`preprocess.read_annotated_image`); one that fits neither frame is refused (DataError).
`coco_gt()` gives the ground truth as a COCO-style dict so one pycocotools evaluator serves
every format.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator, NamedTuple, Sequence

import numpy as np

from ednas.data.preprocess import file_orientation, read_annotated_image
from ednas.errors import DataError, InputError

log = logging.getLogger(__name__)


@dataclass
class ImageRecord:
    """One annotated image, boxes in original-image pixels (x1, y1, x2, y2)."""

    id: int  # image id in the COCO-style ground truth
    path: Path
    width: int  # as annotated (the decoded image's size is in Sample.meta)
    height: int
    boxes: np.ndarray  # (K, 4) float32 training targets
    labels: np.ndarray  # (K,) int64 contiguous labels 0..C-1
    ignore: np.ndarray = field(default_factory=lambda: np.zeros((0, 4), np.float32))  # (J, 4) crowd / difficult regions
    ignore_labels: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))  # (J,)


class Sample(NamedTuple):
    """What a dataset yields: the image and its targets in original-image pixels."""

    img: np.ndarray  # (H, W, 3) BGR uint8
    boxes: np.ndarray  # (K, 4) float32 x1y1x2y2
    labels: np.ndarray  # (K,) int64
    meta: dict[str, Any]  # id, path, width, height (decoded image), ignore (J, 4), ignore_labels (J,)


class DetectionDataset:
    """Records plus the mapping of contiguous labels to the ground truth's category ids."""

    def __init__(
        self, records: Sequence[ImageRecord], class_names: Sequence[str],
        category_ids: Sequence[int], source: str,
    ) -> None:
        if len(class_names) != len(category_ids):
            raise DataError(
                f"{source}: {len(category_ids)} categories but {len(class_names)} class names; "
                "give one class name per category"
            )
        self.class_names = tuple(class_names)
        self.category_ids = list(category_ids)  # label -> category id
        self.source = source  # annotation file or folder, for messages
        self.skipped: list[tuple[Path, str]] = []  # (image, why) of every image left out
        self.frame_guessed = 0  # images whose EXIF orientation their annotated size cannot tell apart
        self.records: list[ImageRecord] = []
        for rec in records:
            if rec.path.is_file():
                self.records.append(rec)
            else:
                self.skipped.append((rec.path, "missing"))
        if self.skipped and self.records:  # one line, not one per image; none found: the caller refuses the set
            log.warning("skipping %d of %d annotated images: missing (e.g. %s)", len(self.skipped),
                        len(self.skipped) + len(self.records), self.skipped[0][0])

    def __len__(self) -> int:
        return len(self.records)

    def __iter__(self) -> Iterator[Sample]:
        """The readable samples, in order (unreadable images are skipped and counted)."""
        for i in range(len(self)):
            sample = self.load(i)
            if sample is not None:
                yield sample

    def load(self, index: int) -> Sample | None:
        """Sample `index`, or None (logged and counted once) if its image cannot be read."""
        rec = self.records[index]
        try:
            img, guessed = read_annotated_image(rec.path, rec.width, rec.height)
        except InputError as exc:
            if all(path != rec.path for path, _ in self.skipped):
                self._skip(rec.path, str(exc))
            return None
        if guessed:
            self._guessed_frame(rec.path)
        meta = {
            "id": rec.id, "path": str(rec.path), "width": img.shape[1], "height": img.shape[0],
            "ignore": rec.ignore, "ignore_labels": rec.ignore_labels,
        }
        return Sample(img, rec.boxes, rec.labels, meta)

    def check_frames(self) -> None:
        """Refuse before any work an EXIF-tagged image whose annotated size fits neither of its
        frames (DataError). Reads each image's headers; decodes only the tagged ones."""
        for rec in self.records:
            if file_orientation(rec.path) != 1:
                try:
                    read_annotated_image(rec.path, rec.width, rec.height)
                except InputError:
                    pass  # unreadable: skipped and counted when it is loaded

    def coco_gt(self) -> dict[str, Any]:
        """Ground truth as a COCO instances dict (ignore regions become iscrowd=1 boxes)."""
        images, annotations = [], []
        for rec in self.records:
            images.append({"id": rec.id, "file_name": rec.path.name, "width": rec.width, "height": rec.height})
            for boxes, labels, crowd in (
                (rec.boxes, rec.labels, 0),
                (rec.ignore, rec.ignore_labels, 1),
            ):
                for (x1, y1, x2, y2), label in zip(boxes.tolist(), labels.tolist()):
                    w, h = x2 - x1, y2 - y1
                    annotations.append({
                        "id": len(annotations) + 1, "image_id": rec.id,
                        "category_id": self.category_ids[label], "bbox": [x1, y1, w, h],
                        "area": w * h, "iscrowd": crowd,
                    })
        categories = [{"id": c, "name": n} for c, n in zip(self.category_ids, self.class_names)]
        return {"images": images, "annotations": annotations, "categories": categories}

    def _guessed_frame(self, path: Path) -> None:
        """Say once per dataset that an EXIF-tagged image was read as stored on a guess."""
        self.frame_guessed += 1
        if self.frame_guessed == 1:
            log.warning("%s has an EXIF orientation that leaves its annotated size unchanged: read as "
                        "stored, the frame COCO annotations are made in (further such images not reported)", path)

    def _skip(self, path: Path, why: str) -> None:
        log.warning("skipping image %s: %s", path, why)
        self.skipped.append((path, why))


def make_record(
    id: int, path: Path, width: int, height: int,
    boxes: Sequence[Sequence[float]], labels: Sequence[int], ignore: Sequence[bool],
) -> ImageRecord:
    """An ImageRecord from annotated x1y1x2y2 boxes: `ignore` ones (crowd, difficult) become
    ignore regions; targets under 1 px wide or high are dropped, as NanoDet does."""
    b = np.asarray(boxes, dtype=np.float32).reshape(-1, 4)
    lab = np.asarray(labels, dtype=np.int64).reshape(-1)
    ign = np.asarray(ignore, dtype=bool).reshape(-1)
    wh = b[:, 2:] - b[:, :2]
    target = ~ign & (wh >= 1).all(1)
    return ImageRecord(
        id=id, path=path, width=int(width), height=int(height),
        boxes=b[target], labels=lab[target], ignore=b[ign], ignore_labels=lab[ign],
    )


def xywh_to_xyxy(boxes: np.ndarray) -> np.ndarray:
    """(K, 4) x, y, w, h -> (K, 4) x1, y1, x2, y2 (float32)."""
    boxes = np.asarray(boxes, dtype=np.float32).reshape(-1, 4)
    return np.concatenate([boxes[:, :2], boxes[:, :2] + boxes[:, 2:]], 1)
