"""A Hydra training app of your own whose model initreg initializes: one line of config opts in.

    python train.py init=he_normal seed=3
    python train.py init=variance_scaling init.scale=2 init.mode=fan_avg
    python train.py init=torch_default                  # a plugin's initializer (pip install initreg-extra)
    python train.py '+rules.x={match:"*.bias",init:ones}'
    python train.py -m init=lecun_normal,he_normal
    python train.py model.name=gpt2 recipe=hf_gpt2      # Hugging Face GPT-2's scheme, at this model's depth
    python train.py save=weights.safetensors            # also writes the initialized weights

conf/config.yaml names initreg's config source in `hydra.searchpath`, which serves `init/<name>` for
every registered initializer and `recipe/<name>` for every shipped recipe; conf/ holds only this app's
own config. A recipe reads its structural variables (GPT-2's n_layer) from the model, so that its depth
scaling fits the model built, whatever its depth.
"""

from __future__ import annotations

import hydra
import torch
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig

from initreg import recipes
from initreg.interop.torch import initialize


class MLP(torch.nn.Module):
    """inputs -> hidden -> outputs, with a ReLU between."""

    def __init__(self, inputs: int, hidden: int, outputs: int) -> None:
        super().__init__()
        self.hidden = torch.nn.Linear(inputs, hidden)
        self.out = torch.nn.Linear(hidden, outputs)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.out(torch.relu(self.hidden(x)))


def build(model: DictConfig) -> torch.nn.Module:
    """The model `model.name` names."""
    if model.name == "gpt2":
        from transformers import GPT2Config, GPT2LMHeadModel

        return GPT2LMHeadModel(GPT2Config(**model.gpt2))
    return MLP(model.inputs, model.hidden, model.outputs)


@hydra.main(config_path="conf", config_name="config", version_base="1.3")
def train(cfg: DictConfig) -> None:
    model = build(cfg.model)
    rules = cfg.rules
    if cfg.get("recipe") is not None:  # the recipe's rules, its structural variables read from the model
        rules = recipes.from_config(HydraConfig.get().runtime.choices.recipe, cfg.recipe, model=model).rules
    entries = initialize(model, rules, seed=cfg.seed)
    parameters = dict(model.named_parameters())
    for entry in entries:
        std = parameters[entry.path].std().item() if parameters[entry.path].numel() > 1 else 0.0
        print(f"{entry.path} {list(entry.shape)} rule={entry.rule} {entry.initializer!r} std={std:.4g}")
    if cfg.save:
        from safetensors.torch import save_file

        save_file({name: tensor.detach().clone() for name, tensor in model.state_dict().items()}, cfg.save)
        print(f"wrote {cfg.save}")


if __name__ == "__main__":
    train()
