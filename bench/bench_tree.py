"""Whole parameter trees: a GPT-2-XL-shaped tree written to .safetensors, and the cost per parameter.

    .venv/bin/python bench/bench_tree.py [--dir /tmp] [--chunk-mb 64] [--layers 48] [--peer-budget 240]
                                         [--no-in-memory] [--no-peers] [--no-overhead]

Section 1, the GPT-2-XL tree (configs/command/model/gpt2_xl.yaml: 48 blocks, d_model 1600, 1,557,611,200
float32 parameters, 6.2 GB): kernels and embeddings lecun_normal, biases zeros, LayerNorm scales
ones. Every row runs in its own process and writes the whole tree to one .safetensors file in a
fresh temporary folder under --dir, which is deleted afterwards:

- initreg streamed: ``initreg.tree.save_tree`` (draws and writes rows of at most --chunk-mb MiB);
- initreg in memory: ``init_tree``, then ``io.save`` (when the machine has the memory);
- peers on the same tree, each drawing every parameter and then saving it with the safetensors
  package: torch (``nn.init.trunc_normal_`` at lecun_normal's std, ``safetensors.torch.save_file``),
  JAX (``jax.nn.initializers.lecun_normal``, jitted, ``safetensors.numpy.save_file``) and Keras 3 on
  its NumPy backend (``LecunNormal``, ``safetensors.numpy.save_file``). A peer first times its draw
  on a 4M-element tensor and is skipped, saying so, when its projected time exceeds --peer-budget
  seconds or its memory (the tree plus the copy save_file makes) exceeds what is available.

Columns: the child's whole wall time (imports included); "tree s", the time from the start of the
work to the file being on disk (initreg fsyncs; the peers' files are fsynced after save_file), and the
part of it spent drawing where a writer draws everything before saving; Melem/s
and MB/s over "tree s"; the child's peak RSS (``os.wait4``'s ``ru_maxrss``); "vs streamed", tree s
over the streamed row's. The two initreg files are compared by SHA-256, read in chunks.

Section 2, per-parameter overhead: a tree of 10,000 small parameters (2,500 blocks of a 32x32
kernel, a bias, a norm scale and a norm bias), with ``init_tree`` in a fresh process (whole process
wall time, imports and kernel cache loading included) and inside one after a warm-up call (best of
5), plus ``plan`` alone and ``save_tree`` to a file.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from importlib.resources import files
from pathlib import Path
from typing import Any

from machine import cpu_model

BYTES_PER_ELEMENT = 4  # float32
IN_MEMORY = "initreg in memory"

# The tree as [path, shape, kind, fan_in] rows (kind: lecun_normal, zeros, ones), from the plan.
INITREG_STREAMED = """
import json, sys, time
from initreg import tree
spec, rules = json.load(open(sys.argv[1])), json.load(open(sys.argv[2]))
out, chunk_bytes = sys.argv[3], int(sys.argv[4])
work = time.perf_counter()
tree.save_tree(spec, rules, out, seed=0, chunk_bytes=chunk_bytes, quiet=True)
print(json.dumps({"tree_s": time.perf_counter() - work}))
"""

INITREG_IN_MEMORY = """
import json, sys, time
from initreg import init_tree, io, tree
spec, rules, out = json.load(open(sys.argv[1])), json.load(open(sys.argv[2])), sys.argv[3]
work = time.perf_counter()
arrays = tree.flatten(init_tree(spec, rules, seed=0))
drawn = time.perf_counter()
io.save(arrays, out)
print(json.dumps({"tree_s": time.perf_counter() - work, "draw_s": drawn - work}))
"""

# Shared by the peers: read the rows, time the probe, project, then draw every parameter and save.
PEER_PROLOGUE = """
import json, math, os, sys, time
rows, out, budget, write_rate = json.load(open(sys.argv[1])), sys.argv[2], float(sys.argv[3]), float(sys.argv[4])
TRUNCATED_STD = 0.87962566103423978  # std of a standard normal truncated to [-2, 2]

def lecun_std(fan_in):
    return math.sqrt(1.0 / fan_in) / TRUNCATED_STD

def on_disk(path):  # fsync, as initreg does before its rename: every row's time ends with the file on disk
    with open(path, "rb+") as file:
        os.fsync(file.fileno())

def project(draw):
    draw((2048, 2048), 2048)
    start = time.perf_counter()
    draw((2048, 2048), 2048)
    rate = 2048 * 2048 / (time.perf_counter() - start)
    random = sum(math.prod(shape) for _, shape, kind, _ in rows if kind == "lecun_normal")
    total = sum(math.prod(shape) for _, shape, _, _ in rows)
    projected = random / rate + 4 * total / write_rate
    if projected > budget:
        print(json.dumps({"skipped": f"skipped: projected {projected:.0f} s (draws at {rate / 1e6:.1f} Melem/s) "
                                     f"> --peer-budget {budget:.0f} s"}))
        sys.exit(0)

def time_tree(make, save):  # make(index, shape, kind, fan_in) per row, then save(tensors, out); prints the times
    work = time.perf_counter()
    tensors = {path: make(index, shape, kind, fan_in) for index, (path, shape, kind, fan_in) in enumerate(rows)}
    drawn = time.perf_counter()
    save(tensors, out)
    on_disk(out)
    print(json.dumps({"tree_s": time.perf_counter() - work, "draw_s": drawn - work}))
"""

TORCH_PEER = (
    PEER_PROLOGUE
    + """
import torch
from safetensors.torch import save_file

def draw(shape, fan_in):
    std = lecun_std(fan_in)
    return torch.nn.init.trunc_normal_(torch.empty(shape), std=std, a=-2 * std, b=2 * std)

def make(index, shape, kind, fan_in):
    return draw(shape, fan_in) if kind == "lecun_normal" else getattr(torch, kind)(shape)

project(draw)
time_tree(make, save_file)
"""
)

JAX_PEER = (
    PEER_PROLOGUE
    + """
os.environ.setdefault("JAX_PLATFORMS", "cpu")
import jax, jax.numpy as jnp, numpy as np
from safetensors.numpy import save_file

lecun = jax.jit(jax.nn.initializers.lecun_normal(), static_argnums=(1, 2))
key = jax.random.key(0)

def draw(shape, fan_in, index=0):
    return np.asarray(lecun(jax.random.fold_in(key, index), tuple(shape), jnp.float32))

def make(index, shape, kind, fan_in):
    return draw(shape, fan_in, index) if kind == "lecun_normal" else getattr(np, kind)(shape, np.float32)

project(draw)
time_tree(make, save_file)
"""
)

KERAS_PEER = (
    PEER_PROLOGUE
    + """
os.environ["KERAS_BACKEND"] = "numpy"
import keras, numpy as np
from safetensors.numpy import save_file

lecun = keras.initializers.LecunNormal(seed=0)

def draw(shape, fan_in):
    return np.asarray(lecun(tuple(shape), dtype="float32"))

def make(index, shape, kind, fan_in):
    return draw(shape, fan_in) if kind == "lecun_normal" else getattr(np, kind)(shape, np.float32)

project(draw)
time_tree(make, save_file)
"""
)

PEERS = {
    "JAX lecun_normal (jit, CPU) + safetensors.numpy": JAX_PEER,
    "Keras 3 LecunNormal (numpy) + safetensors.numpy": KERAS_PEER,
    "torch trunc_normal_ + safetensors.torch": TORCH_PEER,
}

SMALL_TREE = """
import json, sys, time
start = time.perf_counter()
import initreg
from initreg import tree
spec = {f"block{i}": {"dense": {"kernel": (32, 32), "bias": (32,)}, "norm": {"scale": (32,), "bias": (32,)}}
        for i in range(2500)}
rules = {
    "kernels": {"match": "*.kernel", "init": "lecun_normal"},
    "biases": {"match": "*.bias", "init": "zeros"},
    "scales": {"match": "*.scale", "init": "ones"},
}
imported = time.perf_counter()
initreg.init_tree(spec, rules, seed=0)
first = time.perf_counter()
if sys.argv[1] == "fresh":
    print(json.dumps({"import_s": imported - start, "first_s": first - imported}))
    sys.exit(0)

def best(call):
    times = []
    for _ in range(5):
        began = time.perf_counter()
        call()
        times.append(time.perf_counter() - began)
    return min(times)
print(json.dumps({
    "warm_s": best(lambda: initreg.init_tree(spec, rules, seed=0)),
    "plan_s": best(lambda: initreg.plan(spec, rules)),
    "save_s": best(lambda: tree.save_tree(spec, rules, sys.argv[2], seed=0, quiet=True)),
    "parameters": len(tree.flatten(spec)),
}))
"""


@dataclass
class Run:
    name: str
    wall_s: float = math.nan
    tree_s: float = math.nan
    draw_s: float = math.nan  # the drawing part of tree_s, where the writer draws everything first
    peak_rss: int = 0  # bytes
    digest: str = ""
    note: str = ""


def run_child(name: str, code: str, arguments: list[str], output: Path | None) -> Run:
    """Runs `code` in a new interpreter; wall time and peak RSS from os.wait4, results from its JSON line."""
    with tempfile.TemporaryFile("w+") as stdout, tempfile.TemporaryFile("w+") as stderr:
        start = time.perf_counter()
        process = subprocess.Popen([sys.executable, "-c", code, *arguments], stdout=stdout, stderr=stderr, text=True)
        _, status, usage = os.wait4(process.pid, 0)  # this child's own rusage, unlike RUSAGE_CHILDREN
        wall = time.perf_counter() - start
        process.returncode = code_of_exit = os.waitstatus_to_exitcode(status)
        stdout.seek(0)
        stderr.seek(0)
        lines, errors = stdout.read().strip().splitlines(), stderr.read().strip().splitlines()
    run = Run(name, wall_s=wall, peak_rss=usage.ru_maxrss * 1024)
    if code_of_exit != 0 or not lines:
        run.note = f"failed (exit {code_of_exit}): {(errors or ['(no output)'])[-1]}"
    else:
        result = json.loads(lines[-1])
        run.tree_s = result.get("tree_s", math.nan)
        run.draw_s = result.get("draw_s", math.nan)
        run.note = result.get("skipped", "")
    if output is not None and output.exists():
        if not run.note:
            run.digest = sha256(output)
        output.unlink()
    return run


def sha256(path: Path) -> str:
    """SHA-256 of a file, read in chunks (hashlib.file_digest), never whole."""
    with path.open("rb") as file:
        return hashlib.file_digest(file, "sha256").hexdigest()


def gpt2_xl(layers: int) -> tuple[dict[str, Any], dict[str, Any]]:
    """The spec (flat: dotted path -> shape) and rules of configs/command/model/gpt2_xl.yaml, with `layers` blocks."""
    from omegaconf import OmegaConf

    from initreg import tree
    from initreg.model_specs import model_spec

    config = OmegaConf.load(str(files("initreg.configs.command") / "model" / "gpt2_xl.yaml"))
    config.model.layers = layers
    model = OmegaConf.to_container(config.model, resolve=True)
    assert isinstance(model, dict)
    spec, _ = model_spec({str(k): v for k, v in model.items()})
    rules = {
        "weights": {"match": "*", "init": "lecun_normal"},
        "biases": {"match": "*.bias", "init": "zeros"},
        **OmegaConf.to_container(config.rules),  # type: ignore[dict-item]
    }
    return {path: list(shape) for path, shape in tree.flatten(spec).items()}, rules


def peer_rows(spec: dict[str, Any], rules: dict[str, Any]) -> list[list[Any]]:
    """[path, shape, kind, fan_in] per parameter, from initreg's plan of the tree."""
    from initreg import tree

    kinds = {"LecunNormal": "lecun_normal", "Zeros": "zeros", "Ones": "ones"}
    return [
        [entry.path, list(entry.shape), kinds[type(entry.initializer).__name__], entry.fan_in]
        for entry in tree.plan(spec, rules)
    ]


def available_memory() -> int:
    """MemAvailable from /proc/meminfo in bytes (0 where unknown)."""
    try:
        with open("/proc/meminfo") as meminfo:
            for line in meminfo:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


def gb(count: float) -> str:
    return f"{count / 1e9:.2f} GB"


def tree_section(arguments: argparse.Namespace) -> None:
    spec, rules = gpt2_xl(arguments.layers)
    elements = sum(math.prod(shape) for shape in spec.values())
    size = elements * BYTES_PER_ELEMENT
    free = shutil.disk_usage(arguments.dir).free
    print(f"GPT-2-XL-shaped tree: {elements:,} float32 parameters in {len(spec)} tensors, {gb(size)}")
    print(f"{arguments.dir}: {gb(free)} free on disk, {gb(available_memory())} of memory available")
    if free < size * 1.1:
        print(f"skipped: {arguments.dir} has {gb(free)} free, the tree needs {gb(size)}")
        return
    runs = []
    with tempfile.TemporaryDirectory(dir=arguments.dir, prefix="bench_tree.") as folder:
        work = Path(folder)
        (work / "spec.json").write_text(json.dumps(spec))
        (work / "rules.json").write_text(json.dumps(rules))
        (work / "rows.json").write_text(json.dumps(peer_rows(spec, rules)))
        out = work / "tree.safetensors"
        inputs = [str(work / "spec.json"), str(work / "rules.json"), str(out)]
        chunk_bytes = int(arguments.chunk_mb * 2**20)
        streamed = run_child(f"initreg streamed ({arguments.chunk_mb:g} MiB chunks)", INITREG_STREAMED,
                             [*inputs, str(chunk_bytes)], out)  # fmt: skip
        runs.append(streamed)
        if arguments.no_in_memory:
            pass
        elif available_memory() < size * 1.5:
            runs.append(Run(IN_MEMORY, note=f"skipped: needs about {gb(size * 1.5)} of memory"))
        else:
            runs.append(run_child(f"{IN_MEMORY} (init_tree, io.save)", INITREG_IN_MEMORY, inputs, out))
        write_rate = size / streamed.tree_s if streamed.tree_s > 0 else 200e6
        for name, code in {} if arguments.no_peers else PEERS.items():
            needed = 2 * size + 2**31  # the drawn tree, the bytes save_file builds from it, a largest-tensor draw
            if available_memory() < needed:
                runs.append(Run(name, note=f"skipped: needs about {gb(needed)} of memory"))
                continue
            peer_inputs = [str(work / "rows.json"), str(out), str(arguments.peer_budget), str(write_rate)]
            runs.append(run_child(name, code, peer_inputs, out))
    print_runs(runs, elements, size)


def print_runs(runs: list[Run], elements: int, size: int) -> None:
    reference = runs[0].tree_s
    print()
    print("| writer | wall s | tree s | of which drawing | Melem/s | MB/s | peak RSS | vs streamed |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|")
    for run in runs:
        if math.isnan(run.tree_s):
            print(f"| {run.name} | {run.note} | | | | | | |")
            continue
        drawing = "interleaved" if math.isnan(run.draw_s) else f"{run.draw_s:.1f}"
        print(
            f"| {run.name} | {run.wall_s:.1f} | {run.tree_s:.1f} | {drawing} | {elements / run.tree_s / 1e6:,.0f} "
            f"| {size / run.tree_s / 1e6:,.0f} | {run.peak_rss / 2**20:,.0f} MiB | {run.tree_s / reference:.2f}x |"
        )
    streamed, in_memory = runs[0].digest, next((run.digest for run in runs if run.name.startswith(IN_MEMORY)), "")
    if streamed and in_memory:
        same = "yes" if streamed == in_memory else "NO"
        print(f"\nstreamed and in-memory files byte-identical: {same} (SHA-256 {streamed} and {in_memory})")


def overhead_section(folder: str, repeats: int = 3) -> None:
    """The small tree: `repeats` fresh processes (median shown), then one that times warm calls."""
    print()
    fresh = []
    for _ in range(repeats):
        start = time.perf_counter()
        done = subprocess.run([sys.executable, "-c", SMALL_TREE, "fresh"], capture_output=True, text=True, check=True)
        fresh.append((time.perf_counter() - start, json.loads(done.stdout)))
    process_s, first = sorted(fresh, key=lambda pair: pair[0])[repeats // 2]
    with tempfile.TemporaryDirectory(dir=folder, prefix="bench_tree.") as work:
        out = str(Path(work) / "small.safetensors")
        done = subprocess.run(
            [sys.executable, "-c", SMALL_TREE, "warm", out], capture_output=True, text=True, check=True
        )
    warm = json.loads(done.stdout)
    count = warm["parameters"]
    print(f"| {count:,} small parameters (initreg) | s | us per parameter |")
    print("|---|---:|---:|")
    rows = [
        (f"fresh process, whole: interpreter, imports, init_tree (median of {repeats})", process_s),
        ("  of which import initreg", first["import_s"]),
        ("  of which the first init_tree (numba import, kernels loaded from the cache)", first["first_s"]),
        ("init_tree after a warm-up (best of 5)", warm["warm_s"]),
        ("  plan alone (best of 5)", warm["plan_s"]),
        ("save_tree to .safetensors after a warm-up (best of 5)", warm["save_s"]),
    ]
    for name, seconds in rows:
        print(f"| {name} | {seconds:.3f} | {seconds / count * 1e6:.1f} |")


def machine() -> str:
    return f"{cpu_model()}, {gb(os.sysconf('SC_PAGE_SIZE') * os.sysconf('SC_PHYS_PAGES'))} memory"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dir", default=tempfile.gettempdir(), help="where the temporary files go (local disk)")
    parser.add_argument("--chunk-mb", type=float, default=64, help="the streamed writer's chunk size in MiB")
    parser.add_argument("--layers", type=int, default=48, help="blocks of the tree (48: GPT-2 XL)")
    parser.add_argument("--peer-budget", type=float, default=240, help="skip a peer projected to take longer (s)")
    parser.add_argument("--no-in-memory", action="store_true", help="skip the in-memory initreg row")
    parser.add_argument("--no-peers", action="store_true", help="skip torch, JAX and Keras")
    parser.add_argument("--no-overhead", action="store_true", help="skip the 10,000-parameter section")
    arguments = parser.parse_args()
    print(f"machine: {machine()}; Python {platform.python_version()}")
    tree_section(arguments)
    if not arguments.no_overhead:
        overhead_section(arguments.dir)


if __name__ == "__main__":
    main()
