"""Grad-CAM for the detector: which part of the image drives a class score.

The target is the raw class logit of one class, summed over the priors of one pyramid level
(or taken at the single prior that produced one detection). Activations and gradients come
from that level's neck output (GhostPAN map); Grad-CAM weights each channel by its spatially
averaged gradient, sums, ReLUs and normalises to [0, 1] (for one detection the per-position
gradient is the better weight, HiResCAM: see `_WEIGHTS`). The map is then brought back to the
original image: the cell (x, y) of a stride-s map sits at input pixel (x*s, y*s), the same
point as its prior (`models.decode.make_priors`).
"""

from __future__ import annotations

import difflib
import logging
from dataclasses import dataclass
from typing import Callable, Sequence

import cv2
import numpy as np
import torch
import torch.nn.functional as F

from ednas.data.preprocess import MEAN_BGR, STD_BGR, Scale, preprocess
from ednas.errors import InputError
from ednas.models.decode import Detections, decode, featmap_sizes, make_priors, postprocess
from ednas.models.detector import Detector
from ednas.report.draw import draw_detections

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class GradCam:
    """What was explained and how it looks."""

    heatmap: np.ndarray  # (H, W) float32 in [0, 1], original image size
    overlay: np.ndarray  # (H, W, 3) BGR uint8: JET heatmap over the image, `detections` on top
    #                      (only the explained one with box=k)
    method: str  # the channel weighting used, one of CAM_METHODS
    label: int  # explained class index
    level: int  # pyramid level index; its stride is model.arch.strides[level]
    stride: int
    detections: Detections  # detections of `label`, original image coordinates, by score
    detection: int | None  # index into `detections`: the explained one (box=k), else the
    #                        strongest on `level`; None when the level has none
    score: float  # that detection's score, else the class's best prior score on `level`
    bbox: tuple[float, float, float, float] | None  # that detection's box (x1, y1, x2, y2)


def class_index(name: str, class_names: Sequence[str]) -> int:
    """Index of class `name`; an unknown name raises InputError listing a few valid ones."""
    if name in class_names:
        return list(class_names).index(name)
    close = difflib.get_close_matches(name, class_names, n=3)
    shown = ", ".join(close or class_names[:8]) + ("" if close or len(class_names) <= 8 else ", ...")
    raise InputError(f"--class {name!r} is not a class of this model ({len(class_names)} classes); "
                     f"{'did you mean' if close else 'valid names'}: {shown}")


def level_ranges(input_hw: tuple[int, int], strides: Sequence[int]) -> list[range]:
    """Prior indices of each level in the head's output order."""
    ranges, start = [], 0
    for h, w in featmap_sizes(input_hw, strides):
        ranges.append(range(start, start + h * w))
        start += h * w
    return ranges


def _level_of(prior: int, ranges: Sequence[range]) -> int:
    return next(i for i, r in enumerate(ranges) if prior in r)


def _take(det: Detections, index: torch.Tensor | slice) -> Detections:
    return Detections(det.boxes[index], det.scores[index], det.labels[index])


def forward_with_neck(model: Detector, x: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
    """Raw logits (N, A, C + 4*(R+1)) and the neck maps (per level (N, C, h, w)), in the graph."""
    captured: list[list[torch.Tensor]] = []
    handle = model.fpn.register_forward_hook(lambda _m, _i, out: captured.append(out))
    try:
        out = model(x.requires_grad_(True))  # grad on x: works even with frozen weights
    finally:
        handle.remove()
    return out, captured[0]


# channel weights from the gradient (1, C, h, w) of the target w.r.t. the neck map.
# "gradcam": one weight per channel, its spatially averaged gradient (Selvaraju et al. 2017).
# "hirescam": the gradient at each position (Draelos & Carin 2020). For a one-prior target (one
# detection) averaged weights light up every instance of the class; this stays on the prior's
# receptive field. For a whole level it follows background priors too: gradcam is better there.
_WEIGHTS: dict[str, Callable[[torch.Tensor], torch.Tensor]] = {
    "gradcam": lambda grad: grad.mean(dim=(2, 3), keepdim=True),  # (1, C, 1, 1)
    "hirescam": lambda grad: grad,  # (1, C, h, w)
}
CAM_METHODS = tuple(_WEIGHTS)


def grad_cam(target: torch.Tensor, fmap: torch.Tensor, method: str = "gradcam") -> torch.Tensor:
    """CAM of scalar `target` on feature map fmap (1, C, h, w) -> (h, w) in [0, 1]."""
    (grad,) = torch.autograd.grad(target, fmap)  # (1, C, h, w)
    weights = _WEIGHTS[method](grad)
    cam = F.relu((weights * fmap).sum(dim=1))[0].detach()  # (h, w)
    peak = cam.max()
    if peak <= 0:
        log.warning("Grad-CAM is zero everywhere (no positive evidence for the target)")
        return cam
    return cam / peak


def cam_to_image(
    cam: torch.Tensor, stride: int, input_size: int, scale: Scale, image_hw: tuple[int, int]
) -> np.ndarray:
    """(h, w) map of a stride-`stride` level -> (H, W) float32 in [0, 1] over the original image."""
    h, w = cam.shape
    # align_corners: cell x lands exactly on input pixel x*stride, like its prior point
    up = F.interpolate(cam[None, None], size=((h - 1) * stride + 1, (w - 1) * stride + 1),
                       mode="bilinear", align_corners=True)
    pad_h, pad_w = max(0, input_size - up.shape[2]), max(0, input_size - up.shape[3])
    up = F.pad(up, (0, pad_w, 0, pad_h), mode="replicate")[0, 0, :input_size, :input_size]
    # the image occupies the top-left (H/sy, W/sx) of the input (all of it unless keep_ratio)
    height, width = image_hw
    sx, sy = scale
    crop = up[: max(1, round(height / sy)), : max(1, round(width / sx))].numpy()
    heat = np.clip(cv2.resize(crop, (width, height), interpolation=cv2.INTER_LINEAR), 0.0, None)
    peak = heat.max()
    return heat / peak if peak > 0 else heat  # resizing and cropping can lower the peak


def render(
    image: np.ndarray, heatmap: np.ndarray, det: Detections, class_names: Sequence[str],
    alpha: float = 0.5, score_thr: float = 0.0,
) -> np.ndarray:
    """JET-coloured `heatmap` blended over BGR `image`, detections `det` drawn on top."""
    colour = cv2.applyColorMap(np.uint8(np.round(heatmap * 255)), cv2.COLORMAP_JET)
    blend = cv2.addWeighted(image, 1.0 - alpha, colour, alpha, 0.0)
    return draw_detections(blend, det, class_names, score_thr)


def source_priors(det: Detections, scores: torch.Tensor, boxes: torch.Tensor, scale: Scale) -> list[int]:
    """The prior that produced each detection: the one with its score and (scaled) box.
    scores (A, C) and boxes (A, 4, input pixels) are those `postprocess` decoded."""
    sx, sy = scale
    mapped = boxes * boxes.new_tensor([sx, sy, sx, sy])  # (A, 4) original image pixels
    priors = []
    for b, s, c in zip(det.boxes, det.scores, det.labels):
        cost = (scores[:, int(c)] - s).abs() * 1e4 + (mapped - b).abs().sum(-1)
        priors.append(int(cost.argmin()))
    return priors


def explain(
    model: Detector, image: np.ndarray, class_names: Sequence[str], label: int | None = None,
    level: int | None = None, box: int | None = None, keep_ratio: bool = False,
    mean: Sequence[float] = MEAN_BGR, std: Sequence[float] = STD_BGR, score_thr: float = 0.35,
    method: str | None = None,
) -> GradCam:
    """Grad-CAM of BGR `image` for class `label` (default: the top-scoring detection's class).

    Detections are those of `label` scoring >= score_thr. The target is the class logit
    summed over the priors of `level` (default: the level of the class's strongest
    prediction), or with `box` = k the logit at the prior that produced detection k.
    `method` (CAM_METHODS) defaults to "gradcam" for a level, "hirescam" for one detection.
    Puts `model` in eval mode.
    """
    arch = model.arch
    num_classes, num_levels, size = arch.num_classes, len(arch.strides), arch.input_size
    if box is not None and level is not None:
        raise InputError("--box explains one detection on its own level: give --box or --level, not both")
    if level is not None and not 0 <= level < num_levels:
        raise InputError(f"--level {level} is out of range: this model has levels 0..{num_levels - 1} "
                         f"(strides {', '.join(map(str, arch.strides))})")
    if method is not None and method not in CAM_METHODS:
        raise InputError(f"--method {method!r} is unknown; valid methods: {', '.join(CAM_METHODS)}")
    if label is not None and not 0 <= label < num_classes:
        raise InputError(f"class index {label} is out of range 0..{num_classes - 1}")
    x, scale = preprocess(image, size, keep_ratio, mean, std)
    model.eval()
    out, neck = forward_with_neck(model, torch.from_numpy(x))
    with torch.no_grad():
        scores = out[0, :, :num_classes].sigmoid()  # (A, C)
        inference = torch.cat([scores[None], out[..., num_classes:]], -1)  # the deployment contract
        if label is None:  # the strongest prior is the top-scoring detection
            label = int(scores.max(dim=0).values.argmax())
        det = postprocess(inference, (size, size), arch.strides, num_classes, arch.head.reg_max, [scale])[0]
        keep = (det.labels == label) & (det.scores >= score_thr)
        det = _take(det, keep)
        _, boxes = decode(inference, make_priors((size, size), arch.strides), num_classes,
                          arch.head.reg_max, (size, size))
    ranges = level_ranges((size, size), arch.strides)
    det_priors = source_priors(det, scores, boxes[0], scale)
    det_levels = [_level_of(p, ranges) for p in det_priors]

    logits = out[0, :, label]  # (A,) in the graph
    if box is not None:
        if not 0 <= box < len(det.scores):
            raise InputError(f"--box {box}: {class_names[label]!r} has {len(det.scores)} detections scoring "
                             f">= {score_thr}" + (f" (use 0..{len(det.scores) - 1})" if len(det.scores) else ""))
        level, target = det_levels[box], logits[det_priors[box]]
    else:
        if level is None:
            level = _level_of(int(scores[:, label].argmax()), ranges)
        target = logits[ranges[level].start:ranges[level].stop].sum()
    # what to report: the explained detection, else the strongest one on the level
    shown = box if box is not None else next((k for k, lv in enumerate(det_levels) if lv == level), None)
    if shown is not None:
        score, bbox = float(det.scores[shown]), tuple(float(v) for v in det.boxes[shown])
    else:
        r = ranges[level]
        score, bbox = float(scores[r.start:r.stop, label].max()), None
        log.warning("no detection of %r scoring >= %.2f on level %d; explaining its logits anyway",
                    class_names[label], score_thr, level)
    stride = arch.strides[level]
    method = method or ("hirescam" if box is not None else "gradcam")
    cam = grad_cam(target, neck[level], method)
    heatmap = cam_to_image(cam, stride, size, scale, image.shape[:2])
    drawn = det if box is None else _take(det, slice(box, box + 1))  # only the explained one
    overlay = render(image, heatmap, drawn, class_names)
    log.debug("%s of class %d on level %d (stride %d)", method, label, level, stride)
    return GradCam(heatmap, overlay, method, label, level, stride, det, shown, score, bbox)
