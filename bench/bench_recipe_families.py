"""Each transformers family's recipe against the family's own _init_weights, tensor by tensor.

    .venv/bin/python bench/bench_recipe_families.py

For every family of tests/test_recipes.py (FAMILY_MODELS, small configs), transformers initializes the model
with torch seeds 0 (the reference) and 1 (the null); a third copy is initialized by initreg with
``recipes.for_model(model)`` (seed 3). Per family it prints the recipe, the number of random tensors, the
worst std ratio (ours / reference, the one farthest from 1, and that tensor's number of elements), the
smallest two-sample KS p of ours against the reference, and the smallest KS p of the null against the
reference: initreg is within sampling noise when its smallest p is in the range the null's reaches. Then
the model types recipes.for_model refuses. Needs transformers (the `test` extra).
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from test_recipes import FAMILY_MODELS, as_numpy, family_model, ks_p, random_part

from initreg import InitregError, recipes
from initreg.interop.torch import initialize

REFUSED_PROBES = {"distilbert": "DistilBertConfig", "gpt_neox": "GPTNeoXConfig", "falcon": "FalconConfig",
                  "gemma3": "Gemma3Config", "mt5": "MT5Config", "deberta": "DebertaConfig"}  # fmt: skip


def main() -> None:
    print(f"{'family':<13}{'recipe':<12}{'tensors':>8}{'worst std ratio (n)':>20}{'min KS p':>12}{'null min KS p':>15}")
    for family in FAMILY_MODELS:
        reference, null = as_numpy(family_model(family, 0)), as_numpy(family_model(family, 1))
        model = family_model(family, 2)
        recipe = recipes.for_model(model)
        initialize(model, recipe.rules, seed=3)
        ours = as_numpy(model)
        random = [name for name, array in reference.items() if np.any(array != 0) and np.any(array != 1)]
        ratios = {n: float(random_part(ours[n]).std() / random_part(reference[n]).std()) for n in random}
        worst_name = max(ratios, key=lambda n: abs(ratios[n] - 1))
        worst = f"{ratios[worst_name]:.4f} ({reference[worst_name].size})"
        ours_p = min(ks_p(random_part(ours[n]), random_part(reference[n])) for n in random)
        null_p = min(ks_p(random_part(null[n]), random_part(reference[n])) for n in random)
        print(f"{family:<13}{recipe.name:<12}{len(random):>8}{worst:>20}{ours_p:>12.2e}{null_p:>15.2e}")
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
