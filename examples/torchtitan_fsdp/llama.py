"""A small Llama laid out as torchtitan's (torchtitan/models/llama3/model.py), and its parallelisms.

Parameter names are torchtitan's: tok_embeddings.weight, layers.{i}.attention.wq.weight (wk, wv, wo),
layers.{i}.attention_norm.weight, layers.{i}.feed_forward.w1.weight (w2, w3), layers.{i}.ffn_norm.weight,
norm.weight, output.weight; the recipe torchtitan_llama3 matches them. Rotary embeddings have no
parameters and are left out, so the model has no buffers and is built on the meta device as it is.

`parallelize` applies torchtitan's tensor-parallel plan (parallelize_llama: colwise wq/wk/wv/w1/w3,
rowwise wo/w2, sequence-parallel norms) on the mesh's "tp" dimension and FSDP2 (fully_shard per block,
then the root) on its "dp" dimension; `pipeline_stage` keeps one stage's modules under their full
names, as torchtitan's pipeline split does.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn
from torch.distributed.device_mesh import DeviceMesh
from torch.distributed.fsdp import fully_shard
from torch.distributed.tensor import Replicate, Shard
from torch.distributed.tensor.parallel import (
    ColwiseParallel,
    PrepareModuleInput,
    RowwiseParallel,
    SequenceParallel,
    parallelize_module,
)
from torch.nn import functional


@dataclass(frozen=True)
class ModelArgs:
    """torchtitan's ModelArgs, the fields a small model needs (hidden_dim as FeedForward computes it)."""

    dim: int = 64
    n_layers: int = 2
    n_heads: int = 4
    n_kv_heads: int = 2
    vocab_size: int = 37  # not a multiple of the mesh sizes: uneven shards
    hidden_dim: int = 88
    norm_eps: float = 1e-5


class Attention(nn.Module):
    """Grouped-query causal self-attention: wq, wk, wv, wo without biases."""

    def __init__(self, args: ModelArgs) -> None:
        super().__init__()
        self.head_dim = args.dim // args.n_heads
        self.wq = nn.Linear(args.dim, args.n_heads * self.head_dim, bias=False)
        self.wk = nn.Linear(args.dim, args.n_kv_heads * self.head_dim, bias=False)
        self.wv = nn.Linear(args.dim, args.n_kv_heads * self.head_dim, bias=False)
        self.wo = nn.Linear(args.n_heads * self.head_dim, args.dim, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        batch, length, _ = x.shape
        q, k, v = (w(x).view(batch, length, -1, self.head_dim).transpose(1, 2) for w in (self.wq, self.wk, self.wv))
        out = functional.scaled_dot_product_attention(q, k, v, is_causal=True, enable_gqa=True)
        return self.wo(out.transpose(1, 2).reshape(batch, length, -1))


class FeedForward(nn.Module):
    """SwiGLU: w2(silu(w1 x) * w3 x)."""

    def __init__(self, args: ModelArgs) -> None:
        super().__init__()
        self.w1 = nn.Linear(args.dim, args.hidden_dim, bias=False)
        self.w2 = nn.Linear(args.hidden_dim, args.dim, bias=False)
        self.w3 = nn.Linear(args.dim, args.hidden_dim, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.w2(functional.silu(self.w1(x)) * self.w3(x))


class TransformerBlock(nn.Module):
    def __init__(self, args: ModelArgs) -> None:
        super().__init__()
        self.attention = Attention(args)
        self.feed_forward = FeedForward(args)
        self.attention_norm = nn.RMSNorm(args.dim, eps=args.norm_eps)
        self.ffn_norm = nn.RMSNorm(args.dim, eps=args.norm_eps)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = x + self.attention(self.attention_norm(x))
        return h + self.feed_forward(self.ffn_norm(h))


class Transformer(nn.Module):
    """tok_embeddings, layers (a ModuleDict keyed "0", "1", ...), norm, output; a pipeline stage may lack some."""

    def __init__(self, args: ModelArgs) -> None:
        super().__init__()
        self.tok_embeddings: nn.Embedding | None = nn.Embedding(args.vocab_size, args.dim)
        self.layers = nn.ModuleDict({str(i): TransformerBlock(args) for i in range(args.n_layers)})
        self.norm: nn.RMSNorm | None = nn.RMSNorm(args.dim, eps=args.norm_eps)
        self.output: nn.Linear | None = nn.Linear(args.dim, args.vocab_size, bias=False)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        h = self.tok_embeddings(tokens) if self.tok_embeddings is not None else tokens
        for layer in self.layers.values():
            h = layer(h)
        h = self.norm(h) if self.norm is not None else h
        return self.output(h) if self.output is not None else h


def apply_tp(model: Transformer, tp_mesh: DeviceMesh) -> None:
    """torchtitan's tensor-parallel plan with sequence parallelism (parallelize_llama's apply_tp)."""
    top = {
        "tok_embeddings": RowwiseParallel(input_layouts=Replicate(), output_layouts=Shard(1)),
        "norm": SequenceParallel(),
        "output": ColwiseParallel(input_layouts=Shard(1), output_layouts=Replicate(), use_local_output=True),
    }
    parallelize_module(model, tp_mesh, {name: style for name, style in top.items() if getattr(model, name) is not None})
    for block in model.layers.values():
        parallelize_module(
            block,
            tp_mesh,
            {
                "attention_norm": SequenceParallel(),
                "attention": PrepareModuleInput(input_layouts=(Shard(1),), desired_input_layouts=(Replicate(),)),
                "attention.wq": ColwiseParallel(),
                "attention.wk": ColwiseParallel(),
                "attention.wv": ColwiseParallel(),
                "attention.wo": RowwiseParallel(output_layouts=Shard(1)),
                "ffn_norm": SequenceParallel(),
                "feed_forward": PrepareModuleInput(input_layouts=(Shard(1),), desired_input_layouts=(Replicate(),)),
                "feed_forward.w1": ColwiseParallel(),
                "feed_forward.w2": RowwiseParallel(output_layouts=Shard(1)),
                "feed_forward.w3": ColwiseParallel(),
            },
        )


def apply_fsdp(model: Transformer, dp_mesh: DeviceMesh) -> None:
    """FSDP2 as torchtitan applies it: fully_shard on every block, then on the whole model."""
    for block in model.layers.values():
        fully_shard(block, mesh=dp_mesh)
    fully_shard(model, mesh=dp_mesh)


def parallelize(model: Transformer, mesh: DeviceMesh) -> Transformer:
    """Tensor parallel on mesh["tp"] and FSDP2 on mesh["dp"], for those of the two dimensions the mesh has."""
    names = mesh.mesh_dim_names or ()
    if "tp" in names:
        apply_tp(model, mesh["tp"])
    if "dp" in names:
        apply_fsdp(model, mesh["dp"])
    return model


def pipeline_stage(model: Transformer, stage: int, stages: int) -> Transformer:
    """Keeps stage `stage` of `stages`: a contiguous share of the layers, the embeddings on the first stage,
    norm and output on the last; the kept modules keep their full names (layers.3 stays layers.3)."""
    names = list(model.layers)
    share = -(-len(names) // stages)
    for name in names[: stage * share] + names[(stage + 1) * share :]:
        del model.layers[name]
    if stage > 0:
        model.tok_embeddings = None
    if stage < stages - 1:
        model.norm = model.output = None
    return model
