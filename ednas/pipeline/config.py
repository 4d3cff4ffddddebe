"""PIPELINE.yml, typed: one section per stage of `ednas run`, unknown keys rejected.

    seed: 0
    space: ../search_spaces/synthetic.yml    # paths are relative to this file
    recipe: synthetic_shapes.yml             # augmentation, class names (data paths are replaced)
    data: {kind: synthetic, images: 360, size: 128}
    profile: {precision: fp32, threads: 2, calib_models: 12}
    supernet: {minutes: 3, lr: 0.01}
    search: {trials: 120, budget: "100%", eval_images: 60}
    extract: {top_k: 6}
    finetune: {epochs: 0}                    # 0: off
    prune: {ratio: 0.0}                      # 0: off
    quantize: {num_calib: 64, finetune: false}  # true: each INT8 model fine-tuned (finetune.py)
    evaluate: {images: null}                 # held-out images scored (null: all)
    measure: {runs: 40}

`--set key=value` overrides any leaf (`--set data.images=/data/coco/train2017`); a value is
parsed as YAML (numbers, booleans, null) and a relative path in it is taken from the current
folder. Each section is hashed into the record of the stage that reads it, so changing one
re-runs that stage and the ones after it, nothing before.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import yaml

from ednas.config import StrictYamlError, from_dict, load_yaml, parse_yaml, to_dict
from ednas.errors import ConfigError

if TYPE_CHECKING:
    from ednas.compress.quantize.job import QuantizeConfig


def _at_least(low: int, **values: int | None) -> None:
    """Refuse a count below `low` (None: the field's "all"/"off" and allowed)."""
    for name, value in values.items():
        if value is not None and value < low:
            raise ValueError(f"{name} {value} must be at least {low}")


def _positive(**values: float | None) -> None:
    for name, value in values.items():
        if value is not None and not 0 < value < float("inf"):
            raise ValueError(f"{name} {value} must be a positive number")


@dataclass(frozen=True)
class DataSection:
    """Where the images come from and how they are split (never the same image for training
    or selection and for the final evaluation)."""

    kind: Literal["synthetic", "coco"] = "synthetic"
    # synthetic: generated shapes; train split trains the supernet, the held-out split is halved:
    # even images select (search, BN and INT8 calibration), odd images evaluate
    images: int | str = 360  # synthetic: number of images; coco: the images folder
    ann: str | None = None  # coco: instances json (required)
    size: int = 128  # synthetic: image width in px
    min_object: float = 16.0  # synthetic: smallest object diameter in px
    val_fraction: float = 0.35  # synthetic: share of images held out of supernet training
    # coco: images apart from `images` (e.g. val2017-person/holdout) that only the final FP32 / INT8
    # scores read; then all of `images` trains and selects instead of its even half
    holdout_images: str | None = None
    holdout_ann: str | None = None  # its instances json

    def __post_init__(self) -> None:
        if (self.holdout_images is None) != (self.holdout_ann is None):
            raise ValueError("a holdout needs both `holdout_images` (folder) and `holdout_ann` (instances json); "
                             "e.g. --set data.holdout_images=DIR --set data.holdout_ann=JSON")
        if self.holdout_images is not None and self.kind != "coco":
            raise ValueError("`holdout_images` goes with kind coco (a synthetic set is split by itself)")
        if self.kind == "synthetic" and (not isinstance(self.images, int) or self.images < 8):
            raise ValueError(f"images {self.images!r}: a synthetic set needs a count of at least 8")
        if self.kind == "coco" and (not isinstance(self.images, str) or not self.ann):
            raise ValueError("a coco data section needs `images` (folder) and `ann` (instances json); "
                             "e.g. --set data.images=DIR --set data.ann=JSON")
        if not 0 < self.val_fraction < 1:
            raise ValueError(f"val_fraction {self.val_fraction} must be between 0 and 1")
        _at_least(32, size=self.size)
        _positive(min_object=self.min_object)


@dataclass(frozen=True)
class ProfileSection:
    precision: Literal["fp32", "int8"] = "fp32"  # precision the search prices architectures at
    threads: int = 2  # ONNX Runtime threads of the table and of every latency measurement
    calib_models: int = 12  # whole models for the table's calibration fit (>= 3)
    table: str | None = None  # an existing table to use (default: latency_tables/, else profiled)

    def __post_init__(self) -> None:
        _at_least(1, threads=self.threads)
        _at_least(3, calib_models=self.calib_models)


@dataclass(frozen=True)
class SupernetSection:
    source: str | None = None  # trained base model (.onnx / .ckpt); None: train from scratch
    fit_steps: int = 120  # steps fitting the other neck block type to a trained source
    minutes: float | None = 3.0  # training wall time ...
    epochs: int | None = None  # ... or epochs (exactly one of them)
    lr: float = 0.01  # from scratch: high; from a trained model: ~2e-4
    batch_size: int = 16
    random_subnets: int = 1  # per step, besides the largest and the smallest
    distill_only: bool = False  # no detection loss (the source is the only teacher)
    teacher: bool = True  # distil from the source model (when there is one)

    def __post_init__(self) -> None:
        if self.minutes is None and self.epochs is None:
            raise ValueError("give minutes or epochs (how long to train the supernet)")
        _positive(minutes=self.minutes, lr=self.lr)
        _at_least(1, epochs=self.epochs, batch_size=self.batch_size)
        _at_least(0, fit_steps=self.fit_steps, random_subnets=self.random_subnets)


@dataclass(frozen=True)
class SearchSection:
    trials: int = 120
    # ms, us or a share of the base architecture's predicted latency ("6ms", "90%"); a bare
    # number is accepted here only to be refused with the units it lacks
    budget: str | float = "90%"
    sampler: Literal["tpe", "nsga2", "gp", "random"] = "tpe"
    metric: Literal["mAP", "AP50"] = "mAP"
    calib_images: int = 32  # BN recalibration images per sub-network
    eval_images: int | None = 60  # selection images each trial is scored on
    verify: bool = True  # re-measure the front with ONNX Runtime

    def __post_init__(self) -> None:
        from ednas.search.budget import BudgetError, parse_budget

        _at_least(1, trials=self.trials, calib_images=self.calib_images, eval_images=self.eval_images)
        try:
            parse_budget(str(self.budget))  # unit, sign and range checked before any stage runs
        except BudgetError as exc:
            raise ValueError(str(exc).replace("--budget ", "budget ", 1)) from None


@dataclass(frozen=True)
class ExtractSection:
    top_k: int = 6  # Pareto points carried on (the most accurate ones, spread over latency)
    baselines: bool = True  # also carry the search's baselines (base, uniform scalings)
    calib_images: int = 64  # BN recalibration images of each extracted model

    def __post_init__(self) -> None:
        _at_least(1, top_k=self.top_k, calib_images=self.calib_images)


@dataclass(frozen=True)
class FinetuneSection:
    epochs: int = 0  # 0: no fine-tune
    lr: float = 0.002
    batch_size: int = 16

    def __post_init__(self) -> None:
        _at_least(0, epochs=self.epochs)
        _at_least(1, batch_size=self.batch_size)
        _positive(lr=self.lr)


@dataclass(frozen=True)
class PruneSection:
    ratio: float = 0.0  # share of channels removed from every prunable width (0: no pruning)

    def __post_init__(self) -> None:
        if not 0 <= self.ratio < 1:
            raise ValueError(f"ratio {self.ratio} must be in [0, 1)")


@dataclass(frozen=True)
class QuantizeSection:
    num_calib: int = 64  # calibration images (selection half)
    calib_method: Literal["minmax", "percentile", "entropy", "mse"] | None = "percentile"
    timing_runs: int = 20  # quantize's own FP32/INT8 timing rounds (the measure stage is the one reported)
    finetune: bool = False  # quantization-aware fine-tuning of each INT8 model on the calibration images
    finetune_steps: int = 200  # its optimizer steps (about 5 minutes per model at 256 px on 2 cores)
    adaround: bool = False  # learned weight rounding of each INT8 model (adaround.py; about 3 minutes at 256 px)

    def __post_init__(self) -> None:
        _at_least(1, num_calib=self.num_calib, timing_runs=self.timing_runs, finetune_steps=self.finetune_steps)

    def job_config(self, threads: int | None) -> QuantizeConfig:
        """The `ednas quantize` settings this section stands for (compress.quantize.job.QuantizeConfig)."""
        from ednas.compress.quantize.job import QuantizeConfig

        return QuantizeConfig(calib_method=self.calib_method, num_calib=self.num_calib, threads=threads,
                              timing_runs=self.timing_runs, finetune="always" if self.finetune else "off",
                              finetune_steps=self.finetune_steps, adaround="always" if self.adaround else "off")


@dataclass(frozen=True)
class EvaluateSection:
    images: int | None = None  # held-out images scored (None: all of them)

    def __post_init__(self) -> None:
        _at_least(1, images=self.images)


@dataclass(frozen=True)
class MeasureSection:
    runs: int = 40  # interleaved rounds: every model once per round, with the base

    def __post_init__(self) -> None:
        _at_least(1, runs=self.runs)


@dataclass(frozen=True)
class PipelineConfig:
    space: str  # search space YAML
    recipe: str  # recipe: class names, augmentation, input normalisation
    seed: int = 0
    data: DataSection = field(default_factory=DataSection)
    profile: ProfileSection = field(default_factory=ProfileSection)
    supernet: SupernetSection = field(default_factory=SupernetSection)
    search: SearchSection = field(default_factory=SearchSection)
    extract: ExtractSection = field(default_factory=ExtractSection)
    finetune: FinetuneSection = field(default_factory=FinetuneSection)
    prune: PruneSection = field(default_factory=PruneSection)
    quantize: QuantizeSection = field(default_factory=QuantizeSection)
    evaluate: EvaluateSection = field(default_factory=EvaluateSection)
    measure: MeasureSection = field(default_factory=MeasureSection)

    def section(self, name: str) -> dict[str, Any]:
        """A section (or top-level value) as plain data, for the stage records."""
        return to_dict(getattr(self, name))


# keys holding paths: resolved against the pipeline file's folder (or the current one for --set)
PATH_KEYS = ("space", "recipe", "data.images", "data.ann", "data.holdout_images", "data.holdout_ann", "profile.table",
             "supernet.source")


def load_pipeline(path: str | Path, overrides: list[str] | None = None) -> PipelineConfig:
    """Parse PIPELINE.yml plus `--set key=value` overrides into a PipelineConfig."""
    path = Path(path)
    data = load_yaml(path)
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a mapping of pipeline sections (space, recipe, data, ...)")
    data = _resolve_paths(data, path.parent)
    for text in overrides or []:
        data = apply_override(data, text)
    return from_dict(PipelineConfig, data, str(path))


def apply_override(data: dict[str, Any], text: str) -> dict[str, Any]:
    """`data` with `key.sub=value` set (value parsed as YAML; a relative path from the cwd)."""
    key, sep, raw = text.partition("=")
    if not sep or not key.strip():
        raise ConfigError(f"--set {text!r}: write KEY=VALUE, e.g. --set search.trials=60")
    key = key.strip()
    try:
        value = parse_yaml(raw) if raw.strip() else None
    except StrictYamlError as exc:
        raise ConfigError(f"--set {key}: {str(exc).removeprefix('line 1: ')}") from None
    except (yaml.YAMLError, RecursionError, ValueError):
        value = raw
    if key in PATH_KEYS and isinstance(value, str):
        value = str(Path(value).expanduser().absolute())
    out = dict(data)
    node = out
    parts = key.split(".")
    for part in parts[:-1]:
        child = node.get(part)
        if child is not None and not isinstance(child, dict):
            raise ConfigError(f"--set {key}: {part!r} is not a section")
        node[part] = dict(child or {})
        node = node[part]
    node[parts[-1]] = value
    return out


def _resolve_paths(data: dict[str, Any], base: Path) -> dict[str, Any]:
    out = dict(data)
    for key in PATH_KEYS:
        *parents, leaf = key.split(".")
        node = out
        for part in parents:
            if not isinstance(node.get(part), dict):
                node = None
                break
            node[part] = dict(node[part])
            node = node[part]
        if node is None or not isinstance(node.get(leaf), str):
            continue
        value = Path(node[leaf]).expanduser()
        if not value.is_absolute() and not (key == "recipe" and "/" not in node[leaf] and not value.suffix):
            value = (base / value).resolve()
        node[leaf] = str(value)
    return out


def replace_section(config: PipelineConfig, name: str, **changes: Any) -> PipelineConfig:
    """`config` with fields of one section changed (tests, --set from code)."""
    return dataclasses.replace(config, **{name: dataclasses.replace(getattr(config, name), **changes)})


def check_paths(config: PipelineConfig) -> None:
    """Refuse, before any work, a pipeline whose input files are missing (with the --set to fix it)."""
    from ednas.errors import InputError

    wanted = [("space", config.space, False), ("supernet.source", config.supernet.source, False)]
    if Path(config.recipe).suffix:
        wanted.append(("recipe", config.recipe, False))
    if config.data.kind == "coco":
        wanted += [("data.images", str(config.data.images), True), ("data.ann", config.data.ann, False),
                   ("data.holdout_images", config.data.holdout_images, True),
                   ("data.holdout_ann", config.data.holdout_ann, False)]
    for key, value, folder in wanted:
        if value is None:
            continue
        p = Path(value)
        if not (p.is_dir() if folder else p.is_file()):
            what = "folder" if folder else "file"
            raise InputError(f"{key}: no such {what} {value}; set it with --set {key}=PATH")
