"""How often GPT-2 small's random tensors fail a KS test against transformers' own initialization.

    .venv/bin/python bench/bench_recipe_ks.py

Draws transformers' GPT2LMHeadModel(GPT2Config()) with torch seeds 0 and 1, then initializes the second
model with initreg (seed 3): with the single-initializer preset `gpt2_normal` (N(0, 0.02^2) for every
weight, LayerNorm one, biases zero) and with the recipe `hf_gpt2`. Each row counts the random tensors
whose two-sample KS p-value against seed 0's (on 100,000 sampled elements) is below 1e-3. Needs
transformers (the `test` extra).
"""

from __future__ import annotations

import numpy as np
import torch
import transformers
from scipy import stats

from initreg import recipes
from initreg.interop.torch import initialize

ALPHA, SAMPLE = 1e-3, 100_000


def gpt2(seed: int) -> torch.nn.Module:
    torch.manual_seed(seed)
    return transformers.GPT2LMHeadModel(transformers.GPT2Config())


def values(model: torch.nn.Module) -> dict[str, np.ndarray]:
    return {name: p.detach().numpy().copy() for name, p in model.named_parameters()}


def main() -> None:
    reference, model = values(gpt2(0)), gpt2(1)
    names = [name for name, array in reference.items() if np.any(array != 0) and np.any(array != 1)]
    pick = np.random.default_rng(0)

    def sample(array: np.ndarray) -> np.ndarray:
        flat = array.ravel()
        return flat if flat.size <= SAMPLE else pick.choice(flat, SAMPLE, replace=False)

    def failing(drawn: dict[str, np.ndarray]) -> int:
        return sum(stats.ks_2samp(sample(drawn[n]), sample(reference[n])).pvalue < ALPHA for n in names)

    rows = [("transformers, seed 1", failing(values(model)))]
    initialize(model, _preset_rules(), seed=3)
    rows.append(("initreg, init=gpt2_normal", failing(values(model))))
    initialize(model, recipes.load("hf_gpt2", model).rules, seed=3)
    rows.append(("initreg, recipe=hf_gpt2", failing(values(model))))
    print(f"GPT-2 small, {len(names)} random tensors, KS p < {ALPHA} against transformers seed 0")
    print(f"{'initialized by':<28}{'failing':>8}")
    for label, count in rows:
        print(f"{label:<28}{count:>8}")


def _preset_rules() -> dict[str, object]:
    """The command's rules for init=gpt2_normal model=gpt2_small (the preset's yaml, read as the command does)."""
    from importlib.resources import files

    from omegaconf import OmegaConf

    preset = OmegaConf.to_container(OmegaConf.load(str(files("initreg.configs.public") / "init" / "gpt2_normal.yaml")))
    return {
        "weights": {"match": "*", "init": preset},
        "biases": {"match": "*.bias", "init": "zeros"},
        "norm_scales": {"match": "*ln_*.weight", "init": "ones"},
    }


if __name__ == "__main__":
    main()
