"""`ednas latency`: predicted latency of an architecture from a latency table, by block."""

from __future__ import annotations

import argparse
from pathlib import Path

from ednas.commands._common import input_size, positive_int


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("latency", help="predict a model's latency from a latency table")
    p.add_argument("model", metavar="RECIPE|ARCH.yml",
                   help="recipe YAML, bundled recipe or architecture name, or an ARCH.yml (pruned ones too)")
    p.add_argument("--precision", choices=["fp32", "int8"],
                   help="fp32, or int8: the model `ednas quantize` ships (default: fp32, or the --table's)")
    p.add_argument("--threads", type=positive_int, help="ONNX Runtime threads (default: 2, or the --table's)")
    p.add_argument("--table", metavar="CSV",
                   help="latency table (default: latency_tables/enhanced_nanodet_cpu_PRECISION_Nt.csv); "
                        "refused when measured for another precision, thread count or CPU")
    p.add_argument("--space", metavar="FILE", help="refuse a table built for a space other than this one")
    p.add_argument("--input-size", type=input_size, help="square input size (default: the model's)")
    p.add_argument("--measure-missing", action="store_true",
                   help="time the units the table lacks (widths outside its space, e.g. a pruned model) on this "
                        "machine now, on the table's scale, and keep them beside it in TABLE.extra.csv")
    p.add_argument("--rescale", action="store_true",
                   help="time the probe model now and scale the prediction to this machine's current speed")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ednas.errors import InputError
    from ednas.latency import LatencyPredictor, LatencyTable, default_table
    from ednas.latency.extra import extra_paths, measure_missing, missing_units
    from ednas.latency.target import target_for
    from ednas.recipe import load_arch

    arch = load_arch(args.model)
    if args.input_size:
        arch = arch.replace(input_size=args.input_size)
    fingerprint = None
    if args.space:
        from ednas.arch.space import SearchSpace

        fingerprint = SearchSpace.load(args.space).fingerprint()
    path = Path(args.table or default_table(precision=args.precision or "fp32", threads=args.threads or 2))
    table = LatencyTable.load(path, fingerprint, target=target_for(path, args.precision, args.threads))
    missing = missing_units(table, [arch])
    if missing and not args.measure_missing:
        raise InputError(f"{path} has no row for {len(missing)} units of {args.model} (widths outside its space "
                         f"{table.meta.space_name!r}, e.g. a pruned model); add --measure-missing to time them on "
                         f"this machine now and keep them in {extra_paths(path)[0]}")
    if missing:
        n = measure_missing(table, [arch])
        print(f"measured {n} units {path.name} lacked; kept in {extra_paths(path)[0]}")
    scale = 1.0
    if args.rescale:
        from ednas.latency.validate import measure_probe

        scale = measure_probe(table) / table.meta.probe_ms
    predictor = LatencyPredictor(table, scale)
    total = predictor.predict(arch)
    m = table.meta
    print(f"{args.model} @ {arch.input_size}px: {total:.2f} ms predicted ({m.precision}, {m.device}, "
          f"{m.threads} threads; table {table.path.name}{f', machine now x{scale:.2f}' if args.rescale else ''})")
    print(f"{'part':<24}{'ms':>9}{'share':>8}  unit")
    for part in predictor.breakdown(arch):
        print(f"{part.name:<24}{part.ms:>9.3f}{100 * part.ms / total:>7.1f}%  {part.key}")
    return 0
