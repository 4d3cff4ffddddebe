"""Recipes: a YAML file per experiment, parsed once into a typed, frozen Recipe.

    model:                      # a registered architecture plus optional overrides
      arch: enhanced_nanodet_s  #   (or the path of an ARCH.yml written by search/prune)
      input_size: 320
    data: {...}                 # DataConfig
    train: {...}                # TrainConfig

Unknown keys anywhere are rejected with the list of valid keys. `num_classes` is derived
from `data.class_names`, never written in a recipe. `load_recipe` is the one resolver of a
model argument: recipe YAML, bundled recipe or architecture name, or ARCH.yml.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from ednas.arch import ArchSpec
from ednas.config import from_dict, load_yaml, merge, to_dict
from ednas.data.classes import NAMED_CLASS_LISTS
from ednas.errors import ConfigError, ModelMismatchError


@dataclass(frozen=True)
class AugmentConfig:
    """NanoDet-Plus training augmentation (random affine + colour jitter, see data/transforms.py)."""

    scale: tuple[float, float] = (0.6, 1.4)  # random zoom of the whole image, both axes
    stretch: tuple[tuple[float, float], tuple[float, float]] = ((0.8, 1.2), (0.8, 1.2))  # extra zoom per axis (x, y)
    translate: float = 0.2  # random shift of the centre, fraction of the image size
    flip: float = 0.5  # probability of a horizontal flip
    brightness: float = 0.2  # shift by uniform(-b, b) * 255 (applied with probability 0.5)
    contrast: tuple[float, float] = (0.6, 1.4)  # multiply by a factor in this range (p 0.5)
    saturation: tuple[float, float] = (0.5, 1.2)  # scale HSV saturation by a factor in this range (p 0.5)


@dataclass(frozen=True)
class DatasetConfig:
    """One split: a COCO json with its images folder, or a VOC folder of XML files."""

    format: Literal["coco", "voc"] = "coco"
    images: str = ""  # folder of images
    ann: str = ""  # COCO: instances json; VOC: folder of XML annotations


@dataclass(frozen=True)
class DataConfig:
    class_names: tuple[str, ...] | str = "coco"  # a list, or the name of a known list ("coco")
    train: DatasetConfig = field(default_factory=DatasetConfig)
    val: DatasetConfig = field(default_factory=DatasetConfig)
    keep_ratio: bool = False  # released recipes stretch the image to the square input
    mean: tuple[float, float, float] = (103.53, 116.28, 123.675)  # BGR
    std: tuple[float, float, float] = (57.375, 57.12, 58.395)  # BGR
    augment: AugmentConfig = field(default_factory=AugmentConfig)

    def __post_init__(self) -> None:
        if isinstance(self.class_names, str):
            if self.class_names not in NAMED_CLASS_LISTS:
                raise ValueError(
                    f"class_names {self.class_names!r} is not a known list "
                    f"({', '.join(NAMED_CLASS_LISTS)}); give the names as a list"
                )
            object.__setattr__(self, "class_names", NAMED_CLASS_LISTS[self.class_names])
        if not self.class_names:
            raise ValueError("class_names is empty")


@dataclass(frozen=True)
class TrainConfig:
    """The NanoDet-Plus recipe (values from the Enhanced NanoDet release)."""

    epochs: int = 300
    batch_size: int = 96  # images per optimizer step, summed over all processes of a run
    lr: float = 1e-3  # AdamW
    weight_decay: float = 0.05
    warmup_steps: int = 500  # linear warm-up ...
    warmup_ratio: float = 1e-4  # ... starting from lr * warmup_ratio
    min_lr: float = 5e-5  # cosine annealing floor, reached at the last epoch
    grad_clip: float = 35.0  # max gradient norm
    ema_decay: float = 0.9998  # EMA of weights (evaluated and saved)
    ema_warmup: float = 2000.0  # EMA decay = ema_decay * (1 - exp(-step / ema_warmup)): early steps are not stuck near the init
    detach_epoch: int = 10  # from this epoch the aux branch sees detached features
    bn_unfold_images: int = 64  # training images to re-estimate BNs folded into --weights (deploy) convs
    qfl_beta: float = 2.0
    qfl_weight: float = 1.0
    dfl_weight: float = 0.25
    giou_weight: float = 2.0
    assigner_topk: int = 13  # dynamic soft label assigner candidates
    assigner_iou_factor: float = 3.0
    distill_cls_weight: float = 1.0  # with a teacher (pruning fine-tune): class-score distillation
    distill_reg_weight: float = 1.0  # ... and box-distribution (localization) distillation
    val_interval: int = 10  # epochs between evaluations
    workers: int = 2  # data-loader processes
    channels_last: bool = False  # NHWC tensors: about 20 % faster CPU steps for depthwise-heavy models
    seed: int = 0

    def __post_init__(self) -> None:
        """Impossible values are refused here, not found out epochs later (or never)."""
        for name in ("epochs", "batch_size", "val_interval", "assigner_topk"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} is {getattr(self, name)}; it must be at least 1")
        for name in ("workers", "warmup_steps", "detach_epoch", "bn_unfold_images"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} is {getattr(self, name)}; it must be 0 or more")
        for name in ("lr", "grad_clip", "ema_warmup"):
            if not 0 < getattr(self, name) < float("inf"):
                raise ValueError(f"{name} is {getattr(self, name)}; it must be a positive number")
        if not 0 <= self.min_lr <= self.lr:
            raise ValueError(f"min_lr is {self.min_lr}; it must be between 0 and lr ({self.lr})")
        if not 0 <= self.ema_decay < 1 or not 0 < self.warmup_ratio <= 1:
            raise ValueError("ema_decay must be in [0, 1) and warmup_ratio in (0, 1]")
        for name in ("weight_decay", "qfl_weight", "dfl_weight", "giou_weight", "distill_cls_weight",
                     "distill_reg_weight", "qfl_beta", "assigner_iou_factor"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} is {getattr(self, name)}; it must be 0 or more")


@dataclass(frozen=True)
class Recipe:
    name: str
    model: ArchSpec
    data: DataConfig = field(default_factory=DataConfig)
    train: TrainConfig = field(default_factory=TrainConfig)

    @property
    def class_names(self) -> tuple[str, ...]:
        return self.data.class_names  # type: ignore[return-value]

    def to_dict(self) -> dict:
        return to_dict(self)


_SECTIONS = ("model", "data", "train")


def resolve_arch(model: dict, where: str, base_dir: Path | None = None) -> ArchSpec:
    """`{arch: NAME | PATH.yml, **overrides}` -> ArchSpec (overrides deep-merged, then checked).
    PATH.yml is an ARCH.yml (or a recipe, whose model is taken)."""
    from ednas.arch.zoo import get_arch

    model = dict(model)
    name = model.pop("arch", None)
    if name is None:
        base = ArchSpec()
    elif str(name).endswith((".yml", ".yaml")):
        path = Path(name)
        if not path.is_absolute() and base_dir is not None and not path.exists():
            path = base_dir / path
        base = load_arch(path)
    else:
        base = get_arch(str(name))
    return from_dict(ArchSpec, merge(base.to_dict(), model), where)


def parse_recipe(data: dict, name: str, where: str, base_dir: Path | None = None) -> Recipe:
    if not isinstance(data, dict):
        raise ConfigError(f"{where}: a recipe is a mapping with keys {', '.join(_SECTIONS)}")
    unknown = [k for k in data if k not in _SECTIONS]
    if unknown:
        raise ConfigError(f"{where}: unknown key {unknown[0]!r}; valid keys are: {', '.join(_SECTIONS)}")
    model = data.get("model") or {}
    if not isinstance(model, dict):
        raise ConfigError(f"{where}: model: expected a mapping like {{arch: enhanced_nanodet_s}}")
    if "num_classes" in model:
        raise ConfigError(f"{where}: model.num_classes is derived from data.class_names; remove it")
    data_cfg = from_dict(DataConfig, data.get("data") or {}, f"{where}: data")
    arch = resolve_arch(model, f"{where}: model", base_dir)
    arch = dataclasses.replace(arch, num_classes=len(data_cfg.class_names))
    train = from_dict(TrainConfig, data.get("train") or {}, f"{where}: train")
    return Recipe(name=name, model=arch, data=data_cfg, train=train)


def load_recipe(spec: str | Path) -> Recipe:
    """The one resolver of "which model": a recipe YAML; a bundled recipe name (recipes/NAME.yml);
    a registered architecture name (default settings); or an ARCH.yml written by search, prune
    or extract (default settings with that model, its classes the named list of that length,
    else class_0..class_N-1)."""
    path = Path(spec)
    if not path.exists() and len(path.parts) == 1 and path.suffix not in (".yml", ".yaml"):
        bundled = RECIPES_DIR / f"{spec}.yml"
        if not bundled.exists():
            from ednas.arch.zoo import get_arch

            get_arch(str(spec))  # raises with the list of known names
            return parse_recipe({"model": {"arch": str(spec)}}, str(spec), str(spec))
        path = bundled
    data = load_yaml(path)
    if is_arch_file(data):
        arch = ArchSpec.from_dict(data, where=str(path))
        return Recipe(name=path.name.split(".")[0], model=arch,
                      data=DataConfig(class_names=default_class_names(arch.num_classes)))
    return parse_recipe(data, path.stem, str(path), path.parent)


def load_arch(spec: str | Path) -> ArchSpec:
    """The architecture of anything `load_recipe` takes."""
    return load_recipe(spec).model


def is_arch_file(data: Any) -> bool:
    """A parsed YAML that is an architecture description (ARCH.yml), not a recipe."""
    return isinstance(data, dict) and "backbone" in data and not set(data) & set(_SECTIONS)


def default_class_names(num_classes: int) -> tuple[str, ...]:
    """Class names for a model known only by its class count: a named list of that length
    (coco for 80), else class_0..class_N-1."""
    for names in NAMED_CLASS_LISTS.values():
        if len(names) == num_classes:
            return names
    return tuple(f"class_{i}" for i in range(num_classes))


RECIPES_DIR = Path(__file__).resolve().parent.parent / "recipes"


# architecture fields a pruned or searched checkpoint may change while its recipe still fits:
# the genes of the search space (widths, kernel refine, neck blocks and width, head width) and
# the training-only aux branch; everything else (rows, stages, activation, head form...) must
# match the recipe
SEARCHABLE_FIELDS = ("backbone.widths", "backbone.kr", "neck.block_types", "neck.width",
                     "head.feat_channels", "aux", "input_size", "num_classes")


def arch_difference(ckpt: Any, recipe: Any, ignore: tuple[str, ...] = SEARCHABLE_FIELDS) -> str | None:
    """The first field (dotted name, both values) in which two ArchSpecs differ, outside `ignore`;
    None when they are the same architecture up to the ignored fields."""
    return _first_difference(ckpt.to_dict(), recipe.to_dict(), "", ignore)


def _first_difference(a: Any, b: Any, where: str, ignore: tuple[str, ...]) -> str | None:
    if where.rstrip(".") in ignore:
        return None
    if isinstance(a, dict) and isinstance(b, dict):
        for key in list(a) + [k for k in b if k not in a]:
            found = _first_difference(a.get(key), b.get(key), f"{where}{key}.", ignore)
            if found:
                return found
        return None
    if a != b:
        return f"{where.rstrip('.')}: {_short(a)} in the checkpoint, {_short(b)} in the recipe"
    return None


def _short(value: Any) -> str:
    if isinstance(value, list) and len(value) > 3:
        return f"{len(value)} entries {value[:2]}..."
    return repr(value)


def load_model(recipe_arg: str, weights: str | None = None, aux: bool = False):
    """(recipe, model): the recipe's model, or the checkpoint's own architecture (a pruned or
    searched model) with the recipe's classes and input size, loaded with `weights` when given.
    A checkpoint of another architecture (say an s checkpoint with the m recipe) is refused."""
    from ednas.io import recover
    from ednas.models import build_model, load_checkpoint
    from ednas.models.checkpoint import checkpoint_arch
    from ednas.recipe import load_recipe

    recipe = load_recipe(recipe_arg)
    arch = recipe.model
    if weights:
        recover(Path(weights).parent)  # finish an output set a killed run committed
        ckpt_arch = checkpoint_arch(weights)
        if ckpt_arch.num_classes != arch.num_classes:
            raise ModelMismatchError(
                f"{weights}: checkpoint predicts {ckpt_arch.num_classes} classes, recipe {recipe_arg} "
                f"has {arch.num_classes} class names"
            )
        difference = arch_difference(ckpt_arch, arch)
        if difference:
            raise ModelMismatchError(
                f"{weights}: the checkpoint's architecture is not recipe {recipe.name}'s ({difference}); "
                "give the recipe it was trained or imported with"
            )
        arch = dataclasses.replace(ckpt_arch, input_size=arch.input_size) if ckpt_arch != arch else arch
    model = build_model(arch, aux=aux)
    if weights:
        load_checkpoint(model, weights)
    return recipe, model
