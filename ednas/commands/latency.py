"""`ednas latency`: predicted latency of an architecture from a latency table, by block."""

from __future__ import annotations

import argparse
from pathlib import Path

from ednas.commands._common import input_size


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("latency", help="predict a model's latency from a latency table")
    p.add_argument("model", metavar="RECIPE|ARCH.yml",
                   help="recipe YAML, bundled recipe or architecture name, or an ARCH.yml")
    p.add_argument("--table", metavar="CSV", help="latency table (default: latency_tables/enhanced_nanodet_cpu_fp32_2t.csv)")
    p.add_argument("--space", metavar="FILE", help="refuse a table built for a space other than this one")
    p.add_argument("--input-size", type=input_size, help="square input size (default: the model's)")
    p.add_argument("--rescale", action="store_true",
                   help="time the probe model now and scale the prediction to this machine's current speed")
    p.set_defaults(func=run)


def load_arch(spec: str):
    """An ArchSpec from an ARCH.yml (a mapping with `backbone`) or anything load_recipe takes."""
    from ednas.arch import ArchSpec
    from ednas.config import load_yaml
    from ednas.recipe import load_recipe

    path = Path(spec)
    if path.suffix in (".yml", ".yaml") and path.is_file():
        data = load_yaml(path)
        if isinstance(data, dict) and "backbone" in data and "model" not in data:
            return ArchSpec.load(path)
    return load_recipe(spec).model


def run(args: argparse.Namespace) -> int:
    from ednas.latency import LatencyPredictor, LatencyTable, default_table

    arch = load_arch(args.model)
    if args.input_size:
        arch = arch.replace(input_size=args.input_size)
    fingerprint = None
    if args.space:
        from ednas.search import SearchSpace

        fingerprint = SearchSpace.load(args.space).fingerprint()
    table = LatencyTable.load(args.table or default_table(), fingerprint)
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
