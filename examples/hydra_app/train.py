"""A Hydra training app of your own whose model initreg initializes: the `init` group needs no glue.

    python train.py init=he_normal seed=3
    python train.py init=variance_scaling init.scale=2 init.mode=fan_avg
    python train.py init=torch_default                  # a plugin's initializer (pip install initreg-extra)
    python train.py '+rules.x={match:"*.bias",init:ones}'
    python train.py -m init=lecun_normal,he_normal
    python train.py save=weights.safetensors            # also writes the initialized weights

initreg's Hydra plugin serves `init/<name>` for every registered initializer; conf/ holds only this app's
own config.
"""

from __future__ import annotations

import hydra
import torch
from omegaconf import DictConfig

from initreg.interop.torch import initialize


class MLP(torch.nn.Module):
    """inputs -> hidden -> outputs, with a ReLU between."""

    def __init__(self, inputs: int, hidden: int, outputs: int) -> None:
        super().__init__()
        self.hidden = torch.nn.Linear(inputs, hidden)
        self.out = torch.nn.Linear(hidden, outputs)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.out(torch.relu(self.hidden(x)))


@hydra.main(config_path="conf", config_name="config", version_base="1.3")
def train(cfg: DictConfig) -> None:
    model = MLP(cfg.model.inputs, cfg.model.hidden, cfg.model.outputs)
    entries = initialize(model, cfg.rules, seed=cfg.seed)
    parameters = dict(model.named_parameters())
    for entry in entries:
        std = parameters[entry.path].std().item()
        print(f"{entry.path} {list(entry.shape)} rule={entry.rule} {entry.initializer!r} std={std:.4g}")
    if cfg.save:
        from safetensors.torch import save_file

        save_file({name: tensor.contiguous() for name, tensor in model.state_dict().items()}, cfg.save)
        print(f"wrote {cfg.save}")


if __name__ == "__main__":
    train()
