"""Sharded initialization of a torchtitan-style Llama on CPU processes: initreg against a seed checkpoint
and against torch's own init of the DTensor model.

    .venv/bin/python bench/bench_distributed.py [--worlds 2 4] [--dim 1024] [--layers 8] [--vocab 32000]
                                                [--dir /tmp]

The model is examples/torchtitan_fsdp/llama.py's (SwiGLU hidden 4 dim, 4 heads per 256 of width, half
as many kv heads), float32, FSDP2 over a 1-D mesh of each world size (gloo, one process per rank,
launched with torchrun). Rows:

- initreg: built on meta, fully_shard, then ``initialize(model, torchtitan_llama3)``, which
  materializes each rank's shards and draws only them;
- torch init: built on meta, fully_shard, ``to_empty``, then torch.nn.init on the DTensor parameters
  as torchtitan's init_weights does (trunc_normal_/normal_/ones_ at the recipe's stds);
- seed checkpoint: what torchtitan's docs prescribe for consistent initialization: one process builds
  the whole model (on meta, materialized by initialize), initializes it with initreg (so the weights are
  those of the initreg row) and saves it
  with torch.distributed.checkpoint ("save" row); then every rank builds on meta, fully_shard,
  ``to_empty`` and loads its shards from it ("load" row; "total" is the sum).

Columns: the wall time of the slowest rank from before the model is built to the end (process start
and imports not included; "process s" includes them), and the peak RSS (ru_maxrss) of the largest rank,
with the RSS after imports for scale. Each row is checked: the digest of the gathered weights of the
initreg and seed-checkpoint rows must be equal.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from machine import cpu_model

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "torchtitan_fsdp"
SEED = 0


def rss_mib() -> float:
    """This process's peak resident set size so far, in MiB (ru_maxrss is in KiB on Linux)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def model_args(options: argparse.Namespace) -> Any:
    from llama import ModelArgs

    heads = max(1, options.dim // 64)
    return ModelArgs(
        dim=options.dim, n_layers=options.layers, n_heads=heads, n_kv_heads=max(1, heads // 2),
        vocab_size=options.vocab, hidden_dim=4 * options.dim,
    )  # fmt: skip


def torch_init(model: Any) -> None:
    """torchtitan's init_weights on the (DTensor) parameters, at the stds of the torchtitan_llama3 recipe."""
    import torch

    with torch.no_grad():
        torch.nn.init.normal_(model.tok_embeddings.weight)
        for layer_id, block in model.layers.items():
            depth_std = 0.02 / (2 * (int(layer_id) + 1)) ** 0.5
            for name, linear in [*block.attention.named_children(), *block.feed_forward.named_children()]:
                std = depth_std if name in ("wo", "w2", "w3") else 0.02
                torch.nn.init.trunc_normal_(linear.weight, std=std, a=-2.0, b=2.0)
            torch.nn.init.ones_(block.attention_norm.weight)
            torch.nn.init.ones_(block.ffn_norm.weight)
        torch.nn.init.ones_(model.norm.weight)
        final_std = model.output.weight.shape[1] ** -0.5
        torch.nn.init.trunc_normal_(model.output.weight, std=final_std, a=-3 * final_std, b=3 * final_std)


def rank_main(options: argparse.Namespace) -> None:
    """One rank of a row (under torchrun), or the one process of the seed checkpoint's save."""
    import init_sharded
    import torch
    import torch.distributed as dist
    import torch.distributed.checkpoint as dcp
    from llama import Transformer, apply_fsdp
    from torch.distributed.device_mesh import init_device_mesh

    from initreg import recipes
    from initreg.interop.torch import initialize

    args, imported = model_args(options), rss_mib()
    if options.method == "save":
        started = time.perf_counter()
        with torch.device("meta"):
            model = Transformer(args)
        initialize(model, recipes.load("torchtitan_llama3", n_layers=args.n_layers).rules, seed=SEED)
        dcp.save(model.state_dict(), checkpoint_id=options.checkpoint, no_dist=True)
        elapsed, peak, digest = time.perf_counter() - started, rss_mib(), ""
    else:
        dist.init_process_group("gloo")
        started = time.perf_counter()
        if options.method == "initreg":
            model = init_sharded.initialized(args, SEED, (dist.get_world_size(),), "cpu")
        else:
            with torch.device("meta"):
                model = Transformer(args)
            apply_fsdp(model, init_device_mesh("cpu", (dist.get_world_size(),)))
            model.to_empty(device="cpu")
            if options.method == "torch":
                torch_init(model)
            else:
                dcp.load(model.state_dict(), checkpoint_id=options.checkpoint)
        elapsed, peak = time.perf_counter() - started, rss_mib()
        digest = init_sharded.digest(model)  # after the measurements: gathering makes whole tensors
        dist.destroy_process_group()
    print(json.dumps({"seconds": elapsed, "peak_mib": peak, "imported_mib": imported, "digest": digest}))


def run_row(options: argparse.Namespace, method: str, world: int, checkpoint: Path) -> dict[str, Any]:
    """Runs one row in fresh processes; the slowest rank's time, the largest peak RSS, and rank 0's digest."""
    own = [__file__, "--method", method, "--checkpoint", str(checkpoint), "--dim", str(options.dim),
           "--layers", str(options.layers), "--vocab", str(options.vocab)]  # fmt: skip
    launcher = [] if method == "save" else ["-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={world}"]
    environment = {**os.environ, "PYTHONPATH": os.pathsep.join([str(EXAMPLE), str(Path(__file__).parent)])}
    started = time.perf_counter()
    finished = subprocess.run(
        [sys.executable, *launcher, *own], capture_output=True, text=True, env=environment, check=False
    )
    process_seconds = time.perf_counter() - started
    if finished.returncode != 0:
        raise SystemExit(f"{method} on {world} failed:\n{finished.stderr[-4000:]}")
    ranks = [json.loads(line) for line in finished.stdout.splitlines() if line.startswith("{")]
    return {
        "seconds": max(rank["seconds"] for rank in ranks),
        "process_seconds": process_seconds,
        "peak_mib": max(rank["peak_mib"] for rank in ranks),
        "imported_mib": max(rank["imported_mib"] for rank in ranks),
        "digest": next(rank["digest"] for rank in ranks if rank["digest"] or method == "save"),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--worlds", type=int, nargs="+", default=[2, 4])
    parser.add_argument("--dim", type=int, default=1024)
    parser.add_argument("--layers", type=int, default=8)
    parser.add_argument("--vocab", type=int, default=32000)
    parser.add_argument("--dir", default=tempfile.gettempdir(), help="where the seed checkpoint is written")
    parser.add_argument("--method", choices=["initreg", "torch", "save", "load"], help=argparse.SUPPRESS)
    parser.add_argument("--checkpoint", help=argparse.SUPPRESS)
    options = parser.parse_args()
    if options.method:
        rank_main(options)
        return
    sys.path.insert(0, str(EXAMPLE))
    args = model_args(options)
    d, h, v, kv = args.dim, args.hidden_dim, args.vocab_size, args.n_kv_heads * (args.dim // args.n_heads)
    parameters = 2 * v * d + d + args.n_layers * (2 * d * d + 2 * d * kv + 3 * d * h + 2 * d)
    print(f"machine: {cpu_model()}; mesh: FSDP2 1-D over N CPU processes (gloo), float32")
    print(f"model: Llama dim {d}, {args.n_layers} layers, hidden {h}, vocab {v}: {parameters:,} parameters "
          f"({parameters * 4 / 2**30:.2f} GiB)")  # fmt: skip
    print(f"{'world':>5} {'row':<22} {'wall s':>8} {'process s':>10} {'peak RSS MiB':>13} {'after imports':>14}")
    folder = Path(tempfile.mkdtemp(dir=options.dir, prefix="seed-checkpoint-"))
    try:
        saved = run_row(options, "save", 1, folder)
        for world in options.worlds:
            rows = {method: run_row(options, method, world, folder) for method in ("initreg", "torch", "load")}
            total = saved["seconds"] + rows["load"]["seconds"]
            for name, row in [("initreg", rows["initreg"]), ("torch init", rows["torch"]),
                              ("seed checkpoint: save", saved), ("seed checkpoint: load", rows["load"])]:  # fmt: skip
                print(f"{world:>5} {name:<22} {row['seconds']:>8.2f} {row['process_seconds']:>10.2f} "
                      f"{row['peak_mib']:>13,.0f} {row['imported_mib']:>14,.0f}")  # fmt: skip
            print(f"{world:>5} {'seed checkpoint: total':<22} {total:>8.2f}")
            if rows["initreg"]["digest"] != rows["load"]["digest"]:
                raise SystemExit(f"world {world}: the initreg weights differ from the seed checkpoint's")
        print("the initreg rows' gathered weights equal the seed checkpoint's (sha256 digests)")
    finally:
        shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    main()
