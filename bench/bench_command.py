"""The command end to end: ``initreg model=gpt2_xl`` against transformers and JAX writing the same tree.

    .venv/bin/python bench/bench_command.py [--layers 48] [--dir /tmp]

Each row runs in its own process and writes GPT-2 XL (configs/command/model/gpt2_xl.yaml; --layers
blocks, 48 for the real model) to a .safetensors file in a fresh temporary folder under --dir, fsynced,
deleted afterwards:

- initreg: the command, ``initreg model=gpt2_xl model.layers=N output=... progress=false`` (streamed,
  the table's measured std included), its table sent to /dev/null;
- transformers: ``GPT2Model(GPT2Config(n_layer=N, n_embd=1600, n_head=25))`` (its construction
  initializes every weight), then ``safetensors.torch.save_file`` of its state dict;
- JAX: ``jax.nn.initializers.lecun_normal`` (jitted, CPU) for every weight of initreg's plan, zeros and
  ones for the rest, then ``safetensors.numpy.save_file`` (bench/bench_tree.py's JAX row).

The command runs once on GPT-2 XL with one block first, untimed, so that the kernels it uses are in
the cache as after any first run (the default model draws too little to load them). Columns: whole
wall time (interpreter start, imports and the write included), the peak RSS of the process
(``os.wait4``), and each row's wall time over initreg's. A first table times, in this process,
one 64 MiB piece: its draw into fresh memory and into a reused buffer, its statistics by the fused pass
and by np.mean + np.var over blocks of 2^18 elements (as the table computed them before), and the draw
with its statistics in one pass (``fused_cpu.fill_with_moments``, into a reused buffer: what the
command's write does).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench_tree import JAX_PEER, gpt2_xl, peer_rows
from machine import cpu_model

INITREG = """
import sys
from initreg.cli import main
sys.argv = ["initreg", "model=gpt2_xl", f"model.layers={sys.argv[1]}", f"output={sys.argv[2]}", "progress=false"]
main()
"""

WARM_UP = """
import sys
from initreg.cli import main
sys.argv = ["initreg", "model=gpt2_xl", "model.layers=1", f"output={sys.argv[1]}", "progress=false"]
main()
"""

TRANSFORMERS = """
import os, sys
from safetensors.torch import save_file
from transformers import GPT2Config, GPT2Model
layers, out = int(sys.argv[1]), sys.argv[2]
model = GPT2Model(GPT2Config(n_layer=layers, n_embd=1600, n_head=25, n_positions=1024, vocab_size=50257))
save_file({name: tensor.contiguous() for name, tensor in model.state_dict().items()}, out)
with open(out, "rb+") as file:
    os.fsync(file.fileno())
"""


def run(code: str, arguments: list[str]) -> tuple[float, int, str]:
    """(wall s, peak RSS bytes, last line of stderr on failure) of `code` in a new interpreter."""
    with tempfile.TemporaryFile("w+") as stderr:
        start = time.perf_counter()
        process = subprocess.Popen(
            [sys.executable, "-c", code, *arguments], stdout=subprocess.DEVNULL, stderr=stderr, text=True
        )
        _, status, usage = os.wait4(process.pid, 0)
        wall = time.perf_counter() - start
        stderr.seek(0)
        failure = "" if os.waitstatus_to_exitcode(status) == 0 else (stderr.read().strip().splitlines() or ["?"])[-1]
    return wall, usage.ru_maxrss * 1024, failure


def piece_costs(repeats: int = 3) -> dict[str, float]:
    """Seconds per 64 MiB float32 piece: its draw (fresh, reused memory), its statistics (fused pass, np.mean +
    np.var by blocks), and both in one pass."""
    import numpy as np

    from initreg import rng
    from initreg.backends import fused_cpu, fused_moments
    from initreg.distributions import TruncatedNormalDist

    dist, key = TruncatedNormalDist(0.0, 0.025), rng.derive_key(0, "w")
    piece = fused_cpu.draw(dist, key, (1 << 24,), "float32")
    buffer = np.empty_like(piece)
    fused_moments.moments(piece), fused_cpu.fill_with_moments(buffer, dist, key, 0)

    def numpy_moments() -> None:
        for start in range(0, piece.size, 1 << 18):  # the former table code's blocks
            block = piece[start : start + (1 << 18)]
            np.mean(block, dtype=np.float64), np.var(block, dtype=np.float64)

    costs = {
        "draw (fused kernel, fresh memory)": lambda: fused_cpu.draw(dist, key, (1 << 24,), "float32"),
        "draw into a reused buffer": lambda: fused_cpu.draw_into(buffer, dist, key),
        "statistics, one fused pass": lambda: fused_moments.moments(piece),
        "statistics, np.mean + np.var (before)": numpy_moments,
        "draw + statistics in one pass, reused buffer (the command)": lambda: fused_cpu.fill_with_moments(
            buffer, dist, key, 0
        ),
    }
    timed = {}
    for name, work in costs.items():
        times = []
        for _ in range(repeats):
            start = time.perf_counter()
            work()
            times.append(time.perf_counter() - start)
        timed[name] = min(times)
    return timed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--layers", type=int, default=48, help="blocks of GPT-2 XL (48: the real model)")
    parser.add_argument("--dir", default=tempfile.gettempdir(), help="where the files are written (and deleted)")
    args = parser.parse_args()
    spec, rules = gpt2_xl(args.layers)
    elements = sum(math.prod(shape) for shape in spec.values())
    print(f"machine: {cpu_model()}; Python {platform.python_version()}")
    print(f"GPT-2 XL with {args.layers} blocks: {elements:,} float32 parameters in {len(spec)} tensors")
    print()
    with tempfile.TemporaryDirectory(dir=args.dir) as folder:
        rows_file = Path(folder) / "rows.json"
        rows_file.write_text(json.dumps(peer_rows(spec, rules)))
        out = str(Path(folder) / "tree.safetensors")
        run(WARM_UP, [str(Path(folder) / "warm.safetensors")])  # kernels compiled and cached, as after install
        (Path(folder) / "warm.safetensors").unlink()
        runs = {
            "initreg model=gpt2_xl (the command)": run(INITREG, [str(args.layers), out]),
            "transformers GPT2Model() + save_file": run(TRANSFORMERS, [str(args.layers), out]),
            "JAX lecun_normal (jit) + save_file": run(JAX_PEER, [str(rows_file), out, "1e9", "1e9"]),
        }
    print("| one 64 MiB float32 piece | s (best of 3) | vs the draw |")
    print("|---|---:|---:|")
    costs = piece_costs()
    draw = next(iter(costs.values()))
    for name, seconds in costs.items():
        print(f"| {name} | {seconds:.3f} | {seconds / draw:.2f}x |")
    print()
    print("| writer | wall s | peak RSS | vs initreg |")
    print("|---|---:|---:|---:|")
    ours = next(iter(runs.values()))[0]
    for name, (wall, peak, failure) in runs.items():
        if failure:
            print(f"| {name} | failed: {failure} | | |")
        else:
            print(f"| {name} | {wall:.1f} | {peak / 2**20:,.0f} MiB | {wall / ours:.2f}x |")


if __name__ == "__main__":
    main()
