"""Bad input and faults, over every command: each case must end with exit code 2, exactly one
line on stderr (no traceback; at most one warning logged before it, never one per image),
every destination unchanged and no temporary file or folder left behind, in the destination
or in the system temp dir (issue 15).

One row per case: (id, command line, text the message must contain). Placeholders:
{d} the fixture folder (tiny model, images, recipes), {o} a fresh destination folder holding
an old output of every name the commands write, {ro} a read-only file system and {full} a full
one (tiny tmpfs mounts; those cases skip where mounting is not permitted).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import os
import shlex
import shutil
import subprocess
import tempfile
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from ednas.cli import main
from fixture_modules import load_test_module

OLD = b"old output\n"
MARKER = "hostile-code-ran"  # what the hostile checkpoints' pickled code would create in the fixture folder


class _RunsShell:
    """Unpickling this runs a shell command (what a hostile checkpoint does)."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {shlex.quote(str(self.marker))}",))

OLD_NAMES = ("out.onnx", "out.ckpt", "out.arch.yml", "out.json", "cam.png", "a.jpg")

CASES: list[tuple[str, str, str]] = [
    # -- usage ---------------------------------------------------------------------------------
    ("no-command", "", "required: COMMAND"),
    ("unknown-command", "frobnicate", "invalid choice"),
    ("unknown-flag", "flops {d}/tiny.yml --bogus", "unrecognized arguments"),
    # -- flops ---------------------------------------------------------------------------------
    ("flops-missing-recipe", "flops {d}/nope.yml", "no such file"),
    ("flops-recipe-folder", "flops {d}/imgs/", "is a folder"),
    ("flops-binary-recipe", "flops {d}/binary.yml", "not a text file"),
    ("flops-garbled-recipe", "flops {d}/garbled.yml", "not valid YAML"),
    ("flops-recipe-not-mapping", "flops {d}/list.yml", "a recipe is a mapping"),
    ("flops-recipe-typo", "flops {d}/typo.yml", "unknown key 'epochz'"),
    ("flops-recipe-negative-epochs", "flops {d}/neg_epochs.yml", "epochs is -3"),
    ("flops-recipe-zero-batch", "flops {d}/zero_batch.yml", "batch_size is 0"),
    ("flops-recipe-negative-lr", "flops {d}/neg_lr.yml", "lr is -1"),
    ("flops-recipe-duplicate-section", "flops {d}/dup_section.yml",
     "line 4: key 'train' is given twice in one mapping (first at line 3)"),
    ("flops-recipe-duplicate-key", "flops {d}/dup_key.yml", "line 1: key 'arch' is given twice"),
    ("flops-recipe-alias-bomb", "flops {d}/bomb.yml", "line 2: alias *a is not supported"),
    ("flops-recipe-alias", "flops {d}/alias.yml", "alias *size is not supported"),
    ("flops-recipe-deep", "flops {d}/deep.yml", "nested too deeply"),
    ("flops-recipe-huge-int", "flops {d}/bigint.yml", "not a usable YAML value"),
    ("flops-recipe-long-value", "flops {d}/long_value.yml", "expected an integer, got 'xxxx"),
    ("flops-unknown-arch", "flops enhanced_nanodet_xl", "known: enhanced_nanodet_l"),
    ("flops-input-size-zero", "flops {d}/tiny.yml --input-size 0", "must be at least 1"),
    ("flops-input-size-odd", "flops {d}/tiny.yml --input-size 50", "not a multiple of 32"),
    ("flops-input-size-text", "flops {d}/tiny.yml --input-size big", "not a whole number"),
    ("flops-missing-weights", "flops {d}/tiny.yml --weights {d}/nope.ckpt", "no such checkpoint"),
    ("flops-garbage-weights", "flops {d}/tiny.yml --weights {d}/garbage.ckpt", "garbage.ckpt"),
    # -- export --------------------------------------------------------------------------------
    ("export-missing-weights", "export {d}/tiny.yml --weights {d}/nope.ckpt --out {o}/out.onnx", "no such checkpoint"),
    ("export-truncated-weights", "export {d}/tiny.yml --weights {d}/trunc.ckpt --out {o}/out.onnx", "trunc.ckpt"),
    ("export-weights-folder", "export {d}/tiny.yml --weights {d}/imgs --out {o}/out.onnx", "no such checkpoint"),
    ("export-other-arch", "export {d}/other.yml --weights {d}/tiny.ckpt --out {o}/out.onnx", "backbone.rows"),
    ("export-other-classes", "export enhanced_nanodet_s --weights {d}/tiny.ckpt --out {o}/out.onnx", "3 classes"),
    ("export-binary-recipe", "export {d}/binary.yml --weights {d}/tiny.ckpt --out {o}/out.onnx", "not a text file"),
    ("export-opset-old", "export {d}/tiny.yml --weights {d}/tiny.ckpt --out {o}/out.onnx --opset 11", "13 to"),
    ("export-opset-new", "export {d}/tiny.yml --weights {d}/tiny.ckpt --out {o}/out.onnx --opset 99", "13 to"),
    ("export-input-size", "export {d}/tiny.yml --weights {d}/tiny.ckpt --out {o}/out.onnx --input-size 33", "multiple of 32"),
    ("export-out-folder", "export {d}/tiny.yml --weights {d}/tiny.ckpt --out {o}", "is a folder"),
    ("export-out-under-file", "export {d}/tiny.yml --weights {d}/tiny.ckpt --out {o}/out.json/x.onnx", "is a file"),
    ("export-out-read-only", "export {d}/tiny.yml --weights {d}/tiny.ckpt --out {ro}/out.onnx", "read-only"),
    ("export-out-full", "export {d}/tiny.yml --weights {d}/tiny.ckpt --out {full}/out.onnx", "no space"),
    ("export-out-missing-folder-ro", "export {d}/tiny.yml --weights {d}/tiny.ckpt --out {ro}/new/out.onnx", "read-only"),
    # -- import-onnx ---------------------------------------------------------------------------
    ("import-missing", "import-onnx {d}/nope.onnx --recipe {d}/tiny.yml --out {o}/out.ckpt", "no such ONNX file"),
    ("import-empty", "import-onnx {d}/empty.onnx --recipe {d}/tiny.yml --out {o}/out.ckpt", "empty"),
    ("import-truncated", "import-onnx {d}/trunc.onnx --recipe {d}/tiny.yml --out {o}/out.ckpt", "truncated"),
    ("import-garbage", "import-onnx {d}/garbage.onnx --recipe {d}/tiny.yml --out {o}/out.ckpt", "not an ONNX model"),
    ("import-yaml-as-onnx", "import-onnx {d}/tiny.yml --recipe {d}/tiny.yml --out {o}/out.ckpt", "ONNX"),
    ("import-wrong-recipe", "import-onnx {d}/tiny.onnx --recipe enhanced_nanodet_s --out {o}/out.ckpt", "check --recipe"),
    ("import-no-recipe", "import-onnx {d}/tiny.onnx --out {o}/out.ckpt", "--recipe"),
    ("import-out-folder", "import-onnx {d}/tiny.onnx --recipe {d}/tiny.yml --out {o}", "is a folder"),
    ("import-out-read-only", "import-onnx {d}/tiny.onnx --recipe {d}/tiny.yml --out {ro}/out.ckpt", "read-only"),
    ("import-out-full", "import-onnx {d}/tiny.onnx --recipe {d}/tiny.yml --out {full}/out.ckpt", "no space"),
    # -- infer ---------------------------------------------------------------------------------
    ("infer-both-models", "infer --onnx {d}/tiny.onnx --weights {d}/tiny.ckpt {d}/good.jpg --out {o}", "exactly one of"),
    ("infer-no-image", "infer {d}/tiny.yml --weights {d}/tiny.ckpt --out {o}", "usage: ednas infer"),
    ("infer-undecodable", "infer {d}/tiny.yml --weights {d}/tiny.ckpt {d}/broken.jpg --out {o}", "cannot be decoded"),
    ("infer-truncated-jpeg", "infer {d}/tiny.yml --weights {d}/tiny.ckpt {d}/trunc.jpg --out {o}", "truncated JPEG"),
    ("infer-empty-image", "infer {d}/tiny.yml --weights {d}/tiny.ckpt {d}/empty.jpg --out {o}", "empty"),
    ("infer-missing-image", "infer {d}/tiny.yml --weights {d}/tiny.ckpt {d}/nope.jpg --out {o}", "no such image"),
    ("infer-all-unreadable", "infer {d}/tiny.yml --weights {d}/tiny.ckpt {d}/broken.jpg {d}/trunc.jpg --out {o}",
     "none of the 2 images"),
    ("infer-same-names", "infer {d}/tiny.yml --weights {d}/tiny.ckpt {d}/good.jpg {d}/imgs/good.jpg --out {o}",
     "two images are named good.jpg"),
    ("infer-score-range", "infer {d}/tiny.yml --weights {d}/tiny.ckpt {d}/good.jpg --out {o} --score 1.5", "between 0 and 1"),
    ("infer-empty-onnx", "infer --onnx {d}/empty.onnx {d}/good.jpg --out {o}", "cannot load"),
    ("infer-truncated-onnx", "infer --onnx {d}/trunc.onnx {d}/good.jpg --out {o}", "cannot load"),
    ("infer-other-arch", "infer {d}/other.yml --weights {d}/tiny.ckpt {d}/good.jpg --out {o}", "architecture"),
    ("infer-out-is-file", "infer {d}/tiny.yml --weights {d}/tiny.ckpt {d}/good.jpg --out {o}/out.json", "not a folder"),
    ("infer-out-read-only", "infer {d}/tiny.yml --weights {d}/tiny.ckpt {d}/good.jpg --out {ro}", "read-only"),
    ("infer-out-full", "infer {d}/tiny.yml --weights {d}/tiny.ckpt {d}/a.jpg --out {full}", "no space"),
    ("infer-exif-neither-frame", "infer {d}/tiny.yml --weights {d}/tiny.ckpt {d}/exif_imgs/r6.jpg "
     "--ann {d}/exif_neither.json --out {o}", "annotated as 50x50 but the image is 64x32 as stored and 32x64"),
    ("infer-ann-missing", "infer {d}/tiny.yml --weights {d}/tiny.ckpt {d}/good.jpg --ann {d}/nope.json --out {o}",
     "no such annotation file"),
    ("infer-ann-not-coco", "infer {d}/tiny.yml --weights {d}/tiny.ckpt {d}/good.jpg --ann {d}/list.json --out {o}",
     "expected a COCO instances object"),
    ("infer-ann-width-text", "infer {d}/tiny.yml --weights {d}/tiny.ckpt {d}/good.jpg --ann {d}/size_text.json "
     "--out {o}", "width must be a whole number of pixels"),
    # -- test ----------------------------------------------------------------------------------
    ("test-exif-neither-frame", "test {d}/tiny.yml --weights {d}/tiny.ckpt --images {d}/exif_imgs "
     "--ann {d}/exif_neither.json", "r6.jpg: annotated as 50x50 but the image is 64x32 as stored and 32x64 as shown"),
    ("test-exif-neither-frame-onnx", "test {d}/tiny.yml --onnx {d}/tiny.onnx --images {d}/exif_imgs "
     "--ann {d}/exif_neither.json --batch-size 1", "EXIF orientation 6"),
    ("test-ann-width-text", "test {d}/tiny.yml --weights {d}/tiny.ckpt --images {d}/imgs --ann {d}/size_text.json",
     "width must be a whole number of pixels, at least 1, got '64'"),
    ("test-ann-height-zero", "test {d}/tiny.yml --weights {d}/tiny.ckpt --images {d}/imgs --ann {d}/size_zero.json",
     "height must be a whole number of pixels, at least 1, got 0"),
    ("test-ann-no-boxes", "test {d}/tiny.yml --weights {d}/tiny.ckpt --images {d}/imgs --ann {d}/no_boxes.json",
     "none of the 4 images found has a box to score against"),
    ("test-ann-only-zero-size-boxes", "test {d}/tiny.yml --onnx {d}/tiny.onnx --images {d}/imgs "
     "--ann {d}/zero_boxes.json", "mAP would be undefined"),
    ("test-images-not-there", "test {d}/tiny.yml --weights {d}/tiny.ckpt --images {d}/other_imgs --ann {d}/ann.json",
     "holds none of the 4 images"),
    ("test-images-empty-folder", "test {d}/tiny.yml --weights {d}/tiny.ckpt --images {d}/no_imgs --ann {d}/ann.json",
     "holds none"),
    ("test-images-missing", "test {d}/tiny.yml --weights {d}/tiny.ckpt --images {d}/nope --ann {d}/ann.json",
     "no such images folder"),
    ("test-ann-missing", "test {d}/tiny.yml --weights {d}/tiny.ckpt --images {d}/imgs --ann {d}/nope.json",
     "no such annotation file"),
    ("test-ann-binary", "test {d}/tiny.yml --weights {d}/tiny.ckpt --images {d}/imgs --ann {d}/binary.json", "not valid JSON"),
    ("test-ann-not-coco", "test {d}/tiny.yml --weights {d}/tiny.ckpt --images {d}/imgs --ann {d}/list.json",
     "expected a COCO instances object"),
    ("test-ann-no-images", "test {d}/tiny.yml --weights {d}/tiny.ckpt --images {d}/imgs --ann {d}/no_images.json",
     "annotates no images"),
    ("test-class-count", "test {d}/two_classes.yml --onnx {d}/tiny.onnx --images {d}/imgs --ann {d}/ann.json",
     "categories"),
    ("test-card-unknown-layout", "test {d}/card_layout.yml --onnx {d}/tiny.onnx --images {d}/imgs --ann {d}/ann.json",
     "known layouts are: nanodet, nanodet_plus, picodet, yolox"),
    ("test-card-missing-key", "test {d}/card_no_mean.yml --onnx {d}/tiny.onnx --images {d}/imgs --ann {d}/ann.json",
     "missing required key 'mean'"),
    ("test-card-output-shape", "test {d}/card_strides.yml --onnx {d}/tiny.onnx --images {d}/imgs --ann {d}/ann.json",
     "expects outputs [80, 35], the file has [1, 85, 35]"),
    ("test-images-without-ann", "test {d}/tiny.yml --weights {d}/tiny.ckpt --images {d}/imgs", "give both"),
    ("test-no-val", "test {d}/tiny.yml --weights {d}/tiny.ckpt", "no data.val"),
    ("test-batch-zero", "test {d}/tiny.yml --weights {d}/tiny.ckpt --batch 0", "must be at least 1"),
    ("test-batch-size-negative", "test {d}/tiny.yml --weights {d}/tiny.ckpt --batch-size -2", "must be at least 1"),
    ("test-threads-over-cpus", "test {d}/tiny.yml --onnx {d}/tiny.onnx --threads 1000", "CPUs this process can use"),
    ("test-threads-zero", "test {d}/tiny.yml --onnx {d}/tiny.onnx --threads 0", "must be at least 1"),
    ("test-empty-onnx", "test {d}/tiny.yml --onnx {d}/empty.onnx --images {d}/imgs --ann {d}/ann.json", "cannot load"),
    ("test-both-models", "test {d}/tiny.yml --onnx {d}/tiny.onnx --weights {d}/tiny.ckpt", "not allowed with"),
    ("test-out-folder", "test {d}/tiny.yml --weights {d}/tiny.ckpt --images {d}/imgs --ann {d}/ann.json --out {o}",
     "is a folder"),
    ("test-out-read-only", "test {d}/tiny.yml --onnx {d}/tiny.onnx --images {d}/imgs --ann {d}/ann.json "
     "--out {ro}/out.json", "read-only"),
    ("test-out-full", "test {d}/tiny.yml --onnx {d}/tiny.onnx --images {d}/imgs --ann {d}/ann.json "
     "--json {full}/out.json", "no space"),
    # -- train ---------------------------------------------------------------------------------
    ("train-negative-epochs-recipe", "train {d}/neg_epochs.yml --out {o}/run", "epochs is -3"),
    ("train-epochs-zero", "train {d}/tiny.yml --epochs 0 --out {o}/run", "must be at least 1"),
    ("train-batch-size-zero", "train {d}/tiny.yml --batch-size 0 --out {o}/run", "must be at least 1"),
    ("train-lr-negative", "train {d}/tiny.yml --lr -1 --out {o}/run", "positive number"),
    ("train-workers-negative", "train {d}/tiny.yml --workers -1 --out {o}/run", "0 or more"),
    ("train-val-interval-zero", "train {d}/tiny.yml --val-interval 0 --out {o}/run", "must be at least 1"),
    ("train-resume-nothing", "train {d}/tiny.yml --resume --out {o}/run", "no last.ckpt to resume"),
    ("train-data-missing", "train {d}/tiny.yml --data {d}/nope --out {o}/run", "nope"),
    ("train-out-read-only", "train {d}/tiny.yml --out {ro}/run", "read-only"),
    ("train-out-is-file", "train {d}/tiny.yml --out {o}/out.json", "not a folder"),
    ("train-weights-garbage", "train {d}/tiny.yml --weights {d}/garbage.ckpt --out {o}/run", "garbage.ckpt"),
    # -- data synth ----------------------------------------------------------------------------
    ("synth-zero-images", "data synth --out {o}/synth --images 0", "must be at least 1"),
    ("synth-small-size", "data synth --out {o}/synth --images 2 --size 16", "at least 32"),
    ("synth-val-fraction", "data synth --out {o}/synth --images 2 --val-fraction 1.5", "[0, 1)"),
    ("synth-min-object", "data synth --out {o}/synth --images 2 --min-object 0", "positive number"),
    ("synth-out-user-folder", "data synth --out {o}/userdir --images 2 --size 64", "not empty"),
    ("synth-out-is-file", "data synth --out {o}/out.json --images 2 --size 64", "not a folder"),
    ("synth-out-read-only", "data synth --out {ro}/synth --images 2 --size 64", "read-only"),
    ("synth-out-full", "data synth --out {full}/synth --images 40 --size 128", "no space"),
    ("synth-no-action", "data", "required: ACTION"),
    # -- profile -------------------------------------------------------------------------------
    ("profile-threads-zero", "profile --threads 0", "must be at least 1"),
    ("profile-threads-over-cpus", "profile --threads 1000", "--threads 1000 is more than the"),
    ("profile-calib-models-zero", "profile --calib-models 0", "must be at least 1"),
    ("profile-calib-models-two", "profile --calib-models 2", "at least 3"),
    ("profile-passes-zero", "profile --validate 2 --passes 0", "must be at least 1"),
    ("profile-validate-zero", "profile --validate 0", "must be at least 1"),
    ("profile-precision", "profile --precision fp16", "invalid choice"),
    ("profile-space-missing", "profile --space {d}/nope.yml", "no such file"),
    ("profile-space-binary", "profile --space {d}/binary.yml", "not a text file"),
    ("profile-space-duplicate", "profile --space {d}/space_dup.yml", "key 'neck' is given twice"),
    ("profile-space-alias", "profile --space {d}/space_alias.yml", "alias *w is not supported"),
    ("profile-out-read-only", "profile --out {ro}/table.csv", "read-only"),
    ("profile-out-folder", "profile --out {o}", "is a folder"),
    ("profile-bundle-is-file", "profile --bundle {o}/out.json", "not a folder"),
    ("profile-import-missing", "profile --import {d}/nope --out {o}/t.csv", "nope"),
    # -- latency -------------------------------------------------------------------------------
    ("latency-missing-model", "latency {d}/nope.yml", "no such file"),
    ("latency-binary-model", "latency {d}/binary.yml", "not a text file"),
    ("latency-input-size", "latency {d}/tiny.yml --input-size -32", "must be at least 1"),
    ("latency-arch-duplicate-key", "latency {d}/dup.arch.yml", "is given twice"),
    ("latency-table-missing", "latency {d}/tiny.yml --table {d}/nope.csv", "nope.csv"),
    ("latency-table-garbage", "latency {d}/tiny.yml --table {d}/binary.json", "binary.json"),
    ("latency-space-missing", "latency {d}/tiny.yml --space {d}/nope.yml", "no such file"),
    # -- gradcam -------------------------------------------------------------------------------
    ("gradcam-missing-image", "gradcam {d}/tiny.yml --weights {d}/tiny.ckpt --image {d}/nope.jpg --out {o}/cam.png",
     "no such image"),
    ("gradcam-truncated-image", "gradcam {d}/tiny.yml --weights {d}/tiny.ckpt --image {d}/trunc.jpg --out {o}/cam.png",
     "truncated JPEG"),
    ("gradcam-missing-weights", "gradcam {d}/tiny.yml --weights {d}/nope.ckpt --image {d}/good.jpg --out {o}/cam.png",
     "no such checkpoint"),
    ("gradcam-score", "gradcam {d}/tiny.yml --weights {d}/tiny.ckpt --image {d}/good.jpg --out {o}/cam.png --score -1",
     "between 0 and 1"),
    ("gradcam-level", "gradcam {d}/tiny.yml --weights {d}/tiny.ckpt --image {d}/good.jpg --out {o}/cam.png --level -1",
     "0 or more"),
    ("gradcam-box", "gradcam {d}/tiny.yml --weights {d}/tiny.ckpt --image {d}/good.jpg --out {o}/cam.png --box x",
     "not a whole number"),
    ("gradcam-class", "gradcam {d}/tiny.yml --weights {d}/tiny.ckpt --image {d}/good.jpg --out {o}/cam.png --class zebra",
     "zebra"),
    ("gradcam-out-not-image", "gradcam {d}/tiny.yml --weights {d}/tiny.ckpt --image {d}/good.jpg --out {o}/cam.txt",
     "not an image file name"),
    ("gradcam-out-full", "gradcam {d}/tiny.yml --weights {d}/tiny.ckpt --image {d}/good.jpg --out {full}/cam.png",
     "no space"),
    ("gradcam-out-read-only", "gradcam {d}/tiny.yml --weights {d}/tiny.ckpt --image {d}/good.jpg --out {ro}/cam.png",
     "read-only"),
    # -- prune ---------------------------------------------------------------------------------
    ("prune-target-over-100", "prune {d}/tiny.yml --weights {d}/tiny.ckpt --target-latency 150% --out {o}/out.ckpt",
     "less than 100%"),
    ("prune-target-100", "prune {d}/tiny.yml --weights {d}/tiny.ckpt --target-latency 100% --out {o}/out.ckpt",
     "less than 100%"),
    ("prune-target-1x", "prune {d}/tiny.yml --weights {d}/tiny.ckpt --target-latency 1.5x --out {o}/out.ckpt",
     "less than 100%"),
    ("prune-target-zero", "prune {d}/tiny.yml --weights {d}/tiny.ckpt --target-latency 0% --out {o}/out.ckpt",
     "above 0"),
    ("prune-target-zero-ms", "prune {d}/tiny.yml --weights {d}/tiny.ckpt --target-latency 0ms --out {o}/out.ckpt",
     "above 0"),
    ("prune-target-no-unit", "prune {d}/tiny.yml --weights {d}/tiny.ckpt --target-latency 8 --out {o}/out.ckpt",
     "--target-latency '8' has no unit; write 8ms"),
    ("prune-target-fraction-no-unit", "prune {d}/tiny.yml --weights {d}/tiny.ckpt --target-latency 0.75 "
     "--out {o}/out.ckpt", "has no unit"),
    ("prune-target-text", "prune {d}/tiny.yml --weights {d}/tiny.ckpt --target-latency fast --out {o}/out.ckpt",
     "write e.g. 8ms"),
    ("prune-ratio-one", "prune {d}/tiny.yml --weights {d}/tiny.ckpt --ratio 1.2 --out {o}/out.ckpt", "between 0 and 1"),
    ("prune-ratio-zero", "prune {d}/tiny.yml --weights {d}/tiny.ckpt --ratio 0 --out {o}/out.ckpt", "between 0 and 1"),
    ("prune-threads-zero", "prune {d}/tiny.yml --weights {d}/tiny.ckpt --ratio 0.3 --threads 0 --out {o}/out.ckpt",
     "must be at least 1"),
    ("prune-threads-over-cpus", "prune {d}/tiny.yml --weights {d}/tiny.ckpt --ratio 0.3 --threads 1000 "
     "--out {o}/out.ckpt", "1000 is more than the"),
    ("prune-batch-size", "prune {d}/tiny.yml --weights {d}/tiny.ckpt --ratio 0.3 --batch-size 0 --out {o}/out.ckpt",
     "must be at least 1"),
    ("prune-lr", "prune {d}/tiny.yml --weights {d}/tiny.ckpt --ratio 0.3 --lr 0 --out {o}/out.ckpt", "positive number"),
    ("prune-finetune-no-data", "prune {d}/tiny.yml --weights {d}/tiny.ckpt --ratio 0.3 --finetune-epochs 2 "
     "--out {o}/out.ckpt", "needs --data"),
    ("prune-images-no-ann", "prune {d}/tiny.yml --weights {d}/tiny.ckpt --ratio 0.3 --images {d}/imgs --out {o}/out.ckpt",
     "give both"),
    ("prune-images-not-there", "prune {d}/tiny.yml --weights {d}/tiny.ckpt --ratio 0.3 --images {d}/other_imgs "
     "--ann {d}/ann.json --out {o}/out.ckpt", "holds none"),
    ("prune-exif-neither-frame", "prune {d}/tiny.yml --weights {d}/tiny.ckpt --ratio 0.3 --images {d}/exif_imgs "
     "--ann {d}/exif_neither.json --out {o}/out.ckpt", "annotated as 50x50"),
    ("prune-no-boxes", "prune {d}/tiny.yml --weights {d}/tiny.ckpt --ratio 0.3 --images {d}/imgs "
     "--ann {d}/no_boxes.json --out {o}/out.ckpt", "has a box to score against"),
    ("prune-out-json", "prune {d}/tiny.yml --weights {d}/tiny.ckpt --ratio 0.3 --out {o}/out.json", "checkpoint path"),
    ("prune-calib-no-images", "prune {d}/tiny.yml --weights {d}/tiny.ckpt --ratio 0.3 --calib {d}/no_imgs "
     "--out {o}/out.ckpt", "no images"),
    ("prune-other-arch", "prune {d}/other.yml --weights {d}/tiny.ckpt --ratio 0.3 --out {o}/out.ckpt", "architecture"),
    ("prune-out-read-only", "prune {d}/tiny.yml --weights {d}/tiny.ckpt --ratio 0.3 --out {ro}/out.ckpt", "read-only"),
    ("prune-out-full", "prune {d}/tiny.yml --weights {d}/tiny.ckpt --ratio 0.3 --out {full}/out.ckpt", "no space"),
    # -- quantize (its own checks; listed so the sweep covers every command) --------------------
    ("quantize-missing", "quantize {d}/nope.onnx --calib {d}/imgs", "no such ONNX file"),
    ("quantize-not-onnx", "quantize {d}/tiny.yml --calib {d}/imgs", "ONNX"),
    ("quantize-calib-missing", "quantize {d}/tiny.onnx --calib {d}/nope", "no such calibration images folder"),
    ("quantize-backend", "quantize {d}/tiny.onnx --calib {d}/imgs --backend tvm", "invalid choice"),
    ("quantize-truncated", "quantize {d}/trunc.onnx --calib {d}/imgs --out {o}/out.onnx", "truncated"),
    ("quantize-empty", "quantize {d}/empty.onnx --calib {d}/imgs --out {o}/out.onnx", "empty"),
    ("quantize-garbage", "quantize {d}/garbage.onnx --calib {d}/imgs --out {o}/out.onnx", "not an ONNX model"),
    ("quantize-calib-no-images", "quantize {d}/tiny.onnx --calib {d}/no_imgs --out {o}/out.onnx", "no images"),
    ("quantize-calib-file", "quantize {d}/tiny.onnx --calib {d}/good.jpg --out {o}/out.onnx", "calibration images folder"),
    ("quantize-max-drop-negative", "quantize {d}/tiny.onnx --calib {d}/imgs --images {d}/imgs --ann {d}/ann.json "
     "--max-drop -1 --out {o}/out.onnx", "max-drop"),
    ("quantize-folds-1", "quantize {d}/tiny.onnx --calib {d}/imgs --images {d}/imgs --ann {d}/ann.json --folds 1 "
     "--out {o}/out.onnx", "at least 2"),
    ("quantize-ann-alone", "quantize {d}/tiny.onnx --calib {d}/imgs --ann {d}/ann.json --out {o}/out.onnx", "--images"),
    ("quantize-ann-binary", "quantize {d}/tiny.onnx --calib {d}/imgs --images {d}/imgs --ann {d}/binary.json "
     "--out {o}/out.onnx", "binary.json"),
    ("quantize-none-annotated", "quantize {d}/tiny.onnx --calib {d}/imgs --images {d}/other_imgs --ann {d}/ann.json "
     "--out {o}/out.onnx", "holds none of the 4 images annotated"),
    ("quantize-exif-neither-frame", "quantize {d}/tiny.onnx --calib {d}/imgs --images {d}/exif_imgs "
     "--ann {d}/exif_neither.json --out {o}/out.onnx", "annotated as 50x50"),
    ("quantize-no-boxes", "quantize {d}/tiny.onnx --calib {d}/imgs --images {d}/imgs --ann {d}/no_boxes.json "
     "--out {o}/out.onnx", "has a box to score against"),
    ("quantize-holdout-alone", "quantize {d}/tiny.onnx --calib {d}/imgs --holdout {d}/imgs --out {o}/out.onnx",
     "--holdout needs both"),
    ("quantize-holdout-shared", "quantize {d}/tiny.onnx --calib {d}/imgs --holdout {d}/imgs --holdout-ann {d}/ann.json "
     "--out {o}/out.onnx", "shares"),
    ("quantize-holdout-missing", "quantize {d}/tiny.onnx --calib {d}/imgs --holdout {d}/nope --holdout-ann {d}/ann.json "
     "--out {o}/out.onnx", "nope"),
    ("quantize-adaround-mode", "quantize {d}/tiny.onnx --calib {d}/imgs --adaround sometimes --out {o}/out.onnx",
     "invalid choice"),
    ("quantize-adaround-iters-0", "quantize {d}/tiny.onnx --calib {d}/imgs --adaround-iters 0 --out {o}/out.onnx",
     "at least 1"),
    ("quantize-num-calib-0", "quantize {d}/tiny.onnx --calib {d}/imgs --num-calib 0 --out {o}/out.onnx", "at least 1"),
    ("quantize-finetune-steps-0", "quantize {d}/tiny.onnx --calib {d}/imgs --finetune-steps 0 --out {o}/out.onnx",
     "at least 1"),
    ("quantize-finetune-mode", "quantize {d}/tiny.onnx --calib {d}/imgs --finetune sometimes --out {o}/out.onnx",
     "invalid choice"),
    ("quantize-threads-0", "quantize {d}/tiny.onnx --calib {d}/imgs --threads 0 --out {o}/out.onnx", "at least 1"),
    ("quantize-threads-over-cpus", "quantize {d}/tiny.onnx --calib {d}/imgs --threads 1000 --out {o}/out.onnx",
     "CPUs this process can use"),
    ("quantize-inc-no-recipe", "quantize {d}/tiny.onnx --calib {d}/imgs --backend inc --out {o}/out.onnx", "--recipe"),
    ("quantize-out-folder", "quantize {d}/tiny.onnx --calib {d}/imgs --out {o}", "is a folder"),
    ("quantize-out-json", "quantize {d}/tiny.onnx --calib {d}/imgs --out {o}/out.json", "give the .onnx path"),
    ("quantize-out-under-file", "quantize {d}/tiny.onnx --calib {d}/imgs --out {o}/out.json/x.onnx", "is a file"),
    ("quantize-out-read-only", "quantize {d}/tiny.onnx --calib {d}/imgs --out {ro}/out.onnx", "read-only"),
    # -- supernet ------------------------------------------------------------------------------
    ("supernet-no-verb", "supernet", "required: VERB"),
    ("supernet-init-space-missing", "supernet init --space {d}/nope.yml --classes a,b,c --out {o}/out.ckpt",
     "no such file"),
    ("supernet-init-space-binary", "supernet init --space {d}/binary.yml --classes a,b,c --out {o}/out.ckpt",
     "not a text file"),
    ("supernet-init-space-is-arch", "supernet init --space {d}/tiny.arch.yml --classes a,b,c --out {o}/out.ckpt",
     "unknown key"),
    ("supernet-init-space-duplicate", "supernet init --space {d}/space_dup.yml --classes a,b,c --out {o}/out.ckpt",
     "is given twice"),
    ("supernet-init-classes", "supernet init --space {d}/space.yml --classes a,b --out {o}/out.ckpt", "2 names"),
    ("supernet-init-source-missing", "supernet init --space {d}/space.yml --classes a,b,c --from {d}/nope.onnx "
     "--out {o}/out.ckpt", "no such model"),
    ("supernet-init-source-empty", "supernet init --space {d}/space.yml --classes a,b,c --from {d}/empty.onnx "
     "--images {d}/imgs --out {o}/out.ckpt", "empty.onnx"),
    ("supernet-init-calib-zero", "supernet init --space {d}/space.yml --classes a,b,c --calib-images 0 "
     "--out {o}/out.ckpt", "must be at least 1"),
    ("supernet-init-out-folder", "supernet init --space {d}/space.yml --classes a,b,c --out {o}", "is a folder"),
    ("supernet-init-out-json", "supernet init --space {d}/space.yml --classes a,b,c --out {o}/out.json",
     "checkpoint path"),
    ("supernet-init-out-read-only", "supernet init --space {d}/space.yml --classes a,b,c --out {ro}/out.ckpt",
     "read-only"),
    ("supernet-init-out-full", "supernet init --space {d}/space.yml --classes a,b,c --out {full}/out.ckpt",
     "no space"),
    ("supernet-train-missing", "supernet train {d}/nope.pt --recipe {d}/tiny.yml --epochs 1", "no such supernet"),
    ("supernet-train-empty", "supernet train {d}/empty.pt --recipe {d}/tiny.yml --epochs 1", "truncated"),
    ("supernet-train-truncated", "supernet train {d}/trunc.pt --recipe {d}/tiny.yml --epochs 1", "trunc.pt"),
    ("supernet-train-pickle", "supernet train {d}/garbage.ckpt --recipe {d}/tiny.yml --epochs 1", "garbage.ckpt"),
    ("supernet-train-no-length", "supernet train {d}/super.pt --recipe {d}/tiny.yml", "one of the arguments"),
    ("supernet-train-epochs-zero", "supernet train {d}/super.pt --recipe {d}/tiny.yml --epochs 0",
     "must be at least 1"),
    ("supernet-train-minutes-negative", "supernet train {d}/super.pt --recipe {d}/tiny.yml --minutes -2",
     "positive number"),
    ("supernet-train-lr-zero", "supernet train {d}/super.pt --recipe {d}/tiny.yml --epochs 1 --lr 0",
     "positive number"),
    ("supernet-train-kd-from-outside", "supernet train {d}/super.pt --recipe {d}/tiny.yml --epochs 1 "
     "--inplace-kd-from 1.5", "between 0 and 1"),
    ("supernet-train-recipe-typo", "supernet train {d}/super.pt --recipe {d}/typo.yml --epochs 1", "epochz"),
    ("supernet-train-images-no-ann", "supernet train {d}/super.pt --recipe {d}/tiny.yml --epochs 1 "
     "--images {d}/imgs", "give both"),
    ("supernet-train-no-data", "supernet train {d}/super.pt --recipe {d}/tiny.yml --epochs 1", "data.train"),
    ("supernet-train-class-count", "supernet train {d}/super.pt --recipe {d}/tiny.yml --epochs 1 --images {d}/imgs "
     "--ann {d}/ann6.json", "categories"),
    ("supernet-extract-arch-outside", "supernet extract {d}/super.pt {d}/tiny.arch.yml --out {o}/out.ckpt",
     "outside the supernet's space"),
    ("supernet-extract-other-classes", "supernet extract {d}/super.pt {d}/other_classes.arch.yml --out {o}/out.ckpt",
     "classes"),
    ("supernet-extract-uniform-text", "supernet extract {d}/super.pt uniform-wide --out {o}/out.ckpt",
     "uniform-W"),
    ("supernet-extract-uniform-off-grid", "supernet extract {d}/super.pt uniform-3 --out {o}/out.ckpt",
     "outside the supernet's space"),
    ("supernet-extract-arch-duplicate", "supernet extract {d}/super.pt {d}/dup.arch.yml --out {o}/out.ckpt",
     "is given twice"),
    ("supernet-extract-arch-missing", "supernet extract {d}/super.pt {d}/nope.arch.yml --out {o}/out.ckpt",
     "no such file"),
    ("supernet-extract-calib-empty", "supernet extract {d}/super.pt base --images {d}/no_imgs --out {o}/out.ckpt",
     "no images"),
    ("supernet-extract-out-json", "supernet extract {d}/super.pt base --out {o}/out.json", "checkpoint path"),
    ("supernet-extract-out-read-only", "supernet extract {d}/super.pt base --out {ro}/out.ckpt", "read-only"),
    ("supernet-extract-out-full", "supernet extract {d}/super.pt base --out {full}/out.ckpt", "no space"),
    ("supernet-eval-images-missing", "supernet eval {d}/super.pt base --images {d}/nope --ann {d}/ann.json",
     "no such images folder"),
    ("supernet-eval-images-not-there", "supernet eval {d}/super.pt base --images {d}/other_imgs --ann {d}/ann.json",
     "holds none of the 4 images"),
    ("supernet-eval-ann-missing", "supernet eval {d}/super.pt base --images {d}/imgs --ann {d}/nope.json",
     "no such annotation file"),
    ("supernet-eval-ann-not-coco", "supernet eval {d}/super.pt base --images {d}/imgs --ann {d}/list.json",
     "expected a COCO instances object"),
    ("supernet-eval-class-count", "supernet eval {d}/super.pt base --images {d}/imgs --ann {d}/ann6.json",
     "categories"),
    ("supernet-eval-threads-zero", "supernet eval {d}/super.pt base --images {d}/imgs --ann {d}/ann.json --threads 0",
     "must be at least 1"),
    ("supernet-eval-exif-neither-frame", "supernet eval {d}/super.pt base --images {d}/exif_imgs "
     "--ann {d}/exif_neither.json", "annotated as 50x50"),
    ("supernet-eval-no-boxes", "supernet eval {d}/super.pt base --images {d}/imgs --ann {d}/no_boxes.json",
     "has a box to score against"),
    ("supernet-eval-threads-over-cpus", "supernet eval {d}/super.pt base --images {d}/imgs --ann {d}/ann.json "
     "--threads 1000", "CPUs this process can use"),
    ("supernet-train-threads-over-cpus", "supernet train {d}/super.pt --recipe {d}/tiny.yml --epochs 1 --threads 1000",
     "CPUs this process can use"),
    ("supernet-eval-empty-file", "supernet eval {d}/empty.pt base --images {d}/imgs --ann {d}/ann.json", "truncated"),
    ("supernet-eval-not-supernet", "supernet eval {d}/tiny.ckpt base --images {d}/imgs --ann {d}/ann.json",
     "tiny.ckpt"),
    # -- search --------------------------------------------------------------------------------
    ("search-budget-no-unit", "search --supernet {d}/super.pt --budget 6 {sa} --out {o}/run", "has no unit"),
    ("search-budget-zero", "search --supernet {d}/super.pt --budget 0ms {sa} --out {o}/run", "greater than zero"),
    ("search-budget-negative", "search --supernet {d}/super.pt --budget=-3ms {sa} --out {o}/run", "greater than zero"),
    ("search-budget-100", "search --supernet {d}/super.pt --budget 100% {sa} --out {o}/run", "less than 100%"),
    ("search-budget-text", "search --supernet {d}/super.pt --budget fast {sa} --out {o}/run", "not a number"),
    ("search-budget-impossible", "search --supernet {d}/super.pt --budget 0.001ms {sa} --out {o}/run",
     "is impossible"),
    ("search-workers-zero", "search --supernet {d}/super.pt --budget 90% {sa} --workers 0 --out {o}/run",
     "must be at least 1"),
    ("search-trials-zero", "search --supernet {d}/super.pt --budget 90% {sa} --trials 0 --out {o}/run",
     "must be at least 1"),
    ("search-threads-zero", "search --supernet {d}/super.pt --budget 90% {sa} --threads 0 --out {o}/run",
     "must be at least 1"),
    ("search-eval-images-zero", "search --supernet {d}/super.pt --budget 90% {sa} --eval-images 0 --out {o}/run",
     "must be at least 1"),
    ("search-timeout", "search --supernet {d}/super.pt --budget 90% {sa} --timeout soon --out {o}/run", "--timeout"),
    ("search-storage", "search --supernet {d}/super.pt --budget 90% {sa} --storage mysql://x/y --out {o}/run",
     "postgresql"),
    ("search-supernet-missing", "search --supernet {d}/nope.pt --budget 90% {sa} --out {o}/run", "no such file"),
    ("search-supernet-empty", "search --supernet {d}/empty.pt --budget 90% {sa} --out {o}/run", "truncated"),
    ("search-no-images", "search --supernet {d}/super.pt --budget 90% --table {d}/table.csv --out {o}/run",
     "give --images"),
    ("search-images-not-there", "search --supernet {d}/super.pt --budget 90% --table {d}/table.csv "
     "--images {d}/other_imgs --ann {d}/ann.json --out {o}/run", "holds none"),
    ("search-exif-neither-frame", "search --supernet {d}/super.pt --budget 99% --table {d}/table.csv "
     "--images {d}/exif_imgs --ann {d}/exif_neither.json --out {o}/run", "annotated as 50x50"),
    ("search-no-boxes", "search --supernet {d}/super.pt --budget 99% --table {d}/table.csv --images {d}/imgs "
     "--ann {d}/zero_boxes.json --out {o}/run", "has a box to score against"),
    ("search-table-missing", "search --supernet {d}/super.pt --budget 90% --table {d}/nope.csv --images {d}/imgs "
     "--ann {d}/ann.json --out {o}/run", "no latency table"),
    ("search-table-threads", "search --supernet {d}/super.pt --budget 90% {sa} --threads 3 --out {o}/run",
     "not 3"),
    ("search-out-is-file", "search --supernet {d}/super.pt --budget 90% {sa} --out {o}/out.json", "not a folder"),
    ("search-out-read-only", "search --supernet {d}/super.pt --budget 90% {sa} --out {ro}/run", "read-only"),
    # -- run -----------------------------------------------------------------------------------
    ("run-missing", "run {d}/nope.yml --out {o}/run", "no such file"),
    ("run-binary", "run {d}/binary.yml --out {o}/run", "not a text file"),
    ("run-not-mapping", "run {d}/list.yml --out {o}/run", "mapping"),
    ("run-unknown-key", "run {d}/pipe_typo.yml --out {o}/run", "unknown key 'trialz'"),
    ("run-duplicate-section", "run {d}/pipe_dup.yml --out {o}/run", "key 'search' is given twice"),
    ("run-alias-bomb", "run {d}/bomb.yml --out {o}/run", "alias *a is not supported"),
    ("run-set-duplicate-key", "run {d}/pipe.yml --set 'search={{trials: 2, trials: 3}}' --out {o}/run",
     "--set search: key 'trials' is given twice"),
    ("run-set-alias", "run {d}/pipe.yml --set 'search.trials=[&n 2, *n]' --out {o}/run", "alias *n"),
    ("run-unknown-set-key", "run {d}/pipe.yml --set extract.topk=3 --out {o}/run", "unknown key 'topk'"),
    ("run-set-syntax", "run {d}/pipe.yml --set search.trials --out {o}/run", "KEY=VALUE"),
    ("run-budget-no-unit", "run {d}/pipe.yml --set search.budget=6 --out {o}/run", "has no unit"),
    ("run-budget-unit-typo", "run {d}/pipe.yml --set search.budget=6sec --out {o}/run", "not a number with a unit"),
    ("run-budget-zero", "run {d}/pipe.yml --set search.budget=0% --out {o}/run", "greater than zero"),
    ("run-budget-negative", "run {d}/pipe.yml --set search.budget=-2ms --out {o}/run", "greater than zero"),
    ("run-budget-over-100", "run {d}/pipe.yml --set search.budget=120% --out {o}/run", "less than 100%"),
    ("run-trials-zero", "run {d}/pipe.yml --set search.trials=0 --out {o}/run", "at least 1"),
    ("run-top-k-zero", "run {d}/pipe.yml --set extract.top_k=0 --out {o}/run", "at least 1"),
    ("run-measure-runs", "run {d}/pipe.yml --set measure.runs=0 --out {o}/run", "at least 1"),
    ("run-supernet-length", "run {d}/pipe.yml --set supernet.minutes=null --out {o}/run", "minutes or epochs"),
    ("run-supernet-lr", "run {d}/pipe.yml --set supernet.lr=-1 --out {o}/run", "positive number"),
    ("run-prune-ratio", "run {d}/pipe.yml --set prune.ratio=1.5 --out {o}/run", "[0, 1)"),
    ("run-threads-zero", "run {d}/pipe.yml --set profile.threads=0 --out {o}/run", "at least 1"),
    ("run-coco-no-ann", "run {d}/pipe.yml --set data.kind=coco --set data.images={d}/imgs --out {o}/run",
     "needs `images`"),
    ("run-coco-images-missing", "run {d}/pipe.yml --set data.kind=coco --set data.images={d}/nope "
     "--set data.ann={d}/ann.json --out {o}/run", "no such folder"),
    ("run-space-missing", "run {d}/pipe.yml --set space={d}/nope.yml --out {o}/run", "no such file"),
    ("run-from-unknown", "run {d}/pipe.yml --from nope --out {o}/run", "not a stage"),
    ("run-out-is-file", "run {d}/pipe.yml --out {o}/out.json", "not a folder"),
    ("run-out-read-only", "run {d}/pipe.yml --out {ro}/run", "read-only"),
    ("run-out-full", "run {d}/pipe.yml --out {full}/run", "no space"),
    # -- report --------------------------------------------------------------------------------
    ("report-missing", "report {d}/nope --out {o}/rep", "no such run folder"),
    ("report-a-file", "report {d}/tiny.ckpt --out {o}/rep", "no such run folder"),
    ("report-corrupt-trials", "report {d}/run_trunc --out {o}/rep", "trials.csv row"),
    ("report-binary-trials", "report {d}/run_binary --out {o}/rep", "not UTF-8"),
    ("report-empty-trials", "report {d}/run_empty --out {o}/rep", "column 'number' missing"),
    ("report-no-trials", "report {d}/run_no_trials --out {o}/rep", "no trials yet"),
    ("report-bad-search-json", "report {d}/run_json --out {o}/rep", "not valid JSON"),
    ("report-missing-pareto", "report {d}/run_no_pareto --out {o}/rep", "pareto.csv: missing"),
    ("report-bad-number", "report {d}/run_nan --out {o}/rep", "not a finite number"),
    ("report-models-parent", "report {d}/run_orphan --out {o}/rep", "is not a pareto.csv name"),
    ("report-out-run-folder", "report {d}/run --out {d}/run", "run folder itself"),
    ("report-out-is-file", "report {d}/run --out {o}/out.json", "not a folder"),
    ("report-out-read-only", "report {d}/run --out {ro}/rep", "read-only"),
    ("report-out-full", "report {d}/run --out {full}/rep", "no space"),
    # -- convert-checkpoint --------------------------------------------------------------------
    ("convert-missing", "convert-checkpoint {d}/nope.ckpt --out {o}/out.ckpt", "no such file"),
    ("convert-empty", "convert-checkpoint {d}/empty.pt --out {o}/out.ckpt", "truncated"),
    ("convert-truncated", "convert-checkpoint {d}/trunc.ckpt --out {o}/out.ckpt", "trunc.ckpt"),
    ("convert-junk", "convert-checkpoint {d}/garbage.ckpt --out {o}/out.ckpt", "not a readable checkpoint"),
    ("convert-hostile", "convert-checkpoint {d}/hostile.ckpt --out {o}/out.ckpt",
     "pickled posix.system, which is not numpy data and could run code when read; nothing was run"),
    ("convert-hostile-beside-numpy", "convert-checkpoint {d}/hostile_np.ckpt --out {o}/out.ckpt", "posix.system"),
    ("convert-hostile-raw-pickle", "convert-checkpoint {d}/hostile.pkl --out {o}/out.ckpt", "pickled exec"),
    ("convert-other-type-untrusted", "convert-checkpoint {d}/pathlib.ckpt --out {o}/out.ckpt", "with --trust"),
    ("convert-trust-junk", "convert-checkpoint {d}/garbage.ckpt --out {o}/out.ckpt --trust",
     "not a readable checkpoint"),
    ("convert-same-path", "convert-checkpoint {d}/tiny.ckpt --out {d}/tiny.ckpt", "give a new path"),
    ("convert-no-out", "convert-checkpoint {d}/tiny.ckpt", "--out"),
    ("convert-out-folder", "convert-checkpoint {d}/tiny.ckpt --out {o}", "is a folder"),
    ("convert-out-read-only", "convert-checkpoint {d}/tiny.ckpt --out {ro}/out.ckpt", "read-only"),
    ("convert-out-full", "convert-checkpoint {d}/tiny.ckpt --out {full}/out.ckpt", "no space"),
]


@pytest.mark.parametrize("case, command, expect", CASES, ids=[c[0] for c in CASES])
def test_bad_input(case: str, command: str, expect: str, env, tmp_path, capsys, caplog, fake_timing, monkeypatch) -> None:
    private_tmp = tmp_path / "tmp"  # the system temp dir for this case alone: no other run's folders
    private_tmp.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(private_tmp))
    dest = tmp_path / "dest"
    _old_outputs(dest)
    places = {"d": env.data, "o": dest, "ro": env.ro, "full": env.full,
              "sa": f"--table {env.data}/table.csv --images {env.data}/imgs --ann {env.data}/ann.json"}
    needs = [name for name in ("ro", "full") if "{" + name + "}" in command]
    for name in needs:
        if places[name] is None:
            pytest.skip(env.mount_error)
    argv = [part.format(**places) for part in shlex.split(command.replace("{sa}", places["sa"]))]
    watched = [dest] + [Path(places[n]) for n in needs]
    before = [_snapshot(p) for p in watched]
    scratch_before = _scratch_entries()

    caplog.set_level(logging.WARNING)
    code = main(argv)
    # ednas' own warnings go to stderr too: at most one, about work that ran before the failure
    # (never one line per image or file)
    warned = [f"{r.name}: {r.getMessage()}" for r in caplog.records if r.levelno >= logging.WARNING]
    assert len(warned) <= 1, warned

    err = _without_progress_bars(capsys.readouterr().err)
    assert code == 2, f"exit code {code}, stderr: {err}"
    assert err.count("\n") == 1 and err.endswith("\n"), f"not one line: {err!r}"
    assert "Traceback" not in err and err.startswith("ednas"), err
    assert expect.lower() in err.lower(), err
    for path, snap in zip(watched, before):
        assert _snapshot(path) == snap, f"{path} changed"
    assert not (env.data / MARKER).exists(), "a hostile checkpoint's code ran"
    assert _scratch_entries() <= scratch_before, "left a scratch folder in the temp dir"


SWEPT_COMMANDS = ("flops", "import-onnx", "export", "infer", "train", "test", "data", "profile", "latency",
                  "gradcam", "prune", "quantize", "supernet", "search", "run", "report", "convert-checkpoint")


def case_counts() -> dict[str, int]:
    """Cases per command (the README's conventions section lists these numbers)."""
    counts: dict[str, int] = {}
    for _, command, _ in CASES:
        name = command.split()[0] if command and command.split()[0] in SWEPT_COMMANDS else "usage"
        counts[name] = counts.get(name, 0) + 1
    return counts


def test_case_count_covers_every_command() -> None:
    """At least 80 cases, every command has some, and the README states the counts exactly."""
    assert len(CASES) >= 80
    counts = case_counts()
    assert set(SWEPT_COMMANDS) <= set(counts), set(SWEPT_COMMANDS) - set(counts)
    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text(encoding="utf-8")
    stated = f"{len(CASES)} cases: " + ", ".join(f"{name} {n}" for name, n in counts.items())
    assert stated in " ".join(readme.split()), f"README should say: {stated}"


# -- fixtures ---------------------------------------------------------------------------------
@dataclasses.dataclass
class Env:
    data: Path
    ro: Path | None
    full: Path | None
    mount_error: str


@pytest.fixture(scope="module")
def env(tmp_path_factory) -> Env:
    """The tiny model and every kind of broken input, made once; plus the two tmpfs mounts."""
    data = tmp_path_factory.mktemp("sweep")
    _make_inputs(data)
    ro, full, error = None, None, ""
    mounts: list[Path] = []
    try:
        ro = _mount(tmp_path_factory.mktemp("ro"), False, mounts)
        full = _mount(tmp_path_factory.mktemp("full"), True, mounts)
    except (OSError, subprocess.CalledProcessError) as exc:
        ro = full = None
        error = f"cannot mount a tmpfs here ({exc}); read-only and full-disk cases need root"
    try:
        yield Env(data, ro, full, error)
    finally:
        for path in mounts:
            if subprocess.run(["umount", str(path)], capture_output=True).returncode:
                subprocess.run(["umount", "-l", str(path)], capture_output=True)


@pytest.fixture
def fake_timing(monkeypatch):
    """Pruning's ONNX Runtime timing is not what these cases test: answer at once."""
    from ednas.compress.prune.latency_target import MeasuredLatency

    monkeypatch.setattr(MeasuredLatency, "time_onnx",
                        lambda self, path: {"ratio": 0.8, "median_ms": 0.8, "probe_ms": 1.0})


def _make_inputs(d: Path) -> None:
    from ednas.arch import AuxArch, NeckArch
    from ednas.models import build_model, save_checkpoint
    from ednas.models.export import export_onnx
    from ednas.arch.zoo import get_arch

    base = get_arch("enhanced_nanodet_s")
    arch = dataclasses.replace(
        base, neck=NeckArch(width=32), head=dataclasses.replace(base.head, feat_channels=32),
        aux=AuxArch(feat_channels=32, num_groups=8), input_size=64, num_classes=3,
    )
    arch.save(d / "tiny.arch.yml")
    header = "model: {arch: tiny.arch.yml, input_size: 64}\n"
    recipes = {
        "tiny": header + "data: {class_names: [a, b, c]}\n",
        "two_classes": header + "data: {class_names: [a, b]}\n",
        "other": "model: {arch: enhanced_nanodet_m, input_size: 64}\ndata: {class_names: [a, b, c]}\n",
        "neg_epochs": header + "data: {class_names: [a, b, c]}\ntrain: {epochs: -3}\n",
        "zero_batch": header + "data: {class_names: [a, b, c]}\ntrain: {batch_size: 0}\n",
        "neg_lr": header + "data: {class_names: [a, b, c]}\ntrain: {lr: -1}\n",
        "typo": header + "train: {epochz: 3}\n",
        "garbled": "model: [unclosed\n  - {\n",
        "dup_section": header + "data: {class_names: [a, b, c]}\ntrain: {epochs: 3}\ntrain: {epochs: 5}\n",
        "dup_key": "model: {arch: tiny.arch.yml, input_size: 64, arch: enhanced_nanodet_m}\n",
        "alias": "model: {arch: tiny.arch.yml, input_size: &size 64}\ntrain: {epochs: *size}\n",
        "deep": "model: " + "[" * 100_000 + "]" * 100_000 + "\n",
        "bigint": "model: {arch: tiny.arch.yml, input_size: " + "9" * 5000 + "}\n",
        "long_value": header + "train: {epochs: '" + "x" * 1_000_000 + "'}\n",
        "bomb": _alias_bomb(),
        "list": "- model\n- data\n",
        "card_layout": _card("layout: ssd, strides: [8, 16, 32, 64]"),
        "card_no_mean": _card("layout: nanodet_plus, strides: [8, 16, 32, 64]").replace("mean: [0, 0, 0], ", ""),
        "card_strides": _card("layout: nanodet_plus, strides: [8, 16]"),
    }
    for name, text in recipes.items():
        (d / f"{name}.yml").write_text(text)
    rng = np.random.default_rng(0)
    junk = bytes([0xFF, 0xFE, 0x00, 0x9C]) + rng.bytes(300)
    (d / "binary.yml").write_bytes(junk)
    (d / "binary.json").write_bytes(junk)
    (d / "list.json").write_text("[]\n")

    model = build_model(arch)
    save_checkpoint(d / "tiny.ckpt", model)
    blob = (d / "tiny.ckpt").read_bytes()
    (d / "trunc.ckpt").write_bytes(blob[: len(blob) // 2])
    (d / "garbage.ckpt").write_bytes(junk)
    export_onnx(model, d / "tiny.onnx")
    blob = (d / "tiny.onnx").read_bytes()
    (d / "trunc.onnx").write_bytes(blob[: len(blob) // 2])
    (d / "empty.onnx").write_bytes(b"")
    (d / "garbage.onnx").write_bytes(junk)

    images = d / "imgs"
    images.mkdir()
    coco = {"images": [], "annotations": [],
            "categories": [{"id": i + 1, "name": n} for i, n in enumerate("abc")]}
    for i in range(4):
        img = rng.integers(0, 255, (64, 64, 3), dtype=np.uint8)
        cv2.rectangle(img, (10, 10), (40, 40), (255, 255, 255), -1)
        name = f"{i}.jpg"
        cv2.imwrite(str(images / name), img)
        coco["images"].append({"id": i + 1, "file_name": name, "width": 64, "height": 64})
        coco["annotations"].append({"id": i + 1, "image_id": i + 1, "category_id": i % 3 + 1,
                                    "bbox": [10, 10, 30, 30], "area": 900, "iscrowd": 0})
    (d / "ann.json").write_text(json.dumps(coco))
    (d / "no_images.json").write_text(json.dumps({**coco, "images": [], "annotations": []}))
    (d / "no_boxes.json").write_text(json.dumps({**coco, "annotations": []}))
    zero = [{**a, "bbox": [10, 10, 0, 30], "area": 0} for a in coco["annotations"]]
    (d / "zero_boxes.json").write_text(json.dumps({**coco, "annotations": zero}))
    (d / "no_imgs").mkdir()
    (d / "other_imgs").mkdir()
    cv2.imwrite(str(d / "other_imgs" / "x.jpg"), img)
    shutil.copy(images / "0.jpg", d / "good.jpg")
    shutil.copy(images / "0.jpg", images / "good.jpg")
    shutil.copy(images / "1.jpg", d / "a.jpg")
    jpeg = (images / "0.jpg").read_bytes()
    (d / "trunc.jpg").write_bytes(jpeg[: len(jpeg) // 2])
    (d / "broken.jpg").write_bytes(junk)
    (d / "empty.jpg").write_bytes(b"")
    (d / "ann6.json").write_text(json.dumps({**coco, "categories": [{"id": i + 1, "name": f"c{i}"} for i in range(6)]}))
    (d / "empty.pt").write_bytes(b"")
    _make_hostile_checkpoints(d, model)
    _make_exif_inputs(d, coco)
    _make_search_inputs(d, arch)


def _card(output: str) -> str:
    """A peer card for the tiny 64-px model of classes a, b, c with this output section."""
    return ("name: tiny\ninput: {size: 64, colour: bgr, mean: [0, 0, 0], std: [1, 1, 1], resize: stretch, "
            f"interpolation: linear}}\noutput: {{{output}, scores: probabilities}}\nclass_names: [a, b, c]\n")


def _make_hostile_checkpoints(d: Path, model) -> None:
    """Files whose full unpickling would run code (creating d/MARKER), and one of a harmless
    type that only --trust converts."""
    from pathlib import PurePosixPath

    hostile = _RunsShell(d / MARKER)
    torch.save({"format": "ednas", "model": model.state_dict(), "note": hostile}, d / "hostile.ckpt")
    torch.save({"rng": np.random.get_state(), "best": np.float64(0.5), "note": hostile}, d / "hostile_np.ckpt")
    code = f"open({str(d / MARKER)!r}, 'w')".encode()
    (d / "hostile.pkl").write_bytes(b"\x80\x02cbuiltins\nexec\nX" + len(code).to_bytes(4, "little") + code
                                    + b"\x85R.")
    torch.save({"format": "ednas", "source": PurePosixPath("/models/s.onnx")}, d / "pathlib.ckpt")


def _alias_bomb() -> str:
    """The "billion laughs": nine levels, each listing the previous one nine times."""
    lines = ['a: &a ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]']
    for prev, name in zip("abcdefgh", "bcdefghi"):
        lines.append(f"{name}: &{name} [" + ", ".join([f"*{prev}"] * 9) + "]")
    return "\n".join(lines) + "\n"


def _make_exif_inputs(d: Path, coco: dict) -> None:
    """A phone-like photo (64x32 stored, EXIF orientation 6: shown 32x64) annotated as neither
    size, and annotations whose image sizes are not whole pixels."""
    exif = load_test_module("exif_fixture", Path(__file__).resolve().parent / "data" / "exif_fixture.py")
    (d / "exif_imgs").mkdir()
    img = np.random.default_rng(1).integers(0, 255, (32, 64, 3), dtype=np.uint8)
    (d / "exif_imgs" / "r6.jpg").write_bytes(exif.tagged_jpeg(exif.encode(img), 6))
    entry = {"id": 1, "file_name": "r6.jpg", "width": 50, "height": 50}
    box = {"id": 1, "image_id": 1, "category_id": 1, "bbox": [2, 2, 20, 20], "area": 400, "iscrowd": 0}
    (d / "exif_neither.json").write_text(json.dumps({**coco, "images": [entry], "annotations": [box]}))
    for name, key, value in (("size_text", "width", "64"), ("size_zero", "height", 0)):
        images = [dict(e) for e in coco["images"]]
        images[0][key] = value
        (d / f"{name}.json").write_text(json.dumps({**coco, "images": images}))


def _make_search_inputs(d: Path, tiny) -> None:
    """A supernet of a two-gene space of 3 classes at 64 px with a made-up latency table, a
    pipeline file around it, and search run folders (one good, one per kind of damage)."""
    from ednas.arch.space import SearchSpace
    from ednas.supernet.init import init_supernet

    tests = Path(__file__).resolve().parent
    search_fixtures = load_test_module("search_fixtures", tests / "search" / "conftest.py")
    run_fixture = load_test_module("report_run_fixture", tests / "report" / "run_fixture.py")
    base = dataclasses.replace(search_fixtures.TINY_BASE, num_classes=3, input_size=64)
    base.save(d / "space_base.arch.yml")
    base.replace(num_classes=4).save(d / "other_classes.arch.yml")
    (d / "space.yml").write_text("base: space_base.arch.yml\nbackbone: {widths: [0.5, 1.0], kr: [true, false]}\n"
                                 "neck: {block_types: [normal, plus], width: [16, 24]}\n"
                                 "input_size: {min: 64, max: 64}\n")
    space = SearchSpace.load(d / "space.yml")
    search_fixtures.write_table(space, d / "table.csv")
    init_supernet(space, d / "super.pt", class_names=("a", "b", "c"))
    blob = (d / "super.pt").read_bytes()
    (d / "trunc.pt").write_bytes(blob[: len(blob) // 2])
    pipe = "space: space.yml\nrecipe: tiny.yml\nprofile: {table: table.csv}\nsearch: {trials: 3}\n"
    (d / "pipe.yml").write_text(pipe)
    (d / "pipe_typo.yml").write_text(pipe.replace("trials", "trialz"))
    (d / "pipe_dup.yml").write_text(pipe + "search: {trials: 5}\n")
    space_text = (d / "space.yml").read_text()
    (d / "space_dup.yml").write_text(space_text + "neck: {width: [16]}\n")
    (d / "space_alias.yml").write_text(space_text.replace("widths: [0.5, 1.0]", "widths: &w [0.5, 1.0]")
                                       .replace("width: [16, 24]", "width: *w"))
    arch_text = (d / "space_base.arch.yml").read_text()
    (d / "dup.arch.yml").write_text(arch_text + arch_text.splitlines(keepends=True)[0])

    run = run_fixture.make_run(d / "run")
    damaged = {
        "run_trunc": ("trials.csv", (run / "trials.csv").read_bytes()[:300]),
        "run_binary": ("trials.csv", b"\xff\xfe\x00junk\n"),
        "run_empty": ("trials.csv", b""),
        "run_no_trials": ("trials.csv", (run / "trials.csv").read_bytes().splitlines(keepends=True)[0]),
        "run_json": ("search.json", b'{"budget_ms": 7.5,'),
        "run_nan": ("pareto.csv", _last_cell(run / "pareto.csv", b"nan")),
        "run_orphan": ("models.csv", (run / "models.csv").read_bytes() + b"x.int8,nope,int8,0.2,,,3,1.0,x\n"),
        "run_no_pareto": ("pareto.csv", None),
    }
    for name, (file, payload) in damaged.items():
        shutil.copytree(run, d / name)
        if payload is None:
            (d / name / file).unlink()
        else:
            (d / name / file).write_bytes(payload)


def _last_cell(path: Path, value: bytes) -> bytes:
    """The CSV at `path` with the last cell of its first data row replaced by `value`."""
    lines = path.read_bytes().splitlines(keepends=True)
    lines[1] = lines[1].rstrip(b"\r\n").rsplit(b",", 1)[0] + b"," + value + b"\n"
    return b"".join(lines)


def _old_outputs(dest: Path) -> None:
    """A destination that already holds an earlier output of every name, and a user's folder."""
    dest.mkdir(parents=True, exist_ok=True)
    for name in OLD_NAMES:
        (dest / name).write_bytes(OLD)
    (dest / "userdir").mkdir()
    (dest / "userdir" / "notes.txt").write_bytes(OLD)


def _mount(path: Path, fill: bool, mounts: list[Path]) -> Path:
    """A 64 KiB tmpfs at `path`: read-only (holding old outputs) or filled to the last byte."""
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", str(path)], check=True,
                   capture_output=True)
    mounts.append(path)
    if fill:
        _old_outputs(path)
        fd = os.open(path / "filler", os.O_WRONLY | os.O_CREAT)
        try:
            while os.write(fd, b"\0" * 512):
                pass
        except OSError:
            pass  # full
        finally:
            os.close(fd)
    else:
        _old_outputs(path)
        subprocess.run(["mount", "-o", "remount,ro", str(path)], check=True, capture_output=True)
    return path


def _snapshot(root: Path) -> dict[str, str]:
    """Every file and folder under `root` (hidden ones included) with a hash of its content."""
    out = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames:
            out[os.path.relpath(os.path.join(dirpath, name), root)] = "dir"
        for name in filenames:
            full = os.path.join(dirpath, name)
            out[os.path.relpath(full, root)] = hashlib.sha256(Path(full).read_bytes()).hexdigest()
    return out


def _without_progress_bars(err: str) -> str:
    """stderr less tqdm's bars (lines redrawn with carriage returns): a step that ran before the
    failure may show its progress; the message itself is what must be one line."""
    kept = [line for line in err.split("\n") if "\r" not in line]
    return "\n".join(kept)


def _scratch_entries() -> set[str]:
    return {n for n in os.listdir(tempfile.gettempdir()) if n.startswith("ednas-")}


# -- the good paths the sweep's rules shape ----------------------------------------------------
def test_truncated_jpeg_is_skipped_with_a_warning_and_counted(env, tmp_path, capsys):
    images = tmp_path / "imgs"
    shutil.copytree(env.data / "imgs", images)
    jpeg = (images / "2.jpg").read_bytes()
    (images / "2.jpg").write_bytes(jpeg[: len(jpeg) // 2])
    code = main(["test", str(env.data / "tiny.yml"), "--weights", str(env.data / "tiny.ckpt"),
                 "--images", str(images), "--ann", str(env.data / "ann.json"), "--batch", "2",
                 "--out", str(tmp_path / "m.json")])
    out = capsys.readouterr().out
    assert code == 0 and "on 3 images" in out and "(1 unreadable, skipped)" in out
    metrics = json.loads((tmp_path / "m.json").read_text())
    assert metrics["images"] == 3 and 0 <= metrics["mAP"] <= 1  # fractions in JSON


def test_prune_writes_its_set_with_umask_modes_and_no_leftovers(env, tmp_path, capsys, fake_timing, monkeypatch):
    private_tmp = tmp_path / "tmp"
    private_tmp.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(private_tmp))
    out = tmp_path / "dest" / "p.ckpt"
    argv = ["prune", str(env.data / "tiny.yml"), "--weights", str(env.data / "tiny.ckpt"), "--ratio", "0.3",
            "--out", str(out), "--threads", "1"]
    old = os.umask(0o022)
    try:
        assert main(argv) == 0
        first = (out.with_suffix(".json")).read_text()
        assert main(argv) == 0  # a rerun replaces the set
    finally:
        os.umask(old)
    assert sorted(os.listdir(out.parent)) == ["p.arch.yml", "p.ckpt", "p.json"]
    for name in os.listdir(out.parent):
        assert (out.parent / name).stat().st_mode & 0o777 == 0o644, name
    assert not [n for n in os.listdir(private_tmp) if n.startswith("ednas-")] and json.loads(first)["ratio"] == 0.3
    assert main(["flops", str(env.data / "tiny.yml"), "--weights", str(out)]) == 0


def test_exif_tagged_photos_score_as_untagged_in_either_annotation_frame(env, tmp_path, capsys):
    """A photo with an EXIF orientation annotated in its stored frame, or in the frame a viewer
    shows, scores exactly as the same pixels without the tag (issue 30: a tagged set scored 76.8
    -> 1.6 mAP); `infer --ann` draws the frame `test` scores, plain `infer` what a viewer shows."""
    exif = load_test_module("exif_fixture", Path(__file__).resolve().parent / "data" / "exif_fixture.py")
    coco = json.loads((env.data / "ann.json").read_text())
    rng = np.random.default_rng(2)
    folders = {name: tmp_path / name for name in ("plain", "stored", "shown")}
    for folder in folders.values():
        folder.mkdir()
    for entry in coco["images"]:  # 64 wide, 48 high: the two frames differ in size
        img = rng.integers(0, 255, (48, 64, 3), dtype=np.uint8)
        cv2.rectangle(img, (10, 10), (40, 40), (255, 255, 255), -1)
        entry.update(file_name=entry["file_name"].replace(".jpg", ".png"), height=48)
        png = exif.encode(img, ".png")
        (folders["plain"] / entry["file_name"]).write_bytes(png)
        (folders["stored"] / entry["file_name"]).write_bytes(exif.tagged_png(png, 6))
        turned = exif.encode(exif.stored_for(img, 6), ".png")  # a viewer turns it back into `img`
        (folders["shown"] / entry["file_name"]).write_bytes(exif.tagged_png(turned, 6))
    ann = tmp_path / "ann.json"
    ann.write_text(json.dumps(coco))
    model = [str(env.data / "tiny.yml"), "--weights", str(env.data / "tiny.ckpt")]
    scores = {}
    for name, folder in folders.items():
        out = tmp_path / f"{name}.json"
        assert main(["test", *model, "--images", str(folder), "--ann", str(ann), "--out", str(out)]) == 0
        scores[name] = json.loads(out.read_text())
    assert scores["stored"] == scores["plain"] and scores["shown"] == scores["plain"]
    assert scores["plain"]["images"] == 4

    for name, with_ann, shape in (("stored", True, (48, 64)), ("stored", False, (64, 48)),
                                  ("shown", True, (48, 64)), ("shown", False, (48, 64))):
        drawn = tmp_path / f"drawn_{name}_{with_ann}"
        extra = ["--ann", str(ann)] if with_ann else []
        assert main(["infer", *model, str(folders[name] / "0.png"), "--out", str(drawn), *extra]) == 0
        assert cv2.imread(str(drawn / "0.png")).shape[:2] == shape, (name, with_ann)
    capsys.readouterr()


def test_an_undefined_map_is_shown_as_na_never_as_zero(env, tmp_path, capsys):
    """The one annotated box sits on an unreadable image: the images scored have no ground
    truth, so mAP is undefined: "n/a" on screen, COCOeval's -1 and no interval in the JSON."""
    coco = json.loads((env.data / "ann.json").read_text())
    coco["annotations"] = coco["annotations"][:1]  # image 1 (0.jpg) only
    ann = tmp_path / "ann.json"
    ann.write_text(json.dumps(coco))
    images = tmp_path / "imgs"
    shutil.copytree(env.data / "imgs", images)
    jpeg = (images / "0.jpg").read_bytes()
    (images / "0.jpg").write_bytes(jpeg[: len(jpeg) // 2])
    out = tmp_path / "m.json"
    assert main(["test", str(env.data / "tiny.yml"), "--weights", str(env.data / "tiny.ckpt"), "--images",
                 str(images), "--ann", str(ann), "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "mAP n/a: none of the 3 images scored has a ground-truth box" in printed
    assert "mAP 0.0" not in printed and " 0.0" not in printed
    metrics = json.loads(out.read_text())
    assert metrics["mAP"] == -1 and metrics["mAP_interval"] is None and metrics["images"] == 3
