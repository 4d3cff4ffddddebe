"""Helpers shared by the sub-commands: recipe + weights -> model."""

from __future__ import annotations

import argparse
import dataclasses

from ednas.errors import ModelMismatchError


def add_recipe(parser: argparse.ArgumentParser, required: bool = True) -> None:
    parser.add_argument(
        "recipe", metavar="RECIPE", nargs=None if required else "?",
        help="recipe YAML, a bundled recipe name (e.g. enhanced_nanodet_s) or an ARCH.yml",
    )


def load_model(recipe_arg: str, weights: str | None = None, aux: bool = False):
    """(recipe, model): the recipe's model, or the checkpoint's own architecture (a pruned or
    searched model) with the recipe's classes, loaded with `weights` when given."""
    from ednas.models import build_model, load_checkpoint
    from ednas.models.checkpoint import checkpoint_arch
    from ednas.recipe import load_recipe

    recipe = load_recipe(recipe_arg)
    arch = recipe.model
    if weights:
        ckpt_arch = checkpoint_arch(weights)
        if ckpt_arch.num_classes != arch.num_classes:
            raise ModelMismatchError(
                f"{weights}: checkpoint predicts {ckpt_arch.num_classes} classes, recipe {recipe_arg} "
                f"has {arch.num_classes} class names"
            )
        arch = dataclasses.replace(ckpt_arch, input_size=arch.input_size) if ckpt_arch != arch else arch
    model = build_model(arch, aux=aux)
    if weights:
        load_checkpoint(model, weights)
    return recipe, model
