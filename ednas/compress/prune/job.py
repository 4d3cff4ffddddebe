"""The pruning job: find the cut that meets a latency target (or take a ratio), prune, export,
time, evaluate, optionally fine-tune with distillation, and write CKPT, CKPT's ARCH.yml and a
JSON summary as one output set. `ednas prune` and the pipeline call `prune(options)`.

Errors name the argument (`target_latency`, `ratio`, `out`, ...), never a command-line flag.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ednas.arch import ArchSpec
from ednas.errors import InputError

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Target:
    """A parsed latency target: `kind` "ms" (absolute, on this machine now) or "relative"
    (fraction of the unpruned model's latency); `text` is what the user wrote."""

    kind: str
    value: float
    text: str


@dataclass(frozen=True)
class PruneOptions:
    """What to prune to and what to do after; exactly one of `target` and `ratio`."""

    out: Path  # pruned checkpoint; OUT.arch.yml and OUT.json are written beside it, as one set
    target: Target | None = None  # latency to reach (see parse_target)
    ratio: float | None = None  # or: fraction of every width to remove, in (0, 1)
    table: str | None = None  # latency table (CSV) to search with; None: measure candidates
    threads: int = 2  # ONNX Runtime threads for timing
    calib: str | None = None  # images to recalibrate BatchNorms on after pruning (default: images)
    images: str | None = None  # evaluate before / after on these images ...
    ann: str | None = None  # ... with this COCO json (or VOC folder)
    finetune_epochs: int = 0  # distillation fine-tune epochs (needs data)
    data: str | None = None  # training data for the fine-tune (as for `ednas train --data`)
    batch_size: int = 16  # fine-tune batch size
    lr: float = 2e-4  # fine-tune learning rate

    def check(self) -> None:
        """Refuse inconsistent options before any work."""
        if (self.target is None) == (self.ratio is None):
            raise InputError("give exactly one of `target_latency` and `ratio`")
        if self.ratio is not None and not 0 < self.ratio < 1:
            raise InputError(f"`ratio` {self.ratio}: give a fraction between 0 and 1")
        if self.finetune_epochs and not self.data:
            raise InputError("`finetune_epochs` needs `data` (the training images)")
        if bool(self.images) != bool(self.ann):
            raise InputError("give both `images` and `ann`, or neither")
        if Path(self.out).suffix in (".yml", ".yaml", ".json"):
            raise InputError(f"`out` {self.out}: give the checkpoint path (e.g. pruned.ckpt); "
                             "the .arch.yml and .json go beside it")


@dataclass(frozen=True)
class PruneResult:
    summary: dict[str, Any]  # what OUT.json holds
    checkpoint: Path
    arch: Path
    summary_path: Path


def parse_target(text: str) -> Target:
    """'8ms' / '8000us' -> ("ms", 8.0); '75%' / '0.75x' -> ("relative", 0.75). The unit is
    required (as for search's budget): a bare number could be either. A relative target must
    be below the unpruned model (under 100 %) and above 0; an absolute one above 0."""
    m = re.fullmatch(r"\s*([0-9]*\.?[0-9]+)\s*(ms|us|%|x)?\s*", text)
    if not m:
        raise InputError(f"`target_latency` {text!r}: write e.g. 8ms or 75%")
    if m.group(2) is None:
        raise InputError(f"`target_latency` {text!r} has no unit; write {m.group(1)}ms (on this machine) or "
                         f"{m.group(1)}% (of the unpruned model's latency)")
    value, unit = float(m.group(1)), m.group(2)
    if value <= 0:
        raise InputError(f"`target_latency` {text}: must be above 0")
    if unit in ("ms", "us"):
        return Target("ms", value if unit == "ms" else value / 1000, text)
    relative = value / 100 if unit == "%" else value
    if relative >= 1:
        raise InputError(f"`target_latency` {text}: pruning only makes a model faster; give less than 100% "
                         "(or 1x) of the unpruned latency, e.g. 75%")
    return Target("relative", relative, text)


def prune(recipe, model, source: str, options: PruneOptions) -> PruneResult:
    """Prune `model` (built from `recipe`, loaded from checkpoint `source`) as `options` say."""
    from ednas.data import load_eval_set
    from ednas.io import check_output, scratch_dir

    options.check()
    out = Path(options.out)
    for path in (out, out.with_suffix(".arch.yml"), out.with_suffix(".json")):
        check_output(path)
    model.eval()
    if options.images:  # before minutes of pruning: the evaluation set must hold the images
        load_eval_set(options.images, options.ann, recipe.class_names)
    if options.table:  # a table of another CPU, thread count, precision or space: refused now
        _load_table(options.table, model.arch, options.threads)
    with scratch_dir("prune") as work:  # candidate ONNX files, fine-tune state; always removed
        return _prune(recipe, model, source, options, work)


def _prune(recipe, model, source: str, options: PruneOptions, work: Path) -> PruneResult:
    """Find the ratio, prune, (fine-tune), evaluate, then commit the output set."""
    from ednas.compress.prune.latency_target import MeasuredLatency
    from ednas.io import output_set
    from ednas.models import save_checkpoint
    from ednas.models.complexity import complexity
    from ednas.models.export import export_onnx

    from ednas.compress.prune.weights import prune_weights

    base = model.arch
    measured = MeasuredLatency(base, options.threads, work)
    ratio, target_arch, goal = _choose_cut(base, measured, options, work)
    calib = _calibration_batches(options.calib or options.images, base.input_size)
    pruned = prune_weights(model, target_arch, calib)
    before, after = complexity(model), complexity(pruned)

    timing = measured.time_onnx(export_onnx(pruned, work / "pruned.onnx"))
    summary: dict[str, Any] = {
        "recipe": recipe.name, "source": str(source), "ratio": round(ratio, 4),
        "target_relative": goal,
        "params": {"before": before["params"], "after": after["params"]},
        "macs": {"before": before["macs"], "after": after["macs"]},
        "latency": {"relative_measured": round(timing["ratio"], 4), "pruned_ms": round(timing["median_ms"], 3),
                    "unpruned_ms": round(timing["probe_ms"], 3), "threads": options.threads},
        "widths": {"backbone": list(target_arch.backbone.widths) if hasattr(target_arch.backbone, "widths") else None,
                   "neck": target_arch.neck.width, "head": target_arch.head.feat_channels},
    }
    if options.table:
        try:
            summary["latency"]["relative_predicted"] = round(_table_latency(options.table, base, None, options.threads)(target_arch), 4)
        except Exception as exc:  # a table that cannot price the pruned widths
            summary["latency"]["relative_predicted"] = f"n/a ({exc})"

    if options.images:
        summary["mAP"] = {"before": _evaluate(model, recipe, options),
                          "after_pruning": _evaluate(pruned, recipe, options)}
    if options.finetune_epochs:
        pruned = _finetune(pruned, model, recipe, options, work)
        if options.images:
            summary["mAP"]["after_finetune"] = _evaluate(pruned, recipe, options)

    # checkpoint, ARCH.yml and summary are one output: committed together (a kill leaves the
    # old set or the new one, never a mix; see ednas.io.output_set)
    out = Path(options.out)
    arch_path, summary_path = out.with_suffix(".arch.yml"), out.with_suffix(".json")
    with output_set(out, arch_path, summary_path) as (tmp_ckpt, tmp_arch, tmp_summary):
        save_checkpoint(tmp_ckpt, pruned, source=str(source), pruning=summary)
        pruned.arch.save(tmp_arch)
        tmp_summary.write_text(json.dumps(summary, indent=2) + "\n")
    return PruneResult(summary, out, arch_path, summary_path)


def _choose_cut(base: ArchSpec, measured, options: PruneOptions, work: Path) -> tuple[float, ArchSpec, float | None]:
    """(ratio, pruned architecture, relative target or None): the given ratio, or the ratio
    whose candidate meets the latency target."""
    from ednas.compress.prune.latency_target import find_ratio
    from ednas.compress.prune.weights import PruningError, shrink_arch

    if options.ratio is not None:
        return options.ratio, shrink_arch(base, options.ratio), None
    target = options.target
    if target.kind == "ms":
        base_ms = measured.time_onnx(work / "base.onnx")["median_ms"]
        goal = target.value / base_ms
        log.info("unpruned model: %.2f ms now (%d threads); target %s ms = %.3fx",
                 base_ms, options.threads, target.value, goal)
    else:
        goal = target.value
    latency = _table_latency(options.table, base, measured, options.threads) if options.table else measured
    ratio, target_arch, rel = find_ratio(lambda r: shrink_arch(base, r), latency, goal, cost=_macs)
    if rel > goal * 1.02:
        if ratio >= 0.9:
            raise PruningError(
                f"`target_latency` {target.text} is out of reach: removing 90% of every width "
                f"still runs at {rel:.2f}x the unpruned model (target {goal:.2f}x); raise the target"
            )
        raise PruningError(
            f"`target_latency` {target.text}: the closest candidate measured {rel:.3f}x "
            f"(target {goal:.3f}x) at ratio {ratio:.3f}; timings may be disturbed by other load, "
            f"retry on a quiet machine or give `ratio` {ratio + 0.02:.2f}"
        )
    return ratio, target_arch, goal


def _calibration_batches(folder: str | None, size: int, images: int = 64) -> list[Any] | None:
    """Batches (N, 3, S, S) of up to `images` images of `folder` for BatchNorm recalibration
    (None: no folder). recalibrate_batchnorms runs them as one pass, so batch sizes do not matter."""
    if not folder:
        return None
    from ednas.compress.quantize.calibration import CalibImages

    calib = CalibImages(folder, images)
    if len(calib.files) < 2:
        raise InputError(f"{folder}: BatchNorm recalibration needs at least 2 images, found {len(calib.files)}")
    return list(calib.batches(size))


def _macs(arch: ArchSpec) -> float:
    from ednas.models import build_model
    from ednas.models.complexity import complexity

    return complexity(build_model(arch))["macs"]


def _load_table(table: str, base: ArchSpec, threads: int):
    """The FP32 table for this CPU and `threads`, refused in one line when it was measured for
    another target (ednas.latency.target.check_table) or cannot price the unpruned model (a
    table of another search space)."""
    from ednas.latency.extra import missing_units
    from ednas.latency.table import LatencyTable, LatencyTableError
    from ednas.latency.target import LatencyTarget

    loaded = LatencyTable.load(table, target=LatencyTarget.here("fp32", threads))
    missing = missing_units(loaded, [base])
    if missing:
        raise LatencyTableError(
            f"`table` {table} cannot price the unpruned model ({len(missing)} of its units are not in it, "
            f"e.g. {next(iter(missing))}): give the table of its search space, or leave `table` out to measure")
    return loaded


def _table_latency(table: str, base: ArchSpec, fallback, threads: int = 2):
    """Relative latency from the table when it prices the candidate, else from `fallback`."""
    from ednas.compress.prune.latency_target import PredictedLatency
    from ednas.latency.predictor import LatencyPredictor
    from ednas.latency.table import LatencyTableError

    predicted = PredictedLatency(LatencyPredictor(_load_table(table, base, threads)), base)
    if fallback is None:
        return predicted

    def relative(arch: ArchSpec) -> float:
        try:
            return predicted(arch)
        except LatencyTableError as exc:
            log.info("table cannot price this candidate (%s); measuring", exc)
            return fallback(arch)

    return relative


def _evaluate(model, recipe, options: PruneOptions) -> float:
    from ednas.data import load_eval_set
    from ednas.eval.coco_eval import evaluate_model

    dataset = load_eval_set(options.images, options.ann, recipe.class_names)
    return float(evaluate_model(model, dataset, recipe, progress=False)["mAP"])


def _finetune(pruned, teacher, recipe, options: PruneOptions, work: Path):
    from ednas.models import build_model, save_checkpoint
    from ednas.train.datasets import build_train_set, with_data
    from ednas.train.trainer import Trainer

    init = work / "pruned_init.ckpt"
    save_checkpoint(init, pruned)
    train_cfg = dataclasses.replace(
        recipe.train, epochs=options.finetune_epochs, batch_size=options.batch_size, lr=options.lr,
        min_lr=options.lr / 10, warmup_steps=3, detach_epoch=0, val_interval=10**6,  # a short run
    )
    ft_recipe = with_data(dataclasses.replace(recipe, model=pruned.arch, train=train_cfg), options.data, None)
    trainer = Trainer(ft_recipe, work / "finetune", build_train_set(ft_recipe), None, weights=init,
                      teacher=teacher, aux=False)
    trainer.fit()
    result = build_model(pruned.arch)
    result.load_state_dict({k: v for k, v in trainer.ema.model.state_dict().items()
                            if not k.startswith(("aux_fpn.", "aux_head."))}, strict=True)
    return result.eval()
