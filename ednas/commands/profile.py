"""`ednas profile`: build a latency table for a search space (or a bundle to measure on another
device, or import one), and check a table against end-to-end measurements (--validate)."""

from __future__ import annotations

import argparse
from pathlib import Path

from ednas.commands._common import positive_int


def calib_count(text: str) -> int:
    """argparse type: whole models for the calibration fit (3 terms, so at least 3)."""
    value = positive_int(text)
    if value < 3:
        raise argparse.ArgumentTypeError(f"{value}: the calibration fit has 3 terms; give at least 3 models")
    return value


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("profile", help="latency lookup table of a search space (ONNX Runtime)")
    p.add_argument("--device", default="cpu", help="target to measure on (here: cpu)")
    p.add_argument("--space", metavar="FILE", help="search space YAML (default: search_spaces/enhanced_nanodet.yml)")
    p.add_argument("--threads", type=positive_int, default=2, help="ORT intra-op threads (default 2)")
    p.add_argument("--precision", default="fp32", choices=["fp32", "int8"])
    p.add_argument("--spin", action="store_true",
                   help="let ORT worker threads spin-wait (its default; off here: robust on shared machines)")
    p.add_argument("--remeasure-noisy", action="store_true",
                   help="time again the rows of an existing table that other work on the machine spoiled "
                        "(median over 1.5x its fastest runs), keeping the steadier timing, and refit")
    p.add_argument("--calib-models", type=calib_count, default=48, metavar="K",
                   help="whole models for calibration (default 48)")
    p.add_argument("--out", metavar="PATH",
                   help="table CSV (default latency_tables/SPACE_DEVICE_PRECISION_Nt.csv); with --validate a folder")
    mode = p.add_mutually_exclusive_group()
    mode.add_argument("--bundle", metavar="DIR", help="write unit ONNX files + standalone runner to DIR")
    mode.add_argument("--import", dest="import_", metavar="RESULTS", help="make a table from a measured bundle")
    mode.add_argument("--validate", type=positive_int, metavar="N", help="predicted vs measured on N random architectures")
    p.add_argument("--table", metavar="CSV", help="with --validate: the table to check (default: as --out)")
    p.add_argument("--seed", type=int, default=0, help="with --validate: sampling seed")
    p.add_argument("--passes", type=positive_int, default=2, metavar="K",
                   help="with --validate: measure every model K times, minutes apart; with K >= 2 the report "
                        "shows how well a measurement repeats (the noise floor of the check; default 2)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ednas.latency import profiler
    from ednas.latency.table import default_table
    from ednas.search import SearchSpace

    from ednas.cpu import check_threads
    from ednas.io import check_output

    profiler.check_device(args.device)
    if not (args.bundle or args.import_):  # measured here: no more threads than CPUs
        check_threads(args.threads)
    space = SearchSpace.load(args.space)
    table = Path(args.table or (args.out if args.out and args.validate is None else "")
                 or default_table(space.name, args.precision, args.threads, args.device))
    if args.bundle:
        check_output(args.bundle, folder=True)
    elif args.validate is not None:
        check_output(args.out or ".", folder=True)
    else:
        check_output(table)  # before minutes of measuring
    if args.bundle:
        n = profiler.write_bundle(space, Path(args.bundle), args.precision, args.threads, args.spin,
                                  args.calib_models)
        print(f"wrote {n} ONNX files to {args.bundle}; measure them on the target with "
              f"`python {args.bundle}/runner.py {args.bundle}` (needs onnxruntime + numpy), then "
              f"`ednas profile --import {args.bundle} --out TABLE.csv`")
        return 0
    if args.import_:
        meta = profiler.import_results(Path(args.import_), table)
        print(f"wrote {table} ({meta.units_expected} units, probe {meta.probe_ms:.2f} ms, "
              f"calibration fit {meta.calibration.mape if meta.calibration else float('nan'):.1f} % MAPE)")
        return 0
    if args.validate is not None:
        return _validate(args, space, table)
    meta = profiler.profile(space, table, args.device, args.precision, args.threads, args.spin,
                            args.calib_models, remeasure_noisy=args.remeasure_noisy)
    c = meta.calibration
    from ednas.latency.target import LatencyTarget

    weights = f" ({meta.int8_weights} weights, as `ednas quantize` ships)" if meta.int8_weights else ""
    print(f"{table}: {meta.units_expected} units + {meta.calib_expected} models, {meta.precision}{weights}; "
          f"{LatencyTarget.of_table(meta).describe()}; probe {meta.probe_ms:.2f} ms")
    if c is not None:
        print(f"calibration: {c.overhead_ms:+.2f} ms + {c.scale:.3f} x units {c.ms_per_melem:+.3f} ms/Melem "
              f"(fit on {c.models} models: {c.mape:.1f} % MAPE)")
    return 0


def _validate(args: argparse.Namespace, space, table_path: Path) -> int:
    from ednas.errors import InputError
    from ednas.latency.table import LatencyTable
    from ednas.latency.validate import plot_report, validate

    table = LatencyTable.load(table_path, space.fingerprint())
    out = Path(args.out or f"latency_validation_{table.meta.precision}")
    if args.passes < 1:
        raise InputError(f"--passes {args.passes}: give at least 1")
    report = validate(table, space, args.validate, out, seed=args.seed, passes=args.passes)
    png = plot_report(report, out / "scatter.png")
    print(f"{args.validate} architectures, {table.meta.precision}, {table.meta.threads} threads; "
          f"probe {report.probe_now_ms:.2f} ms now vs {table.meta.probe_ms:.2f} ms in the table")
    for name, m in (("raw", report.raw), ("compensated", report.compensated)):
        print(f"{name:>12}: MAPE {m.mape:5.1f} %, within 5 % {m.within5:5.1f} %, within 10 % {m.within10:5.1f} %")
    if report.repeat is not None:
        m = report.repeat
        print(f"{'repeat':>12}: MAPE {m.mape:5.1f} %, within 5 % {m.within5:5.1f} %, within 10 % {m.within10:5.1f} %"
              "   (pass 2 vs pass 1 of the same files: the measurement's own noise)")
    print(f"wrote {out / 'validation.csv'}, {png} and the ONNX files to {out}")
    return 0
