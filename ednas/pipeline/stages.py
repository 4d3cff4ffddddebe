"""The stages of `ednas run`, one function each, in order:

data -> profile -> supernet_init -> supernet_train -> search -> extract -> finetune -> prune
-> quantize -> evaluate -> measure -> models -> report

Every function takes the run Context and returns (result, outputs) (see runner.Stage). Images
are split once, in `data`: the supernet trains on one part, search / BN recalibration / INT8
calibration use the selection part, and only `evaluate` reads the held-out part.
"""

from __future__ import annotations

import csv
import dataclasses
import io
import json
import logging
import shutil
from pathlib import Path
from typing import Any

from ednas.errors import InputError
from ednas.io import write_json, write_text
from ednas.pipeline.config import PipelineConfig
from ednas.pipeline.runner import Context, Stage

log = logging.getLogger(__name__)

# measured_ms: raw median of the measure stage's session; ratio_to_base: its time / the base
# architecture's time per round of that session (what the report puts on the table's scale)
# withheld: why the variant is not shipped ("" when it is): an INT8 model that quantize's own
# interleaved timing found no faster than its FP32 parent is listed, marked, and FP32 kept
MODELS_COLUMNS = ["name", "parent", "variant", "map", "map_low", "map_high", "measured_ms", "ratio_to_base", "path",
                  "withheld"]


# -- helpers -----------------------------------------------------------------------------------
def _space(cfg: PipelineConfig):
    from ednas.arch.space import SearchSpace

    return SearchSpace.load(cfg.space)


def _recipe(cfg: PipelineConfig):
    from ednas.recipe import load_recipe

    return load_recipe(cfg.recipe)


def _split(ctx: Context, name: str) -> tuple[str, str]:
    images, ann = ctx.results["data"][name]
    return str(ctx.abs(images)), str(ctx.abs(ann))


def _models(ctx: Context) -> dict[str, dict[str, Any]]:
    """Models carried on: the last of prune / finetune / extract that produced a list."""
    for name in ("prune", "finetune", "extract"):
        if ctx.results.get(name, {}).get("models"):
            return ctx.results[name]["models"]
    raise InputError("no extracted models; run the pipeline from the extract stage")


def _load_model(ctx: Context, entry: dict[str, Any]):
    from ednas.arch import ArchSpec
    from ednas.models import build_model, load_checkpoint

    model = build_model(ArchSpec.load(ctx.abs(entry["arch"])))
    load_checkpoint(model, ctx.abs(entry["ckpt"]))
    return model.eval()


def _terminal() -> bool:
    """A progress bar inside a long stage (profiling, supernet training) only for a person at a
    terminal: in a log the stage lines and their ETA are the progress."""
    import sys

    return sys.stderr.isatty()


def _class_names(cfg: PipelineConfig) -> tuple[str, ...]:
    return tuple(_recipe(cfg).class_names)


# -- data ----------------------------------------------------------------------------------------
def stage_data(ctx: Context) -> tuple[dict[str, Any], list[str]]:
    """Synthetic: generate a shapes set; its held-out split is halved into selection (even) and
    evaluation (odd) images. COCO: the folder is halved; even trains and selects, odd evaluates;
    with a holdout set, the whole folder trains and selects and the holdout evaluates."""
    from ednas.data.split import coco_halves

    cfg = ctx.config.data
    if cfg.kind == "synthetic":
        from ednas.data.synth import generate
        from ednas.io import atomic_dir

        root = ctx.path("data", "synth")
        with atomic_dir(root, marker="annotations/train.json") as stage:
            generate(stage, int(cfg.images), cfg.size, ctx.config.seed, cfg.val_fraction, cfg.min_object)
        halves = coco_halves(root / "images", root / "annotations" / "val.json", ctx.path("data", "halves"))
        train = (root / "images", root / "annotations" / "train.json")
        select, heldout = halves["even"], halves["odd"]
        outputs = ["data/synth", "data/halves/even.json", "data/halves/odd.json"]
    elif cfg.holdout_images is not None:
        train = select = (Path(str(cfg.images)), Path(str(cfg.ann)))
        heldout = (Path(cfg.holdout_images), Path(str(cfg.holdout_ann)))
        _check_apart(train, heldout)
        outputs = []
    else:
        halves = coco_halves(cfg.images, cfg.ann, ctx.path("data", "halves"))
        train = select = halves["even"]
        heldout = halves["odd"]
        outputs = ["data/halves/even.json", "data/halves/odd.json"]
    result = {name: [ctx.rel(p[0]), ctx.rel(p[1])] for name, p in
              (("train", train), ("select", select), ("heldout", heldout))}
    result["counts"] = {name: len(json.loads(Path(ctx.abs(result[name][1])).read_text())["images"])
                        for name in ("train", "select", "heldout")}
    c = result["counts"]
    ctx.report(f"  images: {c['train']} train, {c['select']} selection, {c['heldout']} held-out evaluation")
    return result, outputs


def _check_apart(train: tuple[Path, Path], heldout: tuple[Path, Path]) -> None:
    """Refuse a holdout that shares images (by file name) with the training and selection set."""
    names = []
    for _, ann in (train, heldout):
        try:
            names.append({im["file_name"] for im in json.loads(ann.read_text())["images"]})
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise InputError(f"{ann}: not a COCO instances file ({type(exc).__name__}); give its instances json") \
                from None
    shared = sorted(names[0] & names[1])
    if shared:
        raise InputError(f"data.holdout_images shares {len(shared)} images with data.images (e.g. {shared[0]}); "
                         "give held-out images the run never trains or selects on")


def _data_inputs(ctx: Context) -> list[str]:
    d = ctx.config.data
    held = [str(d.holdout_images), str(d.holdout_ann)] if d.holdout_images is not None else []
    return [str(d.images), str(d.ann), *held] if d.kind == "coco" else []


# -- profile -------------------------------------------------------------------------------------
def table_for(ctx: Context) -> tuple[Path, str | None]:
    """(table path, why it cannot be used or None): the configured table, else the default one of
    latency_tables/, else RUN_DIR/profile/."""
    from ednas.latency.table import default_table
    from ednas.search.study import check_table
    from ednas.errors import EdnasError

    cfg, space = ctx.config.profile, _space(ctx.config)
    candidates = [Path(cfg.table)] if cfg.table else [default_table(space.name, cfg.precision, cfg.threads)]
    candidates.append(ctx.path("profile", f"{space.name}_cpu_{cfg.precision}_{cfg.threads}t.csv"))
    why = None
    for path in candidates:
        try:
            check_table(path, space, cfg.precision, cfg.threads)
            return path, None
        except EdnasError as exc:
            why = why or str(exc)
    # profile into the first candidate that is free (a table measured elsewhere stays untouched)
    from ednas.latency.table import meta_path, read_meta
    from ednas.latency.runner import machine_info

    for path in candidates:
        mpath = meta_path(path)
        if not mpath.exists():
            return path, why
        try:
            meta = read_meta(mpath)
        except EdnasError:
            continue
        here = machine_info(cfg.threads)
        if (meta.space_fingerprint == space.fingerprint() and meta.machine.get("cpu") == here.get("cpu")
                and meta.precision == cfg.precision and meta.threads == cfg.threads):
            return path, why  # an interrupted build for this machine: resume it
    return candidates[-1], why


def stage_profile(ctx: Context) -> tuple[dict[str, Any], list[str]]:
    """Use the latency table of this machine, space, precision and threads; build it if none."""
    from ednas.latency import profiler

    cfg, space = ctx.config.profile, _space(ctx.config)
    path, why = table_for(ctx)
    if why is None:
        ctx.report(f"  latency table {path} fits this machine (not profiled again)")
        _check_budget(ctx, path)
        return {"table": str(path), "profiled": False}, []
    ctx.report(f"  no usable table ({why.split(';')[0]}); profiling {space.name!r} into {path}")
    meta = profiler.profile(space, path, "cpu", cfg.precision, cfg.threads, False, cfg.calib_models,
                            progress=_terminal())
    ctx.report(f"  {meta.units_expected} units + {meta.calib_expected} models measured; probe {meta.probe_ms:.2f} ms")
    _check_budget(ctx, path)
    inside = ctx.rel(path) != str(path)
    return {"table": str(path), "profiled": True}, [ctx.rel(path)] if inside else []


def _check_budget(ctx: Context, table: Path) -> None:
    """Refuse a budget the space cannot meet now, not after the supernet has trained."""
    from ednas.latency import LatencyPredictor, LatencyTable
    from ednas.search.budget import parse_budget, resolve_budget, space_floor_ms

    space = _space(ctx.config)
    predict = LatencyPredictor(LatencyTable.load(table, space.fingerprint())).predict
    budget = resolve_budget(parse_budget(ctx.config.search.budget), predict(space.base),
                            lambda below: space_floor_ms(space, predict, below))
    ctx.report(f"  search budget {budget.ms:.3f} ms ({budget.text}; base {budget.base_ms:.3f} ms predicted)")


def _profile_inputs(ctx: Context) -> list[str]:
    return [ctx.config.space] + ([ctx.config.profile.table] if ctx.config.profile.table else [])


# -- supernet ------------------------------------------------------------------------------------
def stage_supernet_init(ctx: Context) -> tuple[dict[str, Any], list[str]]:
    """The supernet of the space: from the configured source model, or fresh weights."""
    from ednas.supernet.init import init_supernet

    cfg, space = ctx.config, _space(ctx.config)
    names = _class_names(cfg)
    if len(names) != space.base.num_classes:
        raise InputError(f"recipe {cfg.recipe} has {len(names)} classes, space {cfg.space} predicts "
                         f"{space.base.num_classes}; give a recipe and space of the same classes")
    images, _ = _split(ctx, "train")
    supernet = init_supernet(space, None, cfg.supernet.source, images if cfg.supernet.source else None,
                             64, cfg.supernet.fit_steps, cfg.seed, class_names=names)
    out = ctx.path("supernet", "init.pt")
    supernet.save(out)
    return {"init": ctx.rel(out)}, [ctx.rel(out)]


def _source_inputs(ctx: Context) -> list[str]:
    c = ctx.config
    return [c.space, c.recipe if Path(c.recipe).is_file() else ""] + ([c.supernet.source] if c.supernet.source else [])


def stage_supernet_train(ctx: Context) -> tuple[dict[str, Any], list[str]]:
    """Sandwich-rule training; resumes its own state after a kill (same key), restarts otherwise."""
    import torch

    from ednas.data import split_from_paths
    from ednas.supernet.init import load_trained
    from ednas.supernet.supernet import Supernet
    from ednas.supernet.train import SupernetTrainConfig, SupernetTrainer
    from ednas.train.datasets import build_train_set

    cfg, sc = ctx.config, ctx.config.supernet
    path = ctx.path("supernet", "supernet.pt")
    state = path.with_name(path.name + ".state")
    owner = path.with_name("train.key")
    key = json.dumps([sc.__dict__, ctx.results["supernet_init"], cfg.seed], sort_keys=True, default=str)
    if "supernet_train" in ctx.forced or not state.exists() or not owner.exists() or owner.read_text() != key:
        state.unlink(missing_ok=True)
        shutil.copyfile(ctx.abs(ctx.results["supernet_init"]["init"]), path)
        write_text(owner, key)
    supernet = Supernet.load(path)
    recipe = _recipe(cfg)
    images, ann = _split(ctx, "train")
    size = supernet.space.config.input_size.max
    recipe = dataclasses.replace(recipe, data=dataclasses.replace(recipe.data, train=split_from_paths(images, ann)),
                                 model=recipe.model.replace(input_size=size))
    teacher = load_trained(sc.source, supernet.space.base) if sc.source and sc.teacher else None
    tc = SupernetTrainConfig(random_subnets=sc.random_subnets, epochs=sc.epochs, minutes=sc.minutes if sc.epochs is None else None,
                             lr=sc.lr, batch_size=sc.batch_size, det_weight=0.0 if sc.distill_only else 1.0,
                             save_every=10, seed=cfg.seed)
    torch.manual_seed(cfg.seed)
    trainer = SupernetTrainer(supernet, path, recipe, build_train_set(recipe), tc, teacher, progress=_terminal())
    if trainer.resume():
        ctx.report(f"  resumed supernet training at step {trainer.step}")
    result = trainer.fit()
    ctx.report(f"  trained {result['steps']} steps ({result['seconds'] / 60:.1f} min)")
    return {"supernet": ctx.rel(path), "steps": result["steps"]}, [ctx.rel(path)]


# -- search --------------------------------------------------------------------------------------
def stage_search(ctx: Context) -> tuple[dict[str, Any], list[str]]:
    """`ednas search` on the selection images; its study journal makes a killed search resume."""
    from ednas.search.search import SearchOptions, run_search

    cfg, sc = ctx.config, ctx.config.search
    out = ctx.path("search")
    images, ann = _split(ctx, "select")
    if "search" in ctx.forced:  # --from search: a new study, not the journal's continuation
        (out / "study.journal").unlink(missing_ok=True)
    run_search(SearchOptions(
        supernet=str(ctx.abs(ctx.results["supernet_train"]["supernet"])), budget=sc.budget, out=str(out),
        images=images, ann=ann, table=ctx.results["profile"]["table"], precision=cfg.profile.precision,
        threads=cfg.profile.threads, trials=sc.trials, sampler=sc.sampler, seed=cfg.seed, study="search",
        calib_images=sc.calib_images, eval_images=sc.eval_images, metric=sc.metric, verify=sc.verify))
    outputs = ["search/search.json", "search/trials.csv", "search/pareto.csv", "search/breakdown.csv", "search/pareto"]
    return {"run": "search"}, outputs


# -- extract -------------------------------------------------------------------------------------
def read_pareto(path: Path) -> list[dict[str, str]]:
    with open(path, newline="", encoding="utf-8") as f:
        return list(csv.DictReader(f))


def pick_front(rows: list[dict[str, str]], k: int) -> list[dict[str, str]]:
    """At most `k` Pareto points spread over latency: evenly spaced along the front sorted by
    predicted latency, always keeping the fastest and the most accurate."""
    front = sorted((r for r in rows if r["kind"] == "pareto"), key=lambda r: float(r["predicted_ms"]))
    if len(front) <= k:
        return front
    if k == 1:
        return [max(front, key=lambda r: float(r["map"]))]
    idx = sorted({round(i * (len(front) - 1) / (k - 1)) for i in range(k)})
    return [front[i] for i in idx]


def stage_extract(ctx: Context) -> tuple[dict[str, Any], list[str]]:
    """A standalone checkpoint of each chosen Pareto point (and baseline), BN recalibrated on the
    selection images."""
    from ednas.arch import ArchSpec
    from ednas.models.checkpoint import save_checkpoint
    from ednas.supernet.evaluate import CalibImages, recalibrated_subnet
    from ednas.supernet.supernet import Supernet

    cfg = ctx.config.extract
    search = ctx.path("search")
    rows = read_pareto(search / "pareto.csv")
    chosen = pick_front(rows, cfg.top_k) + ([r for r in rows if r["kind"] == "baseline"] if cfg.baselines else [])
    supernet = Supernet.load(ctx.abs(ctx.results["supernet_train"]["supernet"]))
    calib = CalibImages(_split(ctx, "select")[0], cfg.calib_images)
    models: dict[str, dict[str, Any]] = {}
    seen: set[str] = set()
    for row in chosen:
        name = row["name"]
        if row["arch_hash"] in seen:  # a baseline the front already holds (e.g. uniform_0.5 = base)
            continue
        seen.add(row["arch_hash"])
        arch = ArchSpec.load(search / "pareto" / f"{name}.arch.yml")
        model = recalibrated_subnet(supernet, arch, calib)
        ckpt = ctx.path("models", f"{name}.ckpt")
        save_checkpoint(ckpt, model, source="supernet")
        arch.save(ckpt.with_suffix(".arch.yml"))
        models[name] = {"parent": name, "variant": "fp32", "kind": row["kind"], "ckpt": ctx.rel(ckpt),
                        "arch": ctx.rel(ckpt.with_suffix(".arch.yml"))}
    kinds = [m["kind"] for m in models.values()]
    ctx.report(f"  {kinds.count('pareto')} Pareto points ({sum(r['kind'] == 'pareto' for r in rows)} on the front) "
               f"+ {kinds.count('baseline')} baselines extracted (same architectures once)")
    return {"models": models}, ["models"]


# -- finetune / prune ----------------------------------------------------------------------------
def stage_finetune(ctx: Context) -> tuple[dict[str, Any], list[str]]:
    """Optional: a few epochs of each extracted model on the training images (EMA weights kept)."""
    cfg = ctx.config.finetune
    if cfg.epochs == 0:
        return {"models": None}, []
    from ednas.arch import ArchSpec
    from ednas.data import split_from_paths
    from ednas.models import build_model, load_checkpoint
    from ednas.models.checkpoint import save_checkpoint
    from ednas.train.datasets import build_train_set
    from ednas.train.trainer import LAST, Trainer

    recipe = _recipe(ctx.config)
    images, ann = _split(ctx, "train")
    models = {}
    for name, entry in ctx.results["extract"]["models"].items():
        out = ctx.path("finetune", name)
        final = ctx.path("finetune", f"{name}.ckpt")
        arch = ArchSpec.load(ctx.abs(entry["arch"]))
        if "finetune" in ctx.forced:
            shutil.rmtree(out, ignore_errors=True)
            final.unlink(missing_ok=True)
        if not final.exists():
            r = dataclasses.replace(
                recipe, model=arch,
                data=dataclasses.replace(recipe.data, train=split_from_paths(images, ann), val=recipe.data.val),
                train=dataclasses.replace(recipe.train, epochs=cfg.epochs, lr=cfg.lr, batch_size=cfg.batch_size,
                                          warmup_steps=0, val_interval=cfg.epochs + 1, workers=0,
                                          seed=ctx.config.seed, min_lr=min(recipe.train.min_lr, cfg.lr)))
            resume = (out / LAST).exists()
            trainer = Trainer(r, out, build_train_set(r), None, weights=None if resume else ctx.abs(entry["ckpt"]),
                              resume=resume, progress=False, aux=False)
            trainer.fit()
            model = build_model(arch)
            load_checkpoint(model, out / LAST, key="ema")
            save_checkpoint(final, model, source=str(entry["ckpt"]))
        models[name] = {**entry, "ckpt": ctx.rel(final)}
    return {"models": models}, ["finetune"]


def stage_prune(ctx: Context) -> tuple[dict[str, Any], list[str]]:
    """Optional: a pruned variant of every model (channels removed by importance, BN recalibrated)."""
    cfg = ctx.config.prune
    if cfg.ratio == 0:
        return {"models": None}, []
    from ednas.compress.prune.weights import prune_weights, shrink_arch
    from ednas.models.checkpoint import save_checkpoint
    from ednas.supernet.evaluate import CalibImages

    base = ctx.results["finetune"].get("models") or ctx.results["extract"]["models"]
    calib = CalibImages(_split(ctx, "select")[0], ctx.config.extract.calib_images)
    models = dict(base)
    for name, entry in base.items():
        model = _load_model(ctx, entry)
        target = shrink_arch(model.arch, cfg.ratio)
        pruned = prune_weights(model, target, calib.batches(target.input_size))
        ckpt = ctx.path("prune", f"{name}.pruned.ckpt")
        save_checkpoint(ckpt, pruned, source=str(entry["ckpt"]))
        target.save(ckpt.with_suffix(".arch.yml"))
        models[f"{name}.pruned"] = {**entry, "variant": "pruned", "ckpt": ctx.rel(ckpt),
                                    "arch": ctx.rel(ckpt.with_suffix(".arch.yml"))}
    return {"models": models}, ["prune"]


# -- quantize ------------------------------------------------------------------------------------
def stage_quantize(ctx: Context) -> tuple[dict[str, Any], list[str]]:
    """Each model exported as the deployable FP32 ONNX and quantized to INT8 (calibrated on the
    selection images). Per model: files already written by a killed run are kept."""
    from ednas.compress.quantize.job import quantize
    from ednas.models.export import export_onnx

    cfg = ctx.config.quantize
    calib_dir = _split(ctx, "select")[0]
    qc = cfg.job_config(ctx.config.profile.threads)
    onnx: dict[str, dict[str, Any]] = {}
    models = _models(ctx)
    for i, (name, entry) in enumerate(models.items()):
        fp32 = ctx.path("onnx", f"{name}.onnx")
        int8 = ctx.path("onnx", f"{name}.int8.onnx")
        tag = ctx.path("onnx", f"{name}.source")  # which checkpoint the ONNX files were made from
        source = json.dumps([entry, (ctx.abs(entry["ckpt"]).stat().st_mtime_ns), dataclasses.asdict(cfg)], default=str)
        if ("quantize" in ctx.forced or not (fp32.exists() and int8.exists() and tag.exists()
                                             and tag.read_text() == source)):
            export_onnx(_load_model(ctx, entry), fp32)
            summary = quantize(fp32, calib_dir, int8, None, None, qc)
            write_text(tag, source)
            ctx.report(f"  [{i + 1}/{len(models)}] {name}: INT8 {summary['speedup']:.2f}x the speed of FP32 in "
                       f"quantize's check{'' if summary['speedup'] > 1 else ': not shipped, FP32 kept'}")
        speedup = _int8_speedup(int8)
        onnx[name] = {**entry, "fp32": ctx.rel(fp32), "int8": ctx.rel(int8), "int8_speedup": speedup}
    return {"models": onnx}, ["onnx"]


# -- evaluate ------------------------------------------------------------------------------------
def stage_evaluate(ctx: Context) -> tuple[dict[str, Any], list[str]]:
    """FP32 and INT8 accuracy of every model on the held-out images, with 95 % bootstrap intervals."""
    from ednas.arch import ArchSpec
    from ednas.data import build_dataset, split_from_paths
    from ednas.eval.coco_eval import evaluate_model
    from ednas.eval.predictors import OnnxPredictor
    from ednas.supernet.evaluate import subset

    cfg = ctx.config
    images, ann = _split(ctx, "heldout")
    names = _class_names(cfg)
    metric = cfg.search.metric
    scores: dict[str, dict[str, Any]] = {}
    done_path = ctx.path("eval", "scores.json")
    try:
        cached = json.loads(done_path.read_text()) if done_path.exists() else {}
    except ValueError:
        cached = {}
    models = ctx.results["quantize"]["models"]
    for name, entry in models.items():
        arch = ArchSpec.load(ctx.abs(entry["arch"]))
        for precision in ("fp32", "int8"):
            path = ctx.abs(entry[precision])
            tag = f"{name}|{precision}|{path.stat().st_mtime_ns}|{cfg.evaluate.images}"
            if tag in cached and "evaluate" not in ctx.forced:
                scores[f"{name}|{precision}"] = cached[tag]
                continue
            dataset = subset(build_dataset(split_from_paths(images, ann), names), cfg.evaluate.images)
            m = evaluate_model(OnnxPredictor(path, cfg.profile.threads), dataset, arch=arch, interval=True,
                               progress=False)
            est = m["mAP_interval"]
            # the basic bootstrap interval may leave [0, 1] near the ends; mAP cannot
            low, high = ((min(max(est.low / 100, 0.0), 1.0), min(max(est.high / 100, 0.0), 1.0))
                         if metric == "mAP" else (None, None))
            score = {"map": float(m[metric]), "map_low": low, "map_high": high, "images": int(m["images"])}
            scores[f"{name}|{precision}"] = cached[tag] = score
            write_json(done_path, cached)  # per model: a killed run keeps what it scored
        f, q = scores[f"{name}|fp32"], scores[f"{name}|int8"]
        ctx.report(f"  {name}: {metric} FP32 {100 * f['map']:.1f} [{_pct(f['map_low'])}, {_pct(f['map_high'])}], "
                   f"INT8 {100 * q['map']:.1f} [{_pct(q['map_low'])}, {_pct(q['map_high'])}] on {f['images']} held-out images")
    write_json(ctx.path("eval", "evaluate.json"), scores)
    return {"scores": scores}, ["eval/evaluate.json"]


def _pct(v: float | None) -> str:
    return "-" if v is None else f"{100 * v:.1f}"


# -- measure -------------------------------------------------------------------------------------
def stage_measure(ctx: Context) -> tuple[dict[str, Any], list[str]]:
    """ONNX Runtime latency of every FP32 and INT8 output, all timed in rounds together with the
    base architecture (one process, same threads: load shifts every model alike)."""
    from ednas.compress.quantize.timing import time_models
    from ednas.latency.export import export_arch

    cfg = ctx.config
    space = _space(cfg)
    models = ctx.results["quantize"]["models"]
    reference = export_arch(space.base, ctx.path("measure", "base_reference.onnx"), "fp32")
    candidates = {f"{name}|{p}": str(ctx.abs(e[p])) for name, e in models.items() for p in ("fp32", "int8")}
    timing = time_models(reference, candidates, cfg.profile.threads, cfg.measure.runs)
    ms = {k: t.candidate_ms for k, t in timing.items()}
    ratio = {k: 1 / t.speedup for k, t in timing.items()}  # median per-round time / base time
    base_ms = next(iter(timing.values())).reference_ms if timing else None
    write_json(ctx.path("measure", "latency.json"), {"threads": cfg.profile.threads, "runs": cfg.measure.runs,
                                                     "base_ms": base_ms, "ms": ms, "ratio_to_base": ratio})
    ctx.report(f"  {len(ms)} models timed over {cfg.measure.runs} rounds with the base ({base_ms:.2f} ms)")
    return {"ms": ms, "base_ms": base_ms, "ratio": ratio}, ["measure"]


# -- models.csv / report -------------------------------------------------------------------------
def stage_models(ctx: Context) -> tuple[dict[str, Any], list[str]]:
    """RUN_DIR/search/models.csv: one row per deployed variant (see the run-folder contract)."""
    models = ctx.results["quantize"]["models"]
    scores, ms = ctx.results["evaluate"]["scores"], ctx.results["measure"]["ms"]
    ratio = ctx.results["measure"].get("ratio")
    if ratio is None:
        raise InputError("the measure stage's record predates ratios to the base; run again with --from measure")
    rows = []
    for name, entry in models.items():
        variants = [("fp32" if entry["variant"] == "fp32" else "pruned", "fp32"), ("int8", "int8")]
        for variant, precision in variants:
            s = scores[f"{name}|{precision}"]
            withheld = _withheld(entry) if precision == "int8" else ""
            rows.append({"name": f"{name}.{precision}", "parent": entry["parent"], "variant": variant,
                         "withheld": withheld,
                         "map": f"{s['map']:.6f}", "map_low": "" if s["map_low"] is None else f"{s['map_low']:.6f}",
                         "map_high": "" if s["map_high"] is None else f"{s['map_high']:.6f}",
                         "measured_ms": f"{ms[f'{name}|{precision}']:.4f}",
                         "ratio_to_base": f"{ratio[f'{name}|{precision}']:.5f}", "path": entry[precision]})
    buf = io.StringIO()
    writer = csv.DictWriter(buf, MODELS_COLUMNS, lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    out = ctx.path("search", "models.csv")
    write_text(out, buf.getvalue())
    return {"rows": len(rows)}, [ctx.rel(out)]


def _int8_speedup(int8: Path) -> float:
    """The speed-up over FP32 that quantize's own timing measured (its summary beside the model)."""
    summary = int8.with_suffix(".json")
    try:
        value = json.loads(summary.read_text())["speedup"]
    except (OSError, ValueError, KeyError, TypeError):
        value = None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 < value < float("inf"):
        raise InputError(f"{summary}: no valid INT8 speed-up in quantize's summary; run again with --from quantize")
    return float(value)


def _withheld(entry: dict[str, Any]) -> str:
    """Why a model's INT8 variant is not shipped: quantize's own interleaved timing found it no
    faster than its FP32 parent (then the FP32 model is the point's deployable one)."""
    speedup = entry.get("int8_speedup")
    if speedup is None:
        raise InputError("the quantize stage's record predates INT8 speed checks; run again with --from quantize")
    return "" if speedup > 1 else f"not shipped: {speedup:.2f}x the speed of its FP32 parent in quantize's timing"


def stage_report(ctx: Context) -> tuple[dict[str, Any], list[str]]:
    from ednas.report.run_report import build_report

    view, paths = build_report(ctx.path("search"), ctx.path("report"))
    ctx.report(f"  {view.summary}")
    ctx.report(f"  {len(view.front)} Pareto points, {len(view.baselines)} baselines, {len(view.variants)} variants "
               f"-> {paths['report.html']}")
    return {"files": {k: ctx.rel(v) for k, v in paths.items()}}, ["report"]


# -- the list ------------------------------------------------------------------------------------
# estimates (seconds, for the ETA line) measured on a loaded 2-core machine; rough by design
def _images(c: PipelineConfig) -> int:
    return int(c.data.images) if c.data.kind == "synthetic" else 128


def _models_n(c: PipelineConfig) -> int:
    return (c.extract.top_k + 2 * c.extract.baselines) * (2 if c.prune.ratio else 1)


def _profile_estimate(ctx: Context) -> float:
    from ednas.latency.units import space_units

    try:
        path, why = table_for(ctx)
        return 2.0 if why is None else 1.2 * len(space_units(_space(ctx.config))) + 3 * ctx.config.profile.calib_models
    except Exception:  # an unreadable space: the stage itself will say so
        return 150.0


def _est(fn):
    return lambda ctx: fn(ctx.config)


STAGES: list[Stage] = [
    Stage("data", stage_data, ("data", "seed"), (), _data_inputs,
          _est(lambda c: 0.02 * _images(c) if c.data.kind == "synthetic" else 5),
          "images split for training, selection, evaluation"),
    Stage("profile", stage_profile, ("profile", "space"), (), _profile_inputs, _profile_estimate,
          "latency table of the space on this machine"),
    Stage("supernet_init", stage_supernet_init, ("supernet", "space", "recipe", "seed"), ("data",), _source_inputs,
          _est(lambda c: 10 + (0.5 * c.supernet.fit_steps if c.supernet.source else 0)), "weight-sharing supernet"),
    Stage("supernet_train", stage_supernet_train, ("supernet", "recipe", "seed"), ("data", "supernet_init"),
          lambda ctx: [ctx.config.recipe] if Path(ctx.config.recipe).is_file() else [],
          _est(lambda c: 60 * (c.supernet.minutes or 0) + 60 * (c.supernet.epochs or 0) + 15), "sandwich training"),
    Stage("search", stage_search, ("search", "seed", "profile"), ("data", "profile", "supernet_train"), lambda ctx: [],
          _est(lambda c: 1.5 * c.search.trials + 40), "latency-constrained architecture search"),
    Stage("extract", stage_extract, ("extract",), ("data", "supernet_train", "search"), lambda ctx: [],
          _est(lambda c: 3 * _models_n(c)), "top-k Pareto points as standalone models"),
    Stage("finetune", stage_finetune, ("finetune", "recipe", "seed"), ("data", "extract"), lambda ctx: [],
          _est(lambda c: 60 * c.finetune.epochs * _models_n(c) / 4 if c.finetune.epochs else 0),
          "optional fine-tune"),
    Stage("prune", stage_prune, ("prune",), ("extract", "finetune"), lambda ctx: [],
          _est(lambda c: 5 * _models_n(c) if c.prune.ratio else 0), "optional pruning"),
    Stage("quantize", stage_quantize, ("quantize", "profile"), ("data", "extract", "finetune", "prune"),
          lambda ctx: [], _est(lambda c: 9 * _models_n(c)), "export and INT8 quantization"),
    Stage("evaluate", stage_evaluate, ("evaluate", "search", "recipe"), ("data", "quantize"), lambda ctx: [],
          _est(lambda c: 4 * _models_n(c)), "FP32 and INT8 accuracy on held-out images"),
    Stage("measure", stage_measure, ("measure", "profile"), ("quantize",), lambda ctx: [],
          _est(lambda c: 0.01 * 2 * _models_n(c) * c.measure.runs + 5),
          "ONNX Runtime latency, interleaved with the base"),
    Stage("models", stage_models, (), ("quantize", "evaluate", "measure", "search"), lambda ctx: [],
          _est(lambda c: 1), "models.csv"),
    Stage("report", stage_report, (), ("search", "models"), lambda ctx: [],
          _est(lambda c: 10), "report.html, report.png, summary.md"),
]

STAGE_NAMES = tuple(s.name for s in STAGES)
