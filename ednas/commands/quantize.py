"""`ednas quantize`: FP32 ONNX -> static INT8 QDQ ONNX (+ JSON summary), accuracy-aware when an
annotated selection set is given."""

from __future__ import annotations

import argparse

from ednas.commands._common import local_threads, positive_int


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("quantize", help="static INT8 quantization of an ONNX model (QDQ, U8S8)")
    p.add_argument("model", metavar="MODEL.onnx")
    p.add_argument("--calib", required=True, metavar="IMAGES_DIR", help="calibration images folder")
    p.add_argument("--images", metavar="DIR", help="annotated selection images (accuracy-aware mode)")
    p.add_argument("--ann", metavar="JSON", help="COCO annotations of --images")
    p.add_argument("--holdout", metavar="DIR",
                   help="annotated images apart from --calib and --images: the shipped model's drop is scored "
                        "there too, with its paired 95%% interval")
    p.add_argument("--holdout-ann", metavar="JSON", help="COCO annotations of --holdout")
    p.add_argument("--max-drop", type=float, default=0.5,
                   help="allowed mAP drop in points: the upper end of its 95%% interval on held-out folds "
                        "(default 0.5)")
    p.add_argument("--folds", type=positive_int, default=2, help="cross-validation folds of --images (default 2)")
    p.add_argument("--target-cpu", choices=("auto", "avx2", "vnni"), default="auto",
                   help="CPU the model will run on: auto (this one's flags), avx2 (no VNNI: 7-bit weights), "
                        "vnni (avx512_vnni/avx_vnni/amx_int8: 8-bit weights)")
    p.add_argument("--backend", choices=("ort", "inc"), default="ort",
                   help="ort: ONNX Runtime QDQ; inc: Intel Neural Compressor PT2E (pip install 'ednas[inc]')")
    p.add_argument("--recipe", metavar="NAME",
                   help="architecture the ONNX was exported from (e.g. enhanced_nanodet_s); needed by --backend inc")
    p.add_argument("--calib-method", choices=("minmax", "entropy", "percentile", "mse"),
                   help="default: ort tries percentile and mse with --images (mse without); inc: minmax "
                        "(inc supports minmax and entropy)")
    p.add_argument("--finetune", choices=("auto", "always", "off"), default="auto",
                   help="quantization-aware fine-tuning (distilled from FP32 on the calibration images; same "
                        "graph and speed) in the accuracy search: auto tries it when the plain recipes miss "
                        "--max-drop, always applies it (also without --images) (default auto)")
    p.add_argument("--finetune-steps", type=positive_int, default=200, metavar="N",
                   help="its optimizer steps of 8 images (default 200)")
    p.add_argument("--adaround", choices=("auto", "always", "off"), default="auto",
                   help="learned weight rounding (AdaRound: each conv's rounding up or down learned against its "
                        "FP32 output on the calibration images; same graph and speed) in the accuracy search: "
                        "auto tries it when the plain recipes miss --max-drop, before fine-tuning; always applies "
                        "it (also without --images) (default auto)")
    p.add_argument("--adaround-iters", type=positive_int, default=300, metavar="N",
                   help="its learning steps per conv (default 300)")
    p.add_argument("--no-equalize", dest="equalize", action="store_false",
                   help="do not rescale activation channels to share one 8-bit scale per tensor before "
                        "calibrating (equalization is exact in FP32 and on by default)")
    p.add_argument("--num-calib", type=positive_int, default=128, metavar="N", help="calibration images (default 128)")
    p.add_argument("--threads", type=local_threads, default=2, help="ORT threads for evaluation and timing")
    p.add_argument("--out", metavar="OUT.onnx", help="default: MODEL.int8.onnx")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from pathlib import Path

    from ednas.compress.quantize.job import QuantizeConfig, quantize

    out = Path(args.out) if args.out else Path(args.model).with_suffix(".int8.onnx")
    config = QuantizeConfig(
        backend=args.backend, calib_method=args.calib_method, recipe=args.recipe, num_calib=args.num_calib,
        max_drop=args.max_drop, threads=args.threads, folds=args.folds, target_cpu=args.target_cpu,
        finetune=args.finetune, finetune_steps=args.finetune_steps, equalize=args.equalize,
        adaround=args.adaround, adaround_iters=args.adaround_iters,
    )
    s = quantize(args.model, args.calib, out, args.images, args.ann, config, args.holdout, args.holdout_ann)
    if "cpu" in s:
        c = s["cpu"]
        print(f"CPU {c['model']} ({', '.join(c['flags']) or 'no INT8 flags'}): target {c['target']}, {c['why']}")
    if "held_out" in s:
        h = s["held_out"]
        folds = ", ".join(f"{d['value']:.2f}" for d in h["per_fold"])
        print(f"held-out drop {h['drop_points']:.2f} points (95% CI {h['ci95'][0]:.2f} to {h['ci95'][1]:.2f}) on "
              f"{h['images']} images, {h['folds']} folds each calibrated and chosen on the others (fold drops {folds})")
        print(f"shipped: {s['recipe']}; mAP FP32 {s['fp32_map'] * 100:.1f} -> INT8 {s['int8_map'] * 100:.1f} on the "
              f"{h['images']} images that chose it (drop {s['in_sample_drop_points']:.2f}, not the claim above)")
    elif "fp32_map" in s:
        lo, hi = s["drop_ci95"]
        print(f"mAP FP32 {s['fp32_map'] * 100:.1f} -> INT8 {s['int8_map'] * 100:.1f} "
              f"(drop {s['drop_points']:.2f} points, 95% CI {lo:.2f} to {hi:.2f}, on {s['eval']['count']} images)")
    elif "recipe" in s and isinstance(s["recipe"], str) and s["backend"] == "ort":
        print(f"shipped: {s['recipe']} (no --images: accuracy not measured)")
    if "holdout" in s:
        u = s["holdout"]
        print(f"holdout: mAP FP32 {u['fp32_map'] * 100:.1f} -> INT8 {u['int8_map'] * 100:.1f}, drop "
              f"{u['drop_points']:.2f} points (95% CI {u['drop_ci95'][0]:.2f} to {u['drop_ci95'][1]:.2f}) on "
              f"{u['count']} images that neither calibrated nor chose it")
    lat = s["latency"]
    print(f"latency FP32 {lat['reference_ms']:.1f} ms, INT8 {lat['candidate_ms']:.1f} ms "
          f"({lat['threads']} threads, {lat['runs']} interleaved rounds): {s['speedup']:.2f}x "
          f"(rounds p10-p90 {lat['speedup_p10']:.2f}-{lat['speedup_p90']:.2f})")
    print(f"wrote {out} and {out.with_suffix('.json')}")
    return 0
