"""Does the INT8 latency table price what `ednas quantize` ships? Predicted vs measured on random
architectures of the enhanced_nanodet space (fixed seed).

    python benchmarks/int8_table_mape.py                 # 10 archs, committed int8 2-thread table
    python benchmarks/int8_table_mape.py -n 10 --work runs/int8_table_mape

Each architecture (none a calibration model of the table) is exported in FP32 (random weights:
latency does not depend on them), quantized by `ednas.compress.quantize.job.quantize` exactly as
`ednas quantize` runs without --images (no accuracy search; a few calibration images), then
timed interleaved with the table's probe model; the measurement is put on the table's time
scale (per-pair ratio x the table's probe latency). Resumable: one CSV row per architecture in
--work/results.csv; the models are made before the table is read (--models-only stops there,
e.g. while the table is being built). Acceptance (issue 10): MAPE <= 8 %.

Measured 2026-11-30 on the 2-vCPU AMD EPYC (avx2, avx512_vnni: 8-bit weights), 2 threads, load
average 3.3-3.5 (other work on the box), table of builder 2 with noisy rows re-timed:
MAPE 7.1 % (errors 1.7-14.1 %, two passes per model agreeing within 1-9 %). The first build
of the same table, before re-timing rows that contention had spoiled (one stem row 10x off),
gave 14.8 %.
"""

from __future__ import annotations

import argparse
import csv
import os
import random
import statistics
from pathlib import Path

from ednas.arch.space import SearchSpace
from ednas.cpu import cpu_info
from ednas.latency import LatencyPredictor, LatencyTable, default_table, runner
from ednas.latency.export import export_arch
from ednas.latency.profiler import CALIB_MODELS, arch_hash, calibration_archs, export_probe
from ednas.latency.target import LatencyTarget

COLUMNS = ["name", "arch_hash", "predicted_ms", "measured_ms", "measured_raw_ms", "probe_ms", "passes_ms"]


def held_out_archs(space: SearchSpace, n: int, seed: int) -> list:
    """`n` random architectures, none of them a model a table's calibration is fitted on
    (profiler.calibration_archs draws the same ones for every table of the space)."""
    fitted = {arch_hash(a) for a in calibration_archs(space, CALIB_MODELS).values()}
    rng, archs = random.Random(seed), []
    while len(archs) < n:
        arch = space.sample(rng)
        if arch_hash(arch) not in fitted:
            archs.append(arch)
    return archs


def quantize_as_shipped(fp32: Path, out: Path, images: str, num_calib: int) -> Path:
    """The model `ednas quantize FP32 --calib IMAGES --out OUT` writes (no --images: no search)."""
    from ednas.compress.quantize import job

    job.quantize(fp32, images, out, config=job.QuantizeConfig(num_calib=num_calib, timing_runs=5))
    return out


def measure(path: Path, probe: runner.Timed, table: LatencyTable, passes: int) -> dict[str, float | str]:
    """Compensated latency (table scale) of each pass, interleaved with the probe."""
    m = table.meta
    timed = runner.Timed(path, m.threads, m.spin)
    stats = [runner.time_pair(timed, probe, **runner.MODEL_TIMING) for _ in range(passes)]
    each = [s["ratio"] * m.probe_ms for s in stats]
    return {"measured_ms": statistics.median(each), "measured_raw_ms": statistics.median(s["median_ms"] for s in stats),
            "probe_ms": statistics.median(s["probe_ms"] for s in stats), "passes_ms": " ".join(f"{x:.3f}" for x in each)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-n", type=int, default=10, help="random architectures")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--table", help="INT8 latency table (default: the committed one for --threads)")
    coco = os.environ.get("EDNAS_TEST_COCO")
    parser.add_argument("--calib", default=coco and os.path.join(coco, "images"),
                        help="calibration images for `ednas quantize` (default $EDNAS_TEST_COCO/images)")
    parser.add_argument("--num-calib", type=int, default=8, help="calibration images used (speed does not depend on it)")
    parser.add_argument("--passes", type=int, default=2, help="interleaved measurements of each model")
    parser.add_argument("--work", default="runs/int8_table_mape", help="ONNX files and results.csv (resumable)")
    parser.add_argument("--models-only", action="store_true", help="make the INT8 models, measure nothing")
    args = parser.parse_args()
    if not args.calib:
        parser.error("give --calib (or set EDNAS_TEST_COCO)")

    info = cpu_info()
    load_start = os.getloadavg()
    space = SearchSpace.load()
    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    archs = held_out_archs(space, args.n, args.seed)
    for i, arch in enumerate(archs):  # the models first: they need no table
        int8 = work / f"arch_{i:02d}_{arch_hash(arch)}_int8.onnx"
        if not int8.exists():
            fp32 = export_arch(arch, work / f"arch_{i:02d}_fp32.onnx", "fp32")
            quantize_as_shipped(fp32, int8, args.calib, args.num_calib)
            print(f"quantized arch_{i:02d} as `ednas quantize` ships it", flush=True)
    if args.models_only:
        return

    path = Path(args.table or default_table(space.name, "int8", args.threads))
    table = LatencyTable.load(path, space.fingerprint(), target=LatencyTarget.here("int8", args.threads))
    predictor = LatencyPredictor(table)
    results = work / "results.csv"
    done = {r["name"]: r for r in csv.DictReader(results.open())} if results.exists() else {}
    probe = runner.Timed(export_probe(work / "probe.onnx"), table.meta.threads, table.meta.spin)
    for i, arch in enumerate(archs):
        name = f"arch_{i:02d}"
        if name in done and done[name]["arch_hash"] == arch_hash(arch):
            continue
        row = {"name": name, "arch_hash": arch_hash(arch), "predicted_ms": predictor.predict(arch),
               **measure(work / f"{name}_{arch_hash(arch)}_int8.onnx", probe, table, args.passes)}
        new = not results.exists()
        with results.open("a", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=COLUMNS)
            if new:
                writer.writeheader()
            writer.writerow(row)
        done[name] = {k: str(v) for k, v in row.items()}
        print(f"{name}: predicted {row['predicted_ms']:.2f} ms, measured {row['measured_ms']:.2f} ms", flush=True)

    rows = [done[f"arch_{i:02d}"] for i in range(args.n)]
    print(f"\nCPU: {info.describe()}; ORT threads {table.meta.threads}; table {path.name} "
          f"(builder {table.meta.builder}, {table.meta.int8_weights} weights, probe {table.meta.probe_ms:.2f} ms)")
    print(f"load average at start {load_start[0]:.2f} {load_start[1]:.2f} {load_start[2]:.2f}, "
          f"at end {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    print(f"{'arch':<9}{'predicted':>11}{'measured':>10}{'pred/meas':>11}{'error':>8}   passes (ms)")
    errors = []
    for r in rows:
        p, m = float(r["predicted_ms"]), float(r["measured_ms"])
        errors.append(abs(p - m) / m * 100)
        print(f"{r['name']:<9}{p:>11.2f}{m:>10.2f}{p / m:>11.3f}{errors[-1]:>7.1f}%   {r['passes_ms']}")
    mape = statistics.fmean(errors)
    print(f"MAPE {mape:.1f} % over {len(rows)} architectures (acceptance: <= 8 %): {'met' if mape <= 8 else 'NOT met'}")


if __name__ == "__main__":
    main()
