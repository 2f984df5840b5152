"""Each transformers family's recipe against the family's own _init_weights, tensor by tensor.

    .venv/bin/python bench/bench_recipe_families.py

For every family of tests/test_recipes.py (FAMILY_MODELS, small configs), transformers initializes the model
with torch seeds 0 (the reference) and 1 (the null); a third copy is initialized by initreg with
``recipes.for_model(model)`` (seed 3). Per family it prints the recipe, the number of random tensors, the
worst std ratio (ours / reference, the one farthest from 1, and that tensor's number of elements), the
smallest two-sample KS p of ours against the reference, and the smallest KS p of the null against the
reference: initreg is within sampling noise when its smallest p is in the range the null's reaches. The
vision recipes follow (tests/test_recipes_vision.py: timm's ViT at its default and jax init, torchvision's
resnet18 and a Bottleneck ResNet, with and without zero_init_residual), each loaded by name for the model.
Then the model types recipes.for_model refuses. Needs transformers, timm and torchvision (the `test` extra).
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from test_recipes import FAMILY_MODELS, as_numpy, family_model, ks_p, random_part
from test_recipes_vision import resnet, vit

from initreg import InitregError, recipes
from initreg.interop.torch import initialize

VISION = {  # label: (the model at a torch seed, its recipe, the recipe's given variables)
    "timm vit": (lambda seed: vit("", seed), "timm_vit", {}),
    "timm vit jax": (lambda seed: vit("jax", seed), "timm_vit_jax", {}),
    "resnet18": (lambda seed: resnet(seed), "torchvision_resnet", {}),
    "resnet18 zir": (
        lambda seed: resnet(seed, zero_init_residual=True),
        "torchvision_resnet",
        {"zero_init_residual": 1},
    ),
    "bottleneck": (lambda seed: resnet(seed, bottleneck=True), "torchvision_resnet", {}),
}
REFUSED_PROBES = {"distilbert": "DistilBertConfig", "gpt_neox": "GPTNeoXConfig", "falcon": "FalconConfig",
                  "gemma3": "Gemma3Config", "mt5": "MT5Config", "deberta": "DebertaConfig"}  # fmt: skip


def row(label: str, recipe: str, build: Callable[[int], Any], model: Any, rules: list[Any]) -> None:
    """One line: `model` initialized by `rules` against `build(0)` (the reference) and `build(1)` (the null)."""
    reference, null = as_numpy(build(0)), as_numpy(build(1))
    initialize(model, rules, seed=3)
    ours = as_numpy(model)
    random = [name for name, array in reference.items() if np.any(array != 0) and np.any(array != 1)]
    ratios = {n: float(random_part(ours[n]).std() / random_part(reference[n]).std()) for n in random}
    worst_name = max(ratios, key=lambda n: abs(ratios[n] - 1))
    worst = f"{ratios[worst_name]:.4f} ({reference[worst_name].size})"
    ours_p = min(ks_p(random_part(ours[n]), random_part(reference[n])) for n in random)
    null_p = min(ks_p(random_part(null[n]), random_part(reference[n])) for n in random)
    print(f"{label:<13}{recipe:<19}{len(random):>8}{worst:>20}{ours_p:>12.2e}{null_p:>15.2e}")


def main() -> None:
    print(f"{'family':<13}{'recipe':<19}{'tensors':>8}{'worst std ratio (n)':>20}{'min KS p':>12}{'null min KS p':>15}")
    for family in FAMILY_MODELS:
        model = family_model(family, 2)
        recipe = recipes.for_model(model)
        row(family, recipe.name, lambda seed, family=family: family_model(family, seed), model, recipe.rules)
    for label, (build, name, variables) in VISION.items():
        model = build(2)
        row(label, name, build, model, recipes.load(name, model, **variables).rules)
    import transformers

    refused = []
    for model_type, config in REFUSED_PROBES.items():
        try:
            recipes.for_model({"x.weight": (1, 1)}, config=getattr(transformers, config)())
        except InitregError:
            refused.append(model_type)
    print("refused:", ", ".join(refused), "(and every model type not listed above)")


if __name__ == "__main__":
    main()
