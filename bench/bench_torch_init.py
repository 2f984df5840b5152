"""interop.torch.initialize against a plain torch.nn.init loop and the model's own construction.

    .venv/bin/python bench/bench_torch_init.py [--models gpt2_small,llama_0.7b] [--repeats 3]

For each model (transformers' GPT2Model at GPT-2 small's config, 124M parameters; LlamaForCausalLM at
hidden 1536, 20 layers, intermediate 4096, vocabulary 32,000, untied: 0.68B), all float32 on the CPU:

- initreg: the model built on the meta device, ``to_empty``, then ``initialize(model, RULES)`` (draws
  every parameter: weights N(0, 0.02), biases zeros, norm scales ones);
- initreg through a copy: the same, with every parameter drawn into a NumPy array and copied into it
  with ``copy_``, as initialize did before it drew in place;
- torch loop: the model built on the meta device, ``to_empty``, then ``normal_(0, 0.02)``, ``zeros_``
  or ``ones_`` per parameter, by the same rules;
- construction: the model built on the CPU, which runs its own ``_init_weights``.

Each is the best of --repeats in this process, after one call of each that loads initreg's kernels;
the first call's extra cost in a fresh process is printed above the table, then, from another fresh
process, where it goes: numba's import, initreg's fused kernels module, the first draw (a kernel loaded
from numba's cache), a first initialize of a tiny GPT-2 (torch's and initreg's first calls), then
gpt2_small's initialize, to be read against the warm figure.
"""

from __future__ import annotations

import argparse
import json
import platform
import subprocess
import sys
import time
from collections.abc import Callable
from typing import Any

import torch
from machine import cpu_model
from transformers import GPT2Config, GPT2Model, LlamaConfig, LlamaForCausalLM

from initreg.interop import torch as torch_interop
from initreg.interop.torch import initialize

RULES = {
    "weights": {"match": "*", "init": {"name": "random_normal", "stddev": 0.02}},
    "biases": {"match": "*bias", "init": "zeros"},
    "layer_norms": {"match": "*ln_*.weight", "init": "ones"},  # GPT-2's names
    "rms_norms": {"match": "*norm.weight", "init": "ones"},  # Llama's
}

MODELS: dict[str, Callable[[], torch.nn.Module]] = {
    "gpt2_small": lambda: GPT2Model(GPT2Config()),
    "gpt2_tiny": lambda: GPT2Model(GPT2Config(n_layer=2, n_embd=64, n_head=2, vocab_size=1000, n_positions=128)),
    "llama_0.7b": lambda: LlamaForCausalLM(
        LlamaConfig(
            hidden_size=1536,
            num_hidden_layers=20,
            intermediate_size=4096,
            num_attention_heads=12,
            num_key_value_heads=12,
            vocab_size=32000,
            tie_word_embeddings=False,
        )
    ),
}

FIRST_CALL = """
import sys, time
sys.path.insert(0, sys.argv[1])
import bench_torch_init as bench
model = bench.on_meta("gpt2_small")
start = time.perf_counter()
bench.fill(model)
print(f"{time.perf_counter() - start:.3f}")
"""

# The same first call taken apart, in a fresh process: each stage's seconds, in order.
FIRST_CALL_STAGES = """
import json, sys, time
stages, start = {}, time.perf_counter()

def stage(name):
    global start
    stages[name] = time.perf_counter() - start
    start = time.perf_counter()

sys.path.insert(0, sys.argv[1])
import bench_torch_init as bench
import numpy as np
stage("imports (initreg.interop.torch, torch, transformers)")
import numba
stage("numba import")
from initreg.backends.numpy import fused_kernels
from initreg.distributions import NormalDist
kernels = fused_kernels()
stage("initreg's fused kernels module")
kernels.draw_into(np.empty(8, np.float32), NormalDist(0.0, 0.02), (1, 2))
stage("the first normal draw (its kernel loaded from numba's cache)")
bench.fill(bench.on_meta("gpt2_tiny"))
stage("a first initialize of a 2-layer GPT-2 of width 64 (torch's and initreg's first calls)")
model = bench.on_meta("gpt2_small")
stage("gpt2_small built on meta")
bench.fill(model)
stage("gpt2_small initialize")
print(json.dumps(stages))
"""


def on_meta(name: str) -> torch.nn.Module:
    with torch.device("meta"):
        return MODELS[name]()


def torch_loop(model: torch.nn.Module, device: str = "cpu") -> None:
    """to_empty on `device`, then torch.nn.init by RULES' names."""
    model.to_empty(device=device)
    with torch.no_grad():
        for name, parameter in model.named_parameters():
            if name.endswith("bias"):
                torch.nn.init.zeros_(parameter)
            elif ".ln_" in name or name.startswith("ln_") or name.endswith("norm.weight"):
                torch.nn.init.ones_(parameter)
            else:
                torch.nn.init.normal_(parameter, 0.0, 0.02)


def fill(model: torch.nn.Module, device: str = "cpu", backend: Any = None) -> None:
    """to_empty on `device`, then initialize(model, RULES) (each model leaves one of the norm rules unused).

    to_empty first, as in the torch loop: initialize refuses a meta model with buffers (Llama's rotary
    frequencies), which a real run would set after to_empty.
    """
    model.to_empty(device=device)
    initialize(model, RULES, allow_unused_rules=True, backend=backend)


def fill_through_a_copy(model: torch.nn.Module) -> None:
    """`fill` with every parameter drawn into an array and copied (the path before in-place drawing)."""
    drawn_in_place = torch_interop._drawn_in_place
    torch_interop._drawn_in_place = lambda *arguments: False
    try:
        fill(model)
    finally:
        torch_interop._drawn_in_place = drawn_in_place


def best(setup: Callable[[], torch.nn.Module], work: Callable[[torch.nn.Module], object], repeats: int) -> float:
    """The least time of `work(setup())` over `repeats` runs, setup not timed."""
    times = []
    for _ in range(repeats):
        model = setup()
        start = time.perf_counter()
        work(model)
        times.append(time.perf_counter() - start)
        del model
    return min(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--models", default="gpt2_small,llama_0.7b", help=f"of {', '.join(MODELS)}")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    print(f"machine: {cpu_model()}; Python {platform.python_version()}, torch {torch.__version__}")
    first = subprocess.run(
        [sys.executable, "-c", FIRST_CALL, sys.path[0]], capture_output=True, text=True, check=True
    ).stdout.strip()
    stages = json.loads(
        subprocess.run(
            [sys.executable, "-c", FIRST_CALL_STAGES, sys.path[0]], capture_output=True, text=True, check=True
        ).stdout
    )
    fill(on_meta("gpt2_small"))  # kernels loaded
    warm = best(lambda: on_meta("gpt2_small"), fill, 1)
    print(f"first initialize in a fresh process (gpt2_small): {first} s; warm: {warm:.3f} s")
    print("the first call taken apart (another fresh process; each stage after the ones above it):")
    for name, seconds in stages.items():
        print(f"  {seconds:7.3f} s  {name}")
    print()
    print("| model | parameters | initreg s | through a copy s | torch loop s | construction s | loop / initreg "
          "| built / initreg |")  # fmt: skip
    print("|---|---:|---:|---:|---:|---:|---:|---:|")
    for name in args.models.split(","):
        count = sum(p.numel() for p in on_meta(name).parameters())
        ours = best(lambda n=name: on_meta(n), fill, args.repeats)
        copied = best(lambda n=name: on_meta(n), fill_through_a_copy, args.repeats)
        loop = best(lambda n=name: on_meta(n), torch_loop, args.repeats)
        built = best(lambda: torch.nn.Module(), lambda _, n=name: MODELS[n](), args.repeats)
        print(f"| {name} | {count / 1e6:,.0f}M | {ours:.2f} | {copied:.2f} | {loop:.2f} | {built:.2f} | "
              f"{loop / ours:.2f}x | {built / ours:.2f}x |")  # fmt: skip


if __name__ == "__main__":
    main()
