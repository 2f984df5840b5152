"""Initialize a torchtitan-style Llama sharded with FSDP2 (and TP) straight from initreg's stream.

    torchrun --standalone --nproc_per_node=2 examples/torchtitan_fsdp/init_sharded.py   # FSDP2 over 2 ranks
    torchrun --standalone --nproc_per_node=4 examples/torchtitan_fsdp/init_sharded.py   # FSDP2 x TP, 2 x 2
    python examples/torchtitan_fsdp/init_sharded.py                                     # one process, no mesh

The model is built on the meta device, parallelized as torchtitan does, then initialize() materializes
each rank's shards and fills them with recipe=torchtitan_llama3. Rank 0 prints a digest of the gathered
weights; the one-process run prints the same digest, so no seed checkpoint is needed.
"""

from __future__ import annotations

import argparse
import hashlib
import os

import torch
import torch.distributed as dist
from llama import ModelArgs, Transformer, parallelize
from torch.distributed.device_mesh import init_device_mesh
from torch.distributed.tensor import DTensor

from initreg import recipes
from initreg.interop.torch import initialize


def digest(model: torch.nn.Module) -> str:
    """sha256 of every parameter's name and gathered bytes, in name order (a collective under a mesh)."""
    hashed = hashlib.sha256()
    for name, parameter in sorted(model.named_parameters()):
        full = parameter.full_tensor() if isinstance(parameter, DTensor) else parameter
        hashed.update(name.encode() + full.detach().cpu().contiguous().numpy().tobytes())
    return hashed.hexdigest()


def initialized(args: ModelArgs, seed: int, mesh_shape: tuple[int, ...] | None, device: str) -> Transformer:
    """The model built on meta, parallelized on a ("dp",) or ("dp", "tp") mesh if given, and initialized."""
    with torch.device("meta"):
        model = Transformer(args)
    if mesh_shape is not None:
        names = ("dp", "tp")[: len(mesh_shape)]
        parallelize(model, init_device_mesh(device, mesh_shape, mesh_dim_names=names))
    recipe = recipes.load("torchtitan_llama3", n_layers=args.n_layers)
    initialize(model, recipe.rules, seed=seed, device=device)
    return model


def model_args(layers: int, dim: int) -> ModelArgs:
    """A Llama of `layers` blocks of width `dim` (SwiGLU hidden 4 dim, a vocabulary of 1001 tokens)."""
    return ModelArgs(dim=dim, n_layers=layers, hidden_dim=4 * dim, vocab_size=1001)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--layers", type=int, default=4)
    parser.add_argument("--dim", type=int, default=256)
    options = parser.parse_args()
    args = model_args(options.layers, options.dim)
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world == 1:
        print(f"one process, no mesh: digest {digest(initialized(args, options.seed, None, 'cpu'))}")
        return
    cuda = torch.cuda.is_available()
    device = "cuda" if cuda else "cpu"
    if cuda:
        torch.cuda.set_device(int(os.environ["LOCAL_RANK"]))
    dist.init_process_group("nccl" if cuda else "gloo")
    mesh_shape = (world // 2, 2) if world >= 4 and world % 2 == 0 else (world,)
    value = digest(initialized(args, options.seed, mesh_shape, device))
    if dist.get_rank() == 0:
        layout = " x ".join(f"{name} {size}" for name, size in zip(("dp", "tp"), mesh_shape, strict=False))
        print(f"{world} processes, mesh {layout}: digest {value}")
    dist.destroy_process_group()


if __name__ == "__main__":
    main()
