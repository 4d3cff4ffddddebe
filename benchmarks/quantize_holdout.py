"""INT8 on unseen images: each model quantized and chosen on one annotated set, its drop
reported on another that neither calibrated nor chose it, for every accuracy recovery.

    python benchmarks/quantize_holdout.py [--weights A.onnx B.onnx] [--person DIR]
        [--recoveries grid adaround finetune] [--coco128 DIR] [--out DIR]

--weights defaults to $EDNAS_TEST_WEIGHTS (the released s), --person to $EDNAS_TEST_PERSON (the
val2017-person folder with train/ and holdout/), --coco128 to $EDNAS_TEST_COCO.

Per model and recovery, `ednas quantize` calibrates on train/ images, cross-validates its
choice over 2 folds of train/ (the drop it claims, "train CV"), and the shipped model is
scored on holdout/ ("holdout"): both with paired bootstrap 95% intervals. Recoveries: `grid`
(no recovery), `adaround` (learned weight rounding, always) and `finetune` (quantization-aware
fine-tuning, always), each on the grid's recipe (mse ranges, bias-corrected, as `quantize`
ships without images: one recipe keeps the comparison about the recovery); "time" is the
whole quantize run. The one to keep is chosen on train CV, never on holdout. With --coco128
the models are also cross-validated on coco-train128's two halves (80 classes; training
images of the released s, so its drops there understate unseen ones).

Latency, last and with nothing else running: every shipped INT8 model against its FP32
parent in interleaved rounds in one process, at 1 thread and at 2 (medians of the per-round
speed-ups, p10-p90). The CPU and its INT8 flags are printed first, the load next to it.
Each quantize run's JSON is kept in --out; a rerun reuses it (delete it to redo one).
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import time
from dataclasses import asdict, replace
from pathlib import Path

from ednas.compress.quantize.job import QuantizeConfig, quantize
from ednas.compress.quantize.timing import time_models
from ednas.cpu import cpu_info

RECOVERIES = {"grid": {"finetune": "off", "adaround": "off"}, "adaround": {"finetune": "off", "adaround": "always"},
              "finetune": {"finetune": "always", "adaround": "off"}}


def _ci(value: float, ci: list[float]) -> str:
    return f"{value:5.2f} ({ci[0]:5.2f} to {ci[1]:5.2f})"


ONLY_SPEED = ("threads", "timing_runs")  # settings a reused run may differ in: they change no accuracy


def _reused(dest: Path, model: Path, config: QuantizeConfig) -> dict | None:
    """The summary of an earlier run of the same model and settings, None when there is none;
    SystemExit (one line) when the one there was made otherwise (its numbers would be mixed in)."""
    summary = dest.with_suffix(".json")
    if not (summary.exists() and dest.exists()):
        return None
    s = json.loads(summary.read_text())
    wanted = {k: v for k, v in asdict(config).items() if k not in ONLY_SPEED}
    made = {k: v for k, v in s.get("config", {}).items() if k not in ONLY_SPEED}
    if Path(s.get("model", "")).resolve() != model.resolve() or made != wanted:
        raise SystemExit(f"{summary}: made from another model or other settings; delete it or give another --out")
    return s


def _run(model: Path, recovery: str, person: Path, out: Path, config: QuantizeConfig) -> dict:
    """One quantize run on train/ scored on holdout/ (its JSON reused when it matches)."""
    dest = out / f"{model.stem}.{recovery}.int8.onnx"
    config = replace(config, **RECOVERIES[recovery])
    if (s := _reused(dest, model, config)) is not None:
        return s
    summary = dest.with_suffix(".json")
    ann = "annotations/instances_person.json"
    started = time.monotonic()
    s = quantize(model, person / "train" / "images", dest, person / "train" / "images", person / "train" / ann,
                 config, person / "holdout" / "images", person / "holdout" / ann)
    s["seconds"] = time.monotonic() - started
    summary.write_text(json.dumps(s, indent=2))
    return s


def _coco128(model: Path, coco: Path, out: Path, config: QuantizeConfig) -> dict:
    dest = out / f"{model.stem}.coco128.int8.onnx"
    config = replace(config, **RECOVERIES["grid"])
    if (s := _reused(dest, model, config)) is not None:
        return s
    s = quantize(model, coco / "images", dest, coco / "images", coco / "annotations" / "instances_train128.json",
                 config)
    dest.with_suffix(".json").write_text(json.dumps(s, indent=2))
    return s


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--weights", nargs="+", default=[os.environ.get("EDNAS_TEST_WEIGHTS")],
                   help="FP32 ONNX models (default $EDNAS_TEST_WEIGHTS)")
    p.add_argument("--person", default=os.environ.get("EDNAS_TEST_PERSON"),
                   help="val2017-person folder with train/ and holdout/ (default $EDNAS_TEST_PERSON)")
    p.add_argument("--coco128", default=os.environ.get("EDNAS_TEST_COCO"),
                   help="coco-train128 folder, cross-validated too (default $EDNAS_TEST_COCO; '' skips)")
    p.add_argument("--recoveries", nargs="+", default=list(RECOVERIES), choices=list(RECOVERIES))
    p.add_argument("--num-calib", type=int, default=128, help="calibration images from train/ (default 128)")
    p.add_argument("--threads", type=int, default=2, help="threads for calibration and evaluation")
    p.add_argument("--rounds", type=int, default=200, help="timing rounds per thread count")
    p.add_argument("--out", default="quantize_holdout_out")
    args = p.parse_args()
    if not all(args.weights) or not args.person:
        p.error("give --weights and --person (or set EDNAS_TEST_WEIGHTS and EDNAS_TEST_PERSON)")
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")  # ORT's notices
    logging.getLogger("ednas").setLevel(logging.INFO)  # the search's levels, with their ETA
    out, person = Path(args.out), Path(args.person)
    out.mkdir(exist_ok=True)
    info = cpu_info()
    print(f"CPU {info.model}; INT8 flags: {', '.join(sorted(info.flags)) or 'none (AVX2 only)'}; "
          f"load {os.getloadavg()[0]:.2f}")
    config = QuantizeConfig(calib_method="mse", bias_correction=True, num_calib=args.num_calib,
                            threads=args.threads, max_drop=100.0, timing_runs=20)
    rows, shipped = [], {}
    for weights in map(Path, args.weights):
        for recovery in args.recoveries:
            s = _run(weights, recovery, person, out, config)
            rows.append((weights.stem, recovery, s))
            shipped[f"{weights.stem}|{recovery}"] = (weights, out / f"{weights.stem}.{recovery}.int8.onnx")
        if args.coco128:
            c = _coco128(weights, Path(args.coco128), out, config)
            h = c["held_out"]
            folds = ", ".join(f"{d['value']:.2f}" for d in h["per_fold"])
            print(f"{weights.stem}: coco-train128 (80 classes; the released s trained on these images) CV drop "
                  f"{_ci(h['drop_points'], h['ci95'])}, folds {folds}")
    print(f"\nload before timing {os.getloadavg()[0]:.2f}")
    speed = {}
    for threads in (1, 2):
        for key, (fp32, int8) in shipped.items():
            speed[key, threads] = time_models(fp32, {"int8": int8}, threads, args.rounds)["int8"]
    print(f"load after timing {os.getloadavg()[0]:.2f}\n")
    print("| model | recovery | train CV drop (95% CI) | holdout drop (95% CI) | holdout AP FP32 -> INT8 "
          "| speed-up 1 thread | 2 threads | time |")
    print("|---|---|---|---|---|---|---|---|")
    for name, recovery, s in rows:
        h, u = s["held_out"], s["holdout"]
        t1, t2 = speed[f"{name}|{recovery}", 1], speed[f"{name}|{recovery}", 2]
        print(f"| {name} | {recovery} | {_ci(h['drop_points'], h['ci95'])} | {_ci(u['drop_points'], u['drop_ci95'])} "
              f"| {100 * u['fp32_map']:.2f} -> {100 * u['int8_map']:.2f} "
              f"| {t1.speedup:.2f}x ({t1.speedup_p10:.2f}-{t1.speedup_p90:.2f}) "
              f"| {t2.speedup:.2f}x ({t2.speedup_p10:.2f}-{t2.speedup_p90:.2f}) | {s['seconds'] / 60:.1f} min |")
    print(f"\n({rows[0][2]['holdout']['count']} holdout images; train CV over 2 folds of "
          f"{rows[0][2]['held_out']['images']} train images; bound: mean drop <= 0.5 with CI upper end <= 1.0, "
          f"speed-up >= 1.3x with VNNI/AMX, >= 1.15x on AVX2 only)")


if __name__ == "__main__":
    main()
