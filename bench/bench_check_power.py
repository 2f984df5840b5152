"""How often `initreg.check` raises a false alarm, and which faults it catches, on GPT-2 small.

    nice .venv/bin/python bench/bench_check_power.py [--part all] [--trees 50] [--replicates 100] [--planted 10]
        [--sizes 10000 100000 1000000]

1. false-alarms: GPT-2 small trees (124M parameters, 148 tensors, 50 of them tested statistically),
   correctly initialized with different seeds, `--trees` by initreg (recipe hf_gpt2, seeds 0, 1, ...) and
   `--trees` by transformers' own `_init_weights` (one GPT2LMHeadModel(GPT2Config()) re-initialized by its
   `init_weights()` after torch.manual_seed(seed), its "already initialized" flags cleared), each checked
   against hf_gpt2 at alpha = 0.01. Holm holds the chance that a correct tree fails at most at alpha.
2. planted: faults in `--planted` initreg hf_gpt2 trees each: h.5.mlp.c_fc.weight left at torch's default
   (nn.Linear's kaiming_uniform(a=sqrt(5)) for its fan-in 768), h.5.attn.c_proj.weight without its depth
   scaling (std 0.02 instead of 0.02 / sqrt(24)), one NaN in wte.weight. A detection counts when the
   report fails that tensor and only it.
3. power: a normal tensor of 10k, 100k or 1M elements whose std is off by a factor 1 + d or 1 - d, and a
   truncated normal (intended: stddev 0.02 truncated at +-2 stddev) drawn truncated at +-3 or +-1.5, each
   `--replicates` times with different seeds. A tensor is detected when its p-value is below alpha / 50:
   the threshold Holm's procedure first applies to a fault among GPT-2 small's 50 tested tensors (other
   problems, bound violations, fail it outright). Printed: the detection rate at each deviation and the
   smallest deviation detected with 95% power.
"""

from __future__ import annotations

import argparse
import math
import time
from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np

import initreg
from initreg import recipes

ALPHA = 0.01
GPT2_TESTED = 50  # GPT-2 small's tensors with statistical tests under hf_gpt2 (the others are exact)
SIZES = (10_000, 100_000, 1_000_000)
DEVIATIONS = (0.002, 0.003, 0.005, 0.01, 0.02, 0.03, 0.05, 0.07, 0.1, 0.15, 0.2)
POWER = 0.95


def gpt2_spec() -> dict[str, tuple[int, ...]]:
    """GPT2LMHeadModel(GPT2Config())'s parameters by name and shape (lm_head is tied to wte)."""
    spec: dict[str, tuple[int, ...]] = {"transformer.wte.weight": (50257, 768), "transformer.wpe.weight": (1024, 768)}
    for i in range(12):
        block = {
            "ln_1.weight": (768,), "ln_1.bias": (768,), "attn.c_attn.weight": (768, 2304), "attn.c_attn.bias": (2304,),
            "attn.c_proj.weight": (768, 768), "attn.c_proj.bias": (768,), "ln_2.weight": (768,), "ln_2.bias": (768,),
            "mlp.c_fc.weight": (768, 3072), "mlp.c_fc.bias": (3072,), "mlp.c_proj.weight": (3072, 768),
            "mlp.c_proj.bias": (768,),
        }  # fmt: skip
        spec.update({f"transformer.h.{i}.{name}": shape for name, shape in block.items()})
    spec.update({"transformer.ln_f.weight": (768,), "transformer.ln_f.bias": (768,)})
    return spec


def transformers_trees(trees: int) -> Iterator[Any]:
    """One GPT2LMHeadModel(GPT2Config()), re-initialized by transformers' init_weights() with seeds 0, 1, ..."""
    import torch
    import transformers

    model = transformers.GPT2LMHeadModel(transformers.GPT2Config())
    for seed in range(trees):
        for item in [*model.modules(), *model.parameters(), *model.buffers()]:
            if getattr(item, "_is_hf_initialized", False):
                item._is_hf_initialized = False  # else init_weights() skips what is already initialized
        torch.manual_seed(seed)
        model.init_weights()
        yield model


def false_alarms(trees: int) -> None:
    spec = gpt2_spec()
    rules = recipes.load("hf_gpt2", spec, initializer_range=0.02).rules  # n_layer = 12: the spec's blocks
    sources = {
        "initreg": (initreg.tree.flatten(initreg.init_tree(spec, rules, seed=seed)) for seed in range(trees)),
        "transformers": transformers_trees(trees),
    }
    for source, made in sources.items():
        failed, named, started = 0, [], time.perf_counter()
        for params in made:
            report = initreg.check(params, "hf_gpt2", alpha=ALPHA)
            assert len(report.tensors) == 148 and sum(t.tested for t in report.tensors) == GPT2_TESTED
            if not report.ok:
                failed += 1
                named += [t.path for t in report.failures]
        seconds = (time.perf_counter() - started) / trees
        print(
            f"false alarms, {source} hf_gpt2 init: {failed} of {trees} trees fail at alpha={ALPHA} "
            f"({failed / trees:.1%}; failing tensors: {named or 'none'}; {seconds:.1f} s per tree)",
            flush=True,
        )


def planted(trees: int) -> None:
    import torch

    spec = gpt2_spec()
    rules = recipes.load("hf_gpt2", spec, initializer_range=0.02).rules  # n_layer = 12: the spec's blocks

    def torch_default(params: dict[str, np.ndarray], seed: int) -> str:
        name = "transformer.h.5.mlp.c_fc.weight"
        weight = torch.empty(3072, 768)
        torch.manual_seed(seed)
        torch.nn.init.kaiming_uniform_(weight, a=math.sqrt(5))
        params[name] = weight.numpy().T.copy()  # Conv1D's [in, out]
        return name

    def no_depth_scaling(params: dict[str, np.ndarray], seed: int) -> str:
        name = "transformer.h.5.attn.c_proj.weight"
        params[name] = np.random.default_rng(seed).normal(0, 0.02, (768, 768)).astype(np.float32)
        return name

    def one_nan(params: dict[str, np.ndarray], seed: int) -> str:
        name = "transformer.wte.weight"
        params[name][seed, seed] = np.nan
        return name

    for fault in (torch_default, no_depth_scaling, one_nan):
        caught = 0
        for seed in range(trees):
            params = initreg.tree.flatten(initreg.init_tree(spec, rules, seed=1000 + seed))
            name = fault(params, seed)  # type: ignore[arg-type]
            caught += [t.path for t in initreg.check(params, "hf_gpt2", alpha=ALPHA).failures] == [name]
        print(
            f"planted in GPT-2 small, {fault.__name__}: caught (that tensor alone) in {caught} of {trees}", flush=True
        )


def detected(values: np.ndarray, rules: dict[str, object]) -> bool:
    report = initreg.check({"w": values}, rules, alpha=ALPHA / GPT2_TESTED)
    return not report.ok


def power(replicates: int, sizes: Sequence[int]) -> None:
    normal = {"w": {"match": "*", "init": {"name": "random_normal", "stddev": 0.02}}}
    for size in sizes:
        shape = (size // 1000, 1000)
        rates = {}
        for sign in (1, -1):
            for deviation in DEVIATIONS:
                factor = 1 + sign * deviation
                drawn = {"w": {"match": "*", "init": {"name": "random_normal", "stddev": 0.02 * factor}}}
                hits = sum(
                    detected(initreg.init_tree({"w": shape}, drawn, seed=seed)["w"], normal)
                    for seed in range(replicates)
                )
                rates[sign * deviation] = hits / replicates
        line = ", ".join(f"{d:+.1%}: {rate:.0%}" for d, rate in sorted(rates.items()))
        smallest = {
            sign: next((d for d in DEVIATIONS if rates[sign * d] >= POWER), None) for sign in (1, -1)
        }  # fmt: skip
        shown = {sign: "none tried" if d is None else f"{d:.1%}" for sign, d in smallest.items()}
        print(f"std off, {size:,} elements: {line}", flush=True)
        print(
            f"  smallest deviation detected with {POWER:.0%} power: std too large by {shown[1]}, too small by "
            f"{shown[-1]}",
            flush=True,
        )
    truncated = {"w": {"match": "*", "init": {"name": "truncated_normal", "stddev": 0.02}}}
    for size in sizes:
        shape = (size // 1000, 1000)
        found = []
        for cutoff in (3.0, 1.5):
            rng = np.random.default_rng(size)
            hits = 0
            for _ in range(replicates):
                draws = rng.normal(size=3 * size)
                kept = draws[np.abs(draws) <= cutoff][:size]
                hits += detected((kept * 0.02).astype(np.float32).reshape(shape), truncated)
            found.append(f"cut at +-{cutoff} stddev: {hits / replicates:.0%}")
        print(f"truncated normal with wrong bounds (intended +-2), {size:,} elements: {', '.join(found)}", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trees", type=int, default=50, help="correct trees per initialization (two kinds)")
    parser.add_argument("--replicates", type=int, default=100, help="tensors per size and deviation")
    parser.add_argument("--planted", type=int, default=10, help="trees per planted fault")
    parser.add_argument("--sizes", type=int, nargs="+", default=list(SIZES), help="tensor sizes for the power part")
    parser.add_argument("--part", choices=("all", "power", "planted", "false-alarms"), default="all")
    arguments = parser.parse_args()
    started = time.perf_counter()
    if arguments.part in ("all", "false-alarms"):
        false_alarms(arguments.trees)
    if arguments.part in ("all", "planted"):
        planted(arguments.planted)
    if arguments.part in ("all", "power"):
        power(arguments.replicates, arguments.sizes)
    print(f"total {time.perf_counter() - started:.0f} s", flush=True)


if __name__ == "__main__":
    main()
