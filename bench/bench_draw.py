"""Draw throughput of initreg against JAX, PyTorch, Keras 3, NumPy and two plain fills, on the CPU.

    .venv/bin/python bench/bench_draw.py [--sizes 1M,16M,64M] [--repeats 4] [--reference-up-to 16M]

Every row makes one float32 tensor of n elements, shaped (sqrt n, sqrt n) where n is a square, else
(n,): lecun_normal (a normal truncated at two standard deviations) wherever the library has it, with
its allocation included (the last row, a fill of an existing array, alone has none). A row's rate is
n / its best of `repeats` timed calls, after an untimed call that compiles what needs compiling; rows
take turns (see `measure`) and all come from the same run, so their ratios can be compared. A library
that is not installed is shown as such.

Sections: draw throughput per size; startup (a small tree in a new process, with an empty and with a
warm kernel cache). The GPT-2-XL-shaped tree written to disk, streamed and in memory, and the cost per
parameter of a 10,000-parameter tree are measured by bench/bench_tree.py; each distribution's rate
against the compute limit of Philox4x32-10, by bench/bench_kernel.py.
"""

from __future__ import annotations

import argparse
import math
import os
import platform
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

os.environ["KERAS_BACKEND"] = "numpy"  # the Keras row measures Keras 3 on its NumPy backend
os.environ.setdefault("JAX_PLATFORMS", "cpu")

import numpy as np
from machine import cpu_model

import initreg
from initreg.backends.base import Backend
from initreg.backends.numpy import backend as numpy_backend
from initreg.backends.numpy import fused_kernels
from initreg.distributions import NormalDist

Draw = Callable[[], Any]
TRUNCATED_STD = 0.87962566103423978  # std of a standard normal truncated to [-2, 2]
INITREG = "initreg (fused CPU kernel)"
FULL = "fill with allocation (np.full)"
WARM_FILL = "fill of a warm array (np.copyto)"


@dataclass
class Result:
    name: str
    rate: float | None  # Melem/s; None when `note` says why there is none
    note: str = ""


def lecun_stddev(shape: tuple[int, ...]) -> float:
    """The stddev lecun_normal gives its truncated normal: sqrt(1 / fan_in) / 0.8796..., fan_in = shape[0]."""
    return math.sqrt(1.0 / shape[0]) / TRUNCATED_STD


def initreg_fused(shape: tuple[int, ...]) -> Draw:
    if fused_kernels() is None:
        raise ImportError("numba is not importable: initreg draws with its reference")
    init = initreg.get("lecun_normal", seed=0)
    return lambda: init(shape)


def initreg_reference(shape: tuple[int, ...]) -> Draw:
    init = initreg.get("lecun_normal", seed=0)
    dist, key = init.distribution_for(shape), init.key()
    return lambda: Backend.draw(numpy_backend, dist, key, shape, "float32")  # the base class: rng.draw


def jax_lecun_normal(shape: tuple[int, ...], *, jit: bool) -> Draw:
    import jax
    import jax.numpy as jnp

    init = jax.nn.initializers.lecun_normal()
    key = jax.random.key(0)
    draw = jax.jit(lambda k: init(k, shape, jnp.float32)) if jit else (lambda k: init(k, shape, jnp.float32))
    return lambda: draw(key).block_until_ready()


def torch_trunc_normal(shape: tuple[int, ...]) -> Draw:
    import torch

    std = lecun_stddev(shape)
    return lambda: torch.nn.init.trunc_normal_(torch.empty(shape), std=std, a=-2.0 * std, b=2.0 * std)


def keras_lecun_normal(shape: tuple[int, ...]) -> Draw:
    import keras

    if keras.backend.backend() != "numpy":
        raise ImportError(f"Keras runs on {keras.backend.backend()!r}, not numpy")
    init = keras.initializers.LecunNormal(seed=0)
    return lambda: init(shape, dtype="float32")


def numpy_standard_normal(shape: tuple[int, ...]) -> Draw:
    generator = np.random.default_rng(0)
    return lambda: generator.standard_normal(shape, dtype=np.float32)


def numpy_full(shape: tuple[int, ...]) -> Draw:
    """A fill with its allocation: np.full, whose new pages fault in as it writes them."""
    return lambda: np.full(shape, 0.5, dtype=np.float32)


def numpy_warm_fill(shape: tuple[int, ...]) -> Draw:
    """A fill of an existing array that every call rewrites (warm: its pages are mapped)."""
    out = np.empty(shape, dtype=np.float32)
    return lambda: np.copyto(out, 0.5)


PEERS: list[tuple[str, Callable[[tuple[int, ...]], Draw]]] = [
    (INITREG, initreg_fused),
    ("initreg reference (NumPy)", initreg_reference),
    ("JAX lecun_normal, jit (CPU)", lambda shape: jax_lecun_normal(shape, jit=True)),
    ("JAX lecun_normal, eager (CPU)", lambda shape: jax_lecun_normal(shape, jit=False)),
    ("torch.nn.init.trunc_normal_", torch_trunc_normal),
    ("Keras 3 LecunNormal (numpy backend)", keras_lecun_normal),
    ("numpy standard_normal", numpy_standard_normal),
    (FULL, numpy_full),
    (WARM_FILL, numpy_warm_fill),
]


def prepare(make: Callable[[tuple[int, ...]], Draw], shape: tuple[int, ...]) -> Draw | str:
    """The draw, after one untimed call (which compiles what needs compiling), or why there is none."""
    try:
        draw = make(shape)
        draw()
    except ImportError as error:
        return f"not installed ({error})"
    except Exception as error:  # a peer failing (memory, version) is reported, not fatal
        return f"failed: {type(error).__name__}: {error}"
    return draw


def measure(shape: tuple[int, ...], peers: list[tuple[str, Draw | str]], rounds: int) -> list[Result]:
    """Melem/s of each peer's best timed call.

    Each round visits every peer once, so load from outside that comes and goes reaches all of them
    alike; a visit times the second of two calls, so thread pools of the peer before (OpenMP, Eigen)
    that still spin have gone quiet.
    """
    best = {name: math.inf for name, draw in peers if not isinstance(draw, str)}
    for _ in range(rounds):
        for name, draw in peers:
            if not isinstance(draw, str):
                draw()
                start = time.perf_counter()
                draw()
                best[name] = min(best[name], time.perf_counter() - start)
    return [
        Result(name, None, draw) if isinstance(draw, str) else Result(name, math.prod(shape) / best[name] / 1e6)
        for name, draw in peers
    ]


def parse_count(text: str) -> int:
    """'16M' -> 16 * 2^20, '1K' -> 1024, '5000' -> 5000."""
    units = {"K": 1 << 10, "M": 1 << 20, "G": 1 << 30}
    return int(text[:-1]) * units[text[-1].upper()] if text[-1].upper() in units else int(text)


def shape_of(count: int) -> tuple[int, ...]:
    side = math.isqrt(count)
    return (side, side) if side * side == count else (count,)


def label(count: int) -> str:
    return f"{count >> 20}M" if count % (1 << 20) == 0 else str(count)


def throughput_section(sizes: list[int], repeats: int, reference_up_to: int) -> None:
    print("| size | implementation | Melem/s | vs initreg |")
    print("|---|---|---:|---:|")
    for count in sizes:
        shape = shape_of(count)
        skipped = f"skipped (above --reference-up-to {label(reference_up_to)})"
        peers = [
            (name, skipped if make is initreg_reference and count > reference_up_to else prepare(make, shape))
            for name, make in PEERS
        ]
        results = measure(shape, peers, repeats if count < (1 << 26) else max(2, repeats // 2))
        ours = results[0].rate
        for result in results:
            if result.rate is None:
                print(f"| {label(count)} | {result.name} | {result.note} | |")
            else:
                ratio = f"{result.rate / ours:.3g}x" if ours else ""
                print(f"| {label(count)} | {result.name} | {result.rate:,.0f} | {ratio} |")
        print_goals(label(count), results)


def print_goals(size: str, results: list[Result]) -> None:
    """The performance goals at this size: 10x JAX's CPU lecun_normal, 25% of np.full's rate.

    np.full allocates, as every row above does; a fill of a warm array is the faster, stricter bound.
    """
    rates = {result.name: result.rate for result in results if result.rate is not None}
    ours = rates.get(INITREG)
    if ours is None:
        return
    jax_rates = [rate for name, rate in rates.items() if name.startswith("JAX")]
    notes = []
    if jax_rates:
        notes.append(f"{ours / max(jax_rates):.1f}x the fastest JAX row (goal >= 10x)")
    if FULL in rates:
        notes.append(f"{100 * ours / rates[FULL]:.0f}% of np.full with allocation (goal >= 25%)")
    if WARM_FILL in rates:
        notes.append(f"{100 * ours / rates[WARM_FILL]:.0f}% of a warm fill")
    print(f"|  | {size}: initreg is {'; '.join(notes)} | | |")


SMALL_TREE = """
import time
start = time.perf_counter()
import initreg
spec = {f"block{i}": {"dense": {"kernel": (512, 512), "bias": (512,)}, "norm": {"scale": (512,)}} for i in range(8)}
rules = {
    "kernels": {"match": "*.kernel", "init": "lecun_normal"},
    "biases": {"match": "*.bias", "init": "zeros"},
    "scales": {"match": "*.scale", "init": "ones"},
}
initreg.init_tree(spec, rules, seed=0)
print(time.perf_counter() - start)
"""


def startup_section() -> None:
    """A small tree (24 parameters, 2.1M values) in a new process: empty kernel cache, then warm."""
    print()
    print("| startup: small tree in a new process | inside the process (s) | whole process (s) |")
    print("|---|---:|---:|")
    with tempfile.TemporaryDirectory() as cache:
        environment = {**os.environ, "INITREG_CACHE_DIR": cache}  # an empty kernel cache
        for case in ("first run (empty kernel cache: compiles)", "second run (kernels from the cache)"):
            start = time.perf_counter()
            done = subprocess.run(
                [sys.executable, "-c", SMALL_TREE], env=environment, capture_output=True, text=True, check=True
            )
            print(f"| {case} | {float(done.stdout):.2f} | {time.perf_counter() - start:.2f} |")


def versions() -> str:
    found = []
    for module in ("numba", "jax", "torch", "keras"):
        try:
            found.append(f"{module} {__import__(module).__version__}")
        except ImportError:
            found.append(f"{module} not installed")
    return ", ".join(found)


def threading() -> str:
    if fused_kernels() is None:
        return "numba not importable"
    import numba

    from initreg.backends.kernel_cache import PARALLEL_FROM

    # the layer is chosen on the first parallel launch; smaller draws run the serial build
    numpy_backend.draw(NormalDist(0.0, 1.0), (0, 0), (PARALLEL_FROM,), "float32")
    return f"numba threading layer {numba.threading_layer()}, {numba.get_num_threads()} threads"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="1M,16M,64M", help="element counts, comma-separated (K, M, G suffixes)")
    parser.add_argument("--repeats", type=int, default=4, help="timed calls per row (halved for 64M and above)")
    parser.add_argument("--reference-up-to", default="16M", help="largest size the slow reference is timed at")
    parser.add_argument("--no-startup", action="store_true", help="skip the new-process startup section")
    arguments = parser.parse_args()
    sizes = [parse_count(size) for size in arguments.sizes.split(",")]

    print(f"machine: {cpu_model()}; Python {platform.python_version()}, numpy {np.__version__}, {versions()}")
    print(f"initreg: {threading()}")
    print()
    throughput_section(sizes, arguments.repeats, parse_count(arguments.reference_up_to))
    if not arguments.no_startup:
        startup_section()


if __name__ == "__main__":
    main()
