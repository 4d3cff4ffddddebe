"""Latency table self-check: predicted vs measured on random architectures, and predictor speed.

    python benchmarks/latency_validate.py                       # fp32 table, 30 archs
    python benchmarks/latency_validate.py --precision int8 -n 30

Measured on the 2-core EPYC box, 2 threads, quiet machine, 30 held-out architectures (none a
calibration model), 2 passes: fp32 compensated MAPE 3.2 %, 100 % within +-10 %; int8 5.1 %,
90 %. "repeat" (pass 2 vs pass 1 of the same files: 5.3 % / 80 % fp32) is the noise floor of
the check itself. The predictor does well over 10^4 architectures/s. Writes ONNX files, validation.csv and scatter.png to --out.
"""

from __future__ import annotations

import argparse
import random
import time
from pathlib import Path

from ednas.latency import LatencyPredictor, LatencyTable, default_table
from ednas.latency.validate import plot_report, validate
from ednas.search import SearchSpace


def predictor_throughput(predictor: LatencyPredictor, space: SearchSpace, n: int = 20000) -> tuple[float, float]:
    """(archs/s on architectures never seen before, archs/s on repeated ones)."""
    rng = random.Random(123)
    archs = [space.sample(rng) for _ in range(n)]
    start = time.perf_counter()
    for arch in archs:
        predictor.predict(arch)
    fresh = n / (time.perf_counter() - start)
    start = time.perf_counter()
    for arch in archs:
        predictor.predict(arch)
    return fresh, n / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--precision", default="fp32", choices=["fp32", "int8"])
    parser.add_argument("-n", type=int, default=30, help="random architectures to measure")
    parser.add_argument("--table", help="latency table (default: the committed one for --precision)")
    parser.add_argument("--out", default="runs/latency_validate", help="output folder")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--passes", type=int, default=2, help="measurements of each model, minutes apart")
    args = parser.parse_args()

    space = SearchSpace.load()
    table = LatencyTable.load(args.table or default_table(space.name, args.precision), space.fingerprint())
    predictor = LatencyPredictor(table)
    fresh, cached = predictor_throughput(predictor, space)
    print(f"predictor: {fresh:,.0f} new archs/s, {cached:,.0f} repeated archs/s")

    out = Path(args.out) / args.precision
    report = validate(table, space, args.n, out, seed=args.seed, passes=args.passes)
    plot_report(report, out / "scatter.png")
    print(f"{args.n} archs, {args.precision}, {table.meta.threads} threads; probe now "
          f"{report.probe_now_ms:.2f} ms vs {table.meta.probe_ms:.2f} ms when the table was built")
    rows = [("raw", report.raw), ("compensated", report.compensated)] + ([("repeat", report.repeat)] if report.repeat else [])
    for name, acc in rows:
        print(f"{name:>12}: MAPE {acc.mape:5.1f} %, within 5 % {acc.within5:5.1f} %, within 10 % {acc.within10:5.1f} %")
    print(f"wrote {out}/validation.csv and scatter.png")


if __name__ == "__main__":
    main()
