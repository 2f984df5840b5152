"""Many small tensors: one init_tree call against a plain torch.nn.init loop, quiet and beside a busy core.

    .venv/bin/python bench/bench_small.py [--tensors 10000] [--size 16] [--repeats 5] [--busy 1]

Section 1: --tensors parameters of shape (--size,), random_normal(stddev=0.02), in one
``initreg.init_tree`` call (warm: after one call that loads the kernels), and the same count of
``torch.nn.init.normal_(t, 0.0, 0.02)`` calls over preallocated torch tensors of that shape, what a
user writes to initialize them with torch. Each is the best of --repeats, wall time
(``time.perf_counter``) and CPU time of this process (``time.process_time``) each, first on the
machine as it is ("quiet"), then with --busy processes of this script spinning in a pure-Python
loop beside it ("busy"), in the same run; each also with one kernel call per tensor
(drawing.MIN_BATCH set above the tree's size), as before small tensors of one distribution were
drawn together. The plan (``planning.assign`` of the same tree, what init_tree plans with) is timed
on its own; "its draws" is the rest.

Section 2, where the parallel kernel pays: one float32 truncated-normal draw (lecun_normal's kind)
of n elements through the serial build and through the parallel build of the same kernel
(``kernel_cache.Kernel``), per call, for n from 2^8 to 2^20 (2^20 elements per timing), quiet and
busy. initreg's PARALLEL_FROM is the n from which it runs the parallel build.
"""

from __future__ import annotations

import argparse
import multiprocessing
import platform
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import numba
import numpy as np
import torch
from machine import cpu_model

import initreg
from initreg import drawing, planning, rng
from initreg.backends import fused_cpu, kernel_cache
from initreg.distributions import TruncatedNormalDist

RULES = {"all": {"match": "*", "init": {"name": "random_normal", "stddev": 0.02}}}


def _spin() -> None:
    while True:
        pass


@contextmanager
def busy(processes: int) -> Iterator[None]:
    """`processes` CPU-bound processes running beside the block."""
    spinners = [multiprocessing.Process(target=_spin, daemon=True) for _ in range(processes)]
    for spinner in spinners:
        spinner.start()
    time.sleep(0.5)  # let the scheduler place them
    try:
        yield
    finally:
        for spinner in spinners:
            spinner.terminate()
            spinner.join()


def best(function: Callable[[], object], repeats: int) -> tuple[float, float]:
    """The least wall time and the least CPU time of this process of `repeats` calls, in seconds."""
    walls, cpus = [], []
    for _ in range(repeats):
        wall, cpu = time.perf_counter(), time.process_time()
        function()
        cpus.append(time.process_time() - cpu)
        walls.append(time.perf_counter() - wall)
    return min(walls), min(cpus)


def small_tensors(tensors: int, size: int, repeats: int) -> dict[str, tuple[float, float]]:
    """{"init_tree", "plan", "torch": (wall s, CPU s)} for `tensors` tensors of shape (size,)."""
    spec = {f"p{i}": (size,) for i in range(tensors)}
    initreg.init_tree(spec, RULES, seed=0)  # warm: kernels loaded
    parameters = [torch.empty(size) for _ in range(tensors)]

    def torch_loop() -> None:
        for parameter in parameters:
            torch.nn.init.normal_(parameter, 0.0, 0.02)

    torch_loop()
    return {
        "init_tree": best(lambda: initreg.init_tree(spec, RULES, seed=0), repeats),
        "plan": best(lambda: planning.assign(spec, RULES), repeats),
        "torch": best(torch_loop, repeats),
    }


def crossover(repeats: int) -> list[tuple[int, float, float]]:
    """(n, serial us, parallel us) per call of one float32 draw of n elements."""
    dist = TruncatedNormalDist(0.0, 0.05)
    kind, params = fused_cpu.parameters(dist, "float32")
    key, starts = np.array(rng.derive_key(0, "w"), dtype=np.uint64), np.zeros(1, dtype=np.int64)
    rows = []
    for exponent in range(8, 21, 2):
        n = 1 << exponent
        arguments = (np.empty(n, np.float32), starts, n, 1, key, kind, params)
        calls = max(1, (1 << 20) // n)
        timed = []
        for build in (fused_cpu._fill32.serial, fused_cpu._fill32.parallel):
            build(*arguments)
            timed.append(
                best(lambda b=build, a=arguments, c=calls: [b(*a) for _ in range(c)], repeats)[0] / calls * 1e6
            )
        rows.append((n, *timed))
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--tensors", type=int, default=10_000)
    parser.add_argument("--size", type=int, default=16)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--busy", type=int, default=1, help="CPU-bound processes beside the busy rows")
    args = parser.parse_args()
    versions = f"Python {platform.python_version()}, numba {numba.__version__}, torch {torch.__version__}"
    print(f"machine: {cpu_model()}; {versions}")
    print(f"initreg: numba threading layer {numba.threading_layer() if numba.get_num_threads() else '-'}, "
          f"{numba.get_num_threads()} threads, torch {torch.get_num_threads()} threads, "
          f"PARALLEL_FROM = {kernel_cache.PARALLEL_FROM}, MIN_BATCH = {drawing.MIN_BATCH}")  # fmt: skip
    print()
    print(
        f"| {args.tensors:,} tensors of ({args.size},), wall s / CPU s | init_tree | its plan | its draws "
        "| torch loop | init_tree / torch loop |"
    )
    print("|---|---:|---:|---:|---:|---:|")
    batched_from = drawing.MIN_BATCH
    for label, load in (("quiet", 0), (f"{args.busy} busy process(es) beside", args.busy)):
        for threshold, calls in ((batched_from, ""), (args.tensors + 1, ", one kernel call per tensor (before)")):
            drawing.MIN_BATCH = threshold
            with busy(load):
                timed = small_tensors(args.tensors, args.size, args.repeats)
            (wall, cpu), (plan_wall, plan_cpu), (torch_wall, torch_cpu) = timed.values()
            print(
                f"| {label}{calls} | {wall:.3f} / {cpu:.3f} | {plan_wall:.3f} / {plan_cpu:.3f} | "
                f"{wall - plan_wall:.3f} / {cpu - plan_cpu:.3f} | {torch_wall:.3f} / {torch_cpu:.3f} | "
                f"{wall / torch_wall:.2f}x / {cpu / torch_cpu:.2f}x |"
            )
    drawing.MIN_BATCH = batched_from
    print()
    print("| n (float32 elements) | serial build us/call | parallel build us/call | machine |")
    print("|---:|---:|---:|---|")
    for label, load in (("quiet", 0), ("busy", args.busy)):
        with busy(load):
            for n, serial, parallel in crossover(args.repeats):
                print(f"| {n:,} | {serial:,.1f} | {parallel:,.1f} | {label} |")


if __name__ == "__main__":
    main()
