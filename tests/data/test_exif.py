"""EXIF orientation: images are read in the frame their annotations are in (issue 30).

Stored pixels and a tag: a viewer (and `infer`) shows them turned; a dataset reads them in the
frame whose size its annotation gives, and refuses an image that fits neither frame.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

import cv2
import numpy as np
import pytest

from ednas.data.coco import CocoDataset, annotated_sizes
from ednas.data.exif import apply_orientation, orientation
from ednas.data.preprocess import decode_image, read_annotated_image, read_image
from ednas.errors import DataError
from fixture_modules import load_test_module

fx = load_test_module("exif_fixture", Path(__file__).resolve().parent / "exif_fixture.py")

H, W = 48, 80  # stored size: not square, so tags 5 to 8 tell the frames apart


@pytest.fixture
def stored() -> np.ndarray:
    return np.random.default_rng(0).integers(0, 255, (H, W, 3), dtype=np.uint8)


@pytest.mark.parametrize("big_endian", [False, True])
@pytest.mark.parametrize("tag", range(1, 9))
def test_viewer_frame_is_what_opencv_shows(tmp_path, stored, tag, big_endian):
    data = fx.tagged_jpeg(fx.encode(stored), tag, big_endian)
    path = tmp_path / "a.jpg"
    path.write_bytes(data)
    assert orientation(data) == tag
    shown = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)  # OpenCV applies the tag
    np.testing.assert_array_equal(read_image(path), shown)
    img, tag_read = decode_image(path)
    assert tag_read == tag and img.shape == (H, W, 3)
    np.testing.assert_array_equal(apply_orientation(img, tag), shown)


@pytest.mark.parametrize("tag", range(1, 9))
def test_png_exif_chunk_and_inverse(tmp_path, stored, tag):
    data = fx.tagged_png(fx.encode(fx.stored_for(stored, tag), ".png"), tag)
    assert orientation(data) == tag
    path = tmp_path / "a.png"
    path.write_bytes(data)
    np.testing.assert_array_equal(read_image(path), stored)  # lossless: the viewer sees `stored` again


@pytest.mark.parametrize("data", [
    b"", b"\xff\xd8", b"\xff\xd8\xff\xe1\x00\x08Exif\x00\x00",  # empty, bare, APP1 cut short
    b"\xff\xd8\xff\xe1\x00\x10Exif\x00\x00XX*\x00\x08\x00",  # unknown byte order
    b"GIF89a", b"\x89PNG\r\n\x1a\n",
])
def test_no_or_malformed_tag_is_as_stored(data):
    assert orientation(data) == 1


def test_out_of_range_tag_is_as_stored(stored):
    assert orientation(fx.tagged_jpeg(fx.encode(stored), 9)) == 1


def _tagged(tmp_path: Path, img: np.ndarray, tag: int) -> Path:
    path = tmp_path / f"r{tag}.jpg"
    path.write_bytes(fx.tagged_jpeg(fx.encode(img), tag))
    return path


@pytest.mark.parametrize("tag", [5, 6, 7, 8])
def test_annotated_frame_is_chosen_by_size(tmp_path, stored, tag):
    path = _tagged(tmp_path, stored, tag)
    as_stored, guessed = read_annotated_image(path, W, H)
    assert as_stored.shape == (H, W, 3) and not guessed
    np.testing.assert_array_equal(as_stored, decode_image(path).img)
    as_shown, guessed = read_annotated_image(path, H, W)
    assert as_shown.shape == (W, H, 3) and not guessed
    np.testing.assert_array_equal(as_shown, read_image(path))


def test_size_matching_neither_frame_is_refused(tmp_path, stored):
    path = _tagged(tmp_path, stored, 6)
    with pytest.raises(DataError) as info:
        read_annotated_image(path, 64, 64)
    message = str(info.value)
    assert str(path) in message and "64x64" in message and "80x48 as stored" in message
    assert "48x80 as shown" in message and "\n" not in message


@pytest.mark.parametrize("tag", [2, 3, 4])
def test_same_size_frames_are_read_as_stored_on_a_guess(tmp_path, stored, tag):
    path = _tagged(tmp_path, stored, tag)
    img, guessed = read_annotated_image(path, W, H)
    assert guessed
    np.testing.assert_array_equal(img, decode_image(path).img)
    with pytest.raises(DataError, match="as stored"):
        read_annotated_image(path, H, W)


def test_untagged_image_is_read_as_stored_whatever_its_annotation(tmp_path, stored):
    path = tmp_path / "a.jpg"
    path.write_bytes(fx.encode(stored))
    img, guessed = read_annotated_image(path, 10, 10)
    assert img.shape == (H, W, 3) and not guessed


def _white_box_set(tmp_path: Path, tag: int, frame: str) -> tuple[Path, Path, list[float]]:
    """One black image with a white box, tagged `tag`, annotated in `frame` ("stored"/"shown")."""
    shown = np.zeros((H, W, 3), np.uint8)
    shown[8:24, 40:72] = 255  # the object, in the frame a viewer shows
    box = [40, 8, 32, 16]  # x, y, w, h in that frame
    images = tmp_path / "images"
    images.mkdir()
    stored = fx.stored_for(shown, tag)
    (images / "a.png").write_bytes(fx.tagged_png(fx.encode(stored, ".png"), tag))
    if frame == "stored":
        h, w = stored.shape[:2]
        ys, xs = np.nonzero(stored[..., 0])
        box = [int(xs.min()), int(ys.min()), int(xs.max() - xs.min() + 1), int(ys.max() - ys.min() + 1)]
    else:
        h, w = H, W
    gt = {"images": [{"id": 1, "file_name": "a.png", "width": w, "height": h}],
          "categories": [{"id": 1, "name": "box"}],
          "annotations": [{"id": 1, "image_id": 1, "category_id": 1, "bbox": box, "area": box[2] * box[3]}]}
    ann = tmp_path / "ann.json"
    ann.write_text(json.dumps(gt))
    return images, ann, box


@pytest.mark.parametrize("frame", ["stored", "shown"])
@pytest.mark.parametrize("tag", [5, 6, 7, 8])
def test_dataset_boxes_land_on_the_object_in_either_frame(tmp_path, tag, frame):
    images, ann, (x, y, w, h) = _white_box_set(tmp_path, tag, frame)
    sample = CocoDataset(images, ann).load(0)
    assert (sample.meta["width"], sample.meta["height"]) == ((H, W) if frame == "stored" else (W, H))
    inside = sample.img[y:y + h, x:x + w]
    assert inside.size and inside.min() == 255 and sample.img.sum() == inside.sum()


def test_dataset_refuses_an_image_of_neither_frame(tmp_path):
    images, ann, _ = _white_box_set(tmp_path, 6, "shown")
    gt = json.loads(ann.read_text())
    gt["images"][0].update(width=50, height=50)
    ann.write_text(json.dumps(gt))
    with pytest.raises(DataError, match="annotated as 50x50"):
        CocoDataset(images, ann).load(0)


def test_dataset_warns_once_about_guessed_frames(tmp_path, stored, caplog):
    images = tmp_path / "images"
    images.mkdir()
    entries = []
    for i in range(3):
        (images / f"{i}.jpg").write_bytes(fx.tagged_jpeg(fx.encode(stored), 3))
        entries.append({"id": i + 1, "file_name": f"{i}.jpg", "width": W, "height": H})
    ann = tmp_path / "ann.json"
    ann.write_text(json.dumps({"images": entries, "annotations": [], "categories": [{"id": 1, "name": "x"}]}))
    ds = CocoDataset(images, ann)
    with caplog.at_level(logging.WARNING):
        assert len(list(ds)) == 3
    assert ds.frame_guessed == 3 and len(caplog.records) == 1 and "0.jpg" in caplog.records[0].getMessage()


@pytest.mark.parametrize("width, why", [("64", "'64'"), (0, "got 0"), (12.5, "12.5"), (True, "True")])
def test_annotated_size_must_be_whole_pixels(tmp_path, width, why):
    images, ann, _ = _white_box_set(tmp_path, 6, "shown")
    gt = json.loads(ann.read_text())
    gt["images"][0]["width"] = width
    ann.write_text(json.dumps(gt))
    for load in (lambda: CocoDataset(images, ann), lambda: annotated_sizes(ann)):
        with pytest.raises(DataError, match="whole number of pixels") as info:
            load()
        assert why in str(info.value)


def test_annotated_sizes_by_file_name(tmp_path):
    _, ann, _ = _white_box_set(tmp_path, 6, "shown")
    assert annotated_sizes(ann) == {"a.png": (W, H)}
