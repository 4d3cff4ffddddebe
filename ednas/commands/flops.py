"""`ednas flops`: parameters and MACs of a recipe's inference model."""

from __future__ import annotations

import argparse
import json

from ednas.commands._common import add_recipe, input_size


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("flops", help="parameters (BN unfused, aux excluded) and MACs of a model")
    add_recipe(p)
    p.add_argument("--weights", help="checkpoint (its architecture is used, e.g. a pruned model)")
    p.add_argument("--input-size", type=input_size, help="square input size (default: the recipe's)")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ednas.commands._common import load_model
    from ednas.models.complexity import complexity

    recipe, model = load_model(args.recipe, args.weights)
    stats = complexity(model, args.input_size)
    if args.json:
        print(json.dumps({"recipe": recipe.name, **stats}))
        return 0
    print(f"{recipe.name} @ {stats['input_size']}px")
    print(f"{'part':<10}{'params':>12}{'MACs (G)':>12}")
    for part, s in stats["parts"].items():
        print(f"{part:<10}{s['params']:>12,}{s['macs'] / 1e9:>12.3f}")
    print(f"{'total':<10}{stats['params']:>12,}{stats['macs'] / 1e9:>12.3f}")
    print(f"params: {stats['params']:,} ({stats['params'] / 2**20:.2f} M in 2^20 units), "
          f"MACs: {stats['macs'] / 1e9:.3f} G, FLOPs: {stats['flops'] / 1e9:.3f} G")
    return 0
