"""initreg's kernel_init under jax.jit on the CPU, beside jax.nn.initializers and initreg's host callback.

    .venv/bin/python bench/bench_jax_init.py [--sizes 1,4,16,64] [--layers 12] [--repeats 3]

Each row times one jitted function (compiled first, then the best of --repeats calls with fresh keys,
until the result is ready) making float32 values of the same distribution and shapes three ways:
``kernel_init(init, host=False)`` (traced on jax.numpy: initreg.interop.jax_stream, the default on a GPU
or TPU), JAX's own initializer, and ``kernel_init(init, host=True)`` (jax.pure_callback into initreg's CPU
kernel, the default on a CPU backend). Rows: one (n/1024, 1024) matrix per --sizes entry (millions of
elements), for lecun_normal (truncated normal) and he_uniform; then a GPT-2-like tree of --layers blocks
(d = 768: attention,
projection, MLP kernels and their zero biases; layer-norm scales of ones), all made in one jitted
function. Compile times are printed apart.
"""

from __future__ import annotations

import argparse
import platform
import time
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
from machine import cpu_model

from initreg.interop.jax import kernel_init

KINDS = {"lecun_normal": jax.nn.initializers.lecun_normal(), "he_uniform": jax.nn.initializers.he_uniform()}
WIDTH = 768


def tree_shapes(layers: int) -> dict[str, tuple[int, ...]]:
    """GPT-2's parameter shapes (Flax layout, [in, out]) for `layers` blocks of width 768."""
    shapes: dict[str, tuple[int, ...]] = {}
    for layer in range(layers):
        for name, shape in (("qkv", (WIDTH, 3 * WIDTH)), ("proj", (WIDTH, WIDTH)), ("fc", (WIDTH, 4 * WIDTH)),
                            ("out", (4 * WIDTH, WIDTH))):  # fmt: skip
            shapes[f"h{layer}.{name}.kernel"] = shape
            shapes[f"h{layer}.{name}.bias"] = (shape[1],)
        shapes[f"h{layer}.ln_1.scale"] = shapes[f"h{layer}.ln_2.scale"] = (WIDTH,)
    return shapes


def tree_maker(kernel: Any, zeros: Any, ones: Any, shapes: dict[str, tuple[int, ...]]) -> Callable[..., Any]:
    """One function making the whole tree from one key, a key folded in per parameter as Flax does."""

    def make(key: jax.Array) -> dict[str, jax.Array]:
        made = {}
        for at, (name, shape) in enumerate(shapes.items()):
            init = kernel if name.endswith("kernel") else zeros if name.endswith("bias") else ones
            made[name] = init(jax.random.fold_in(key, at), shape, jnp.float32)
        return made

    return make


def timed(make: Callable[..., Any], repeats: int) -> tuple[float, float]:
    """(compile seconds, best call seconds) of jax.jit(make)."""
    jitted = jax.jit(make)
    start = time.perf_counter()
    compiled = jitted.lower(jax.random.key(0)).compile()
    compile_seconds = time.perf_counter() - start
    jax.block_until_ready(compiled(jax.random.key(0)))
    best = float("inf")
    for repeat in range(repeats):
        start = time.perf_counter()
        jax.block_until_ready(compiled(jax.random.key(repeat + 1)))
        best = min(best, time.perf_counter() - start)
    return compile_seconds, best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", default="1,4,16,64", help="matrix sizes in millions of elements (2^20)")
    parser.add_argument("--layers", type=int, default=12)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    print(f"{cpu_model()}; JAX {jax.__version__} on {jax.default_backend()}, Python {platform.python_version()}")
    print(f"{'workload':<34}{'initreg jit':>12}{'jax.nn':>10}{'host cb':>10}{'jax.nn / initreg':>18}"
          f"{'host / initreg':>16}   compile s (initreg, jax.nn, host)")  # fmt: skip
    for millions in (int(size) for size in args.sizes.split(",")):
        shape = (millions * 1024, 1024)
        for kind, theirs in KINDS.items():
            rows = [
                timed(lambda key, init=init, shape=shape: init(key, shape, jnp.float32), args.repeats)
                for init in (kernel_init(kind, host=False), theirs, kernel_init(kind, host=True))
            ]
            report(f"{kind} {millions}M float32", rows)
    shapes = tree_shapes(args.layers)
    count = sum(len(shape) and int(jnp.prod(jnp.asarray(shape))) for shape in shapes.values())
    makers = [
        tree_maker(kernel_init("lecun_normal", host=False), kernel_init("zeros"), kernel_init("ones"), shapes),
        tree_maker(KINDS["lecun_normal"], jax.nn.initializers.zeros, jax.nn.initializers.ones, shapes),
        tree_maker(kernel_init("lecun_normal", host=True), kernel_init("zeros"), kernel_init("ones"), shapes),
    ]
    report(f"tree: {len(shapes)} tensors, {count / 1e6:.0f}M", [timed(make, args.repeats) for make in makers])


def report(label: str, rows: list[tuple[float, float]]) -> None:
    """One table row: best seconds of each way, the ratios to initreg's traced path, and compile times."""
    (ours_compile, ours), (jax_compile, theirs), (host_compile, host) = rows
    print(f"{label:<34}{ours:>12.4f}{theirs:>10.4f}{host:>10.4f}{theirs / ours:>17.2f}x{host / ours:>15.2f}x"
          f"   {ours_compile:.2f}, {jax_compile:.2f}, {host_compile:.2f}")  # fmt: skip


if __name__ == "__main__":
    main()
