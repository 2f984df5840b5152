"""The fused CPU kernel's rates against the compute limit of Philox4x32-10 and against fills.

    .venv/bin/python bench/bench_kernel.py [--sizes 512K,16M] [--threads 1,2] [--repeats 5]

The limit of the stream's words per second, two ways:

- estimated, by counting cycles per word: a vectorized Philox4x32-10 holds each 32-bit lane of
  `bits` / 64 blocks in 64-bit vector lanes, so that one vpmuludq gives the 64-bit products (its low
  halves are the next lanes as they are). A round then costs per vector 2 multiplies, 2 shifts (the
  high halves) and 2 three-input xors (4 two-input ones without AVX-512), 10 rounds per block, plus
  about 8 instructions to narrow, interleave and store the 4 output vectors. The estimate is the larger
  of two bounds: every instruction spread over the vector ports, (10 x 6 + 8) / (2 x 32) = 1.06 cycles
  per word with AVX-512 on 2 ports, (10 x 8 + 8) / (3 x 16) = 1.83 with AVX2 on 3; and the machine's
  multiply throughput, measured here as what one vector multiply-and-shift costs
  (`multiply_shift_cycles`), times the 20 (10 rounds x 2) a vector of blocks needs for its 4 words a
  block. Cycles become seconds by a clock measured here too: a chain of dependent one-cycle
  instructions (a xorshift loop, 6 per iteration). Both are timed in CPU time.
- measured: the kernel's own words-only loop (``fused_cpu._fill_words``, hand-written so that LLVM
  vectorizes it) at the first size, into a warm buffer; beside it NumPy's Philox bit generator
  (Philox4x64-10, a different member of the family, counted in 32-bit words) as a peer row.

Then uniform, normal and truncated normal (truncated at 2 stddev, lecun_normal's kind), float32 and
float64, drawn into a warm buffer (``fused_cpu.draw_into``: no allocation), as a % of the measured
limit (float32 uses one word per element, float64 two) and as a % of two fills of the same dtype and
size: np.copyto(out, 0.5) into an existing, warm array, and np.full with allocation (the new pages'
faults included). Each rate is the best of `repeats` rounds (4 x `repeats` for the words rows), every
row visited once a round, both per second of wall-clock time and per CPU-second of this process (its
threads together): the percentages compare the CPU-second rates, which other processes on a shared
machine disturb far less, and the estimated limit is per core. The fills and NumPy's generator use one
thread whatever --threads says.
"""

from __future__ import annotations

import argparse
import math
import platform
import time
from collections.abc import Callable
from dataclasses import dataclass

import numba
import numpy as np
from bench_draw import parse_count, shape_of
from machine import cpu_model, load, vector_bits

from initreg import rng
from initreg.backends import fused_cpu
from initreg.distributions import Distribution, NormalDist, TruncatedNormalDist, UniformDist

ROUNDS = rng.PHILOX_ROUNDS
OUTPUT_INSTRUCTIONS = 8  # narrow the 4 lanes' vectors to 32 bits, interleave them, store
ROUND_INSTRUCTIONS = {512: 6, 256: 8, 128: 8}  # 2 multiplies, 2 shifts, 2 three-input or 4 two-input xors
VECTOR_PORTS = {512: 2, 256: 3, 128: 3}  # vector ALU ports of recent x86 cores at that width
MULTIPLY_SHIFT_CHAINS, MULTIPLY_SHIFT_STEPS = 4, 4  # independent chains per element, steps in each
CLOCK_CHAIN = 6  # dependent one-cycle instructions per iteration of _xorshift
KEY = rng.derive_key(0, "bench")
VISIT_ITEMS = 1 << 23  # items timed together (calls in a row) in one visit of a row
DISTRIBUTIONS: dict[str, Distribution] = {
    "uniform": UniformDist(-0.05, 0.05),
    "normal": NormalDist(0.0, 0.02),
    "truncated": TruncatedNormalDist(0.0, 0.02),
}


@dataclass
class Rate:
    """Items per second of wall-clock time, and per CPU-second of this process (all its threads)."""

    wall: float
    cpu: float


def cycles_per_word(bits: int, multiply_shift: float) -> float:
    """The cycles-per-word estimate of a Philox4x32-10 loop at SIMD width `bits` (module docstring),
    given the cycles one vector multiply-and-shift costs."""
    words = 4 * (bits // 64)  # per vector of blocks
    issue = (ROUNDS * ROUND_INSTRUCTIONS[bits] + OUTPUT_INSTRUCTIONS) / (VECTOR_PORTS[bits] * words)
    return max(issue, ROUNDS * 2 * multiply_shift / words)


@numba.njit(error_model="numpy")
def _multiply_shift_chains(x: np.ndarray, repeats: int) -> None:
    """x[i] = 4 independent chains of 4 steps v -> (v M0) >> 32 from x[i], mixed, `repeats` times.

    LLVM vectorizes it: each step is one vpmuludq and one shift, and the independent chains keep
    enough of them in flight for the throughput, not the latency, to bound the loop.
    """
    m0, shift = np.uint64(rng.PHILOX_M0), np.uint64(32)
    for _ in range(repeats):
        for i in range(x.shape[0]):
            a = np.uint64(x[i])
            b, c, d = a ^ np.uint64(0x3039), a ^ np.uint64(0x3E7), a ^ np.uint64(0x12FD1)
            for _ in range(MULTIPLY_SHIFT_STEPS):
                a, b, c, d = (a * m0) >> shift, (b * m0) >> shift, (c * m0) >> shift, (d * m0) >> shift
            x[i] = np.uint32(a ^ b ^ c ^ d)


def multiply_shift_cycles(bits: int, clock: float, repeats: int) -> float:
    """Cycles per vector multiply-and-shift (of `bits` / 64 lanes) in _multiply_shift_chains, best of `repeats`.

    The loop's loads, xors and stores count against the multiplies: an upper bound on their cost.
    """
    x, rounds = np.arange(1, 257, dtype=np.uint32), 20_000
    _multiply_shift_chains(x, 1)
    best = math.inf
    for _ in range(repeats):
        start = time.thread_time()
        _multiply_shift_chains(x, rounds)
        best = min(best, time.thread_time() - start)
    vectors = rounds * x.shape[0] * MULTIPLY_SHIFT_CHAINS * MULTIPLY_SHIFT_STEPS / (bits // 64)
    return best * clock / vectors


@numba.njit
def _xorshift(iterations: int, x: np.uint64) -> np.uint64:
    for _ in range(iterations):
        x ^= x << np.uint64(13)
        x ^= x >> np.uint64(7)
        x ^= x << np.uint64(17)
    return x


def clock_hz(repeats: int) -> float:
    """The core's clock as measured by _xorshift's chain of dependent instructions (best of `repeats`).

    Timed in this thread's CPU time, so that time spent waiting for a core does not count.
    """
    iterations = 20_000_000
    _xorshift(1, np.uint64(1))
    best = math.inf
    for _ in range(repeats):
        start = time.thread_time()
        _xorshift(iterations, np.uint64(88172645463325252))
        best = min(best, time.thread_time() - start)
    return CLOCK_CHAIN * iterations / best


def best_rates(rows: dict[str, tuple[int, Callable[[], object]]], repeats: int) -> dict[str, Rate]:
    """Each row's (items, call) rates: best of `repeats` rounds, each visiting every row.

    A visit times enough calls in a row to make VISIT_ITEMS items, so that small calls are timed
    over several milliseconds, not one.
    """
    for _, call in rows.values():
        call()  # compiles, and touches the output buffers
    wall, cpu = dict.fromkeys(rows, math.inf), dict.fromkeys(rows, math.inf)
    for _ in range(repeats):
        for name, (items, call) in rows.items():
            calls = max(1, VISIT_ITEMS // items)
            start, start_cpu = time.perf_counter(), time.process_time()
            for _ in range(calls):
                call()
            cpu[name] = min(cpu[name], (time.process_time() - start_cpu) / calls)
            wall[name] = min(wall[name], (time.perf_counter() - start) / calls)
    return {name: Rate(items / wall[name], items / max(cpu[name], 1e-9)) for name, (items, _) in rows.items()}


def words_rows(count: int) -> dict[str, tuple[int, Callable[[], object]]]:
    """The measured limit (the kernel's words loop) and NumPy's Philox, `count` words each."""
    words, key, generator = np.empty(count, np.uint32), np.array(KEY, dtype=np.uint64), np.random.Philox(0)
    return {
        "kernel words loop (fused_cpu._fill_words)": (count, lambda: fused_cpu._fill_words(count, words, 0, key)),
        "numpy Philox4x64-10 random_raw (peer)": (count, lambda: generator.random_raw(count // 2)),
    }


def draw_rows(count: int) -> dict[str, tuple[int, Callable[[], object]]]:
    """Each distribution in each precision into a warm buffer, and the two fills, `count` elements each."""
    rows: dict[str, tuple[int, Callable[[], object]]] = {}
    for dtype in ("float32", "float64"):
        out, shape = np.empty(count, dtype), shape_of(count)
        for name, dist in DISTRIBUTIONS.items():
            rows[f"{name} {dtype}"] = (count, lambda out=out, dist=dist: fused_cpu.draw_into(out, dist, KEY))
        rows[f"fill warm {dtype}"] = (count, lambda out=out: np.copyto(out, 0.5))
        rows[f"fill alloc {dtype}"] = (count, lambda shape=shape, dtype=dtype: np.full(shape, 0.5, dtype))
    return rows


def row(*cells: object) -> None:
    print("| " + " | ".join(str(cell) for cell in cells) + " |")


def millions(rate: float) -> str:
    return f"{rate / 1e6:,.0f}"


def percent(part: float, whole: float) -> str:
    return f"{100 * part / whole:.0f}%"


def size_label(count: int) -> str:
    return f"{count >> 20}M" if count % (1 << 20) == 0 else f"{count >> 10}K" if count % 1024 == 0 else str(count)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="512K,16M", help="elements per draw; the limit is measured at the first")
    parser.add_argument("--threads", default="1,2", help="numba thread counts, comma-separated")
    parser.add_argument("--repeats", type=int, default=5, help="timed rounds (best of)")
    arguments = parser.parse_args()
    sizes = [parse_count(size) for size in arguments.sizes.split(",")]
    bits = vector_bits()

    print(f"machine: {cpu_model()}, {bits}-bit SIMD; {load()} at the start")
    print(f"Python {platform.python_version()}, numpy {np.__version__}, numba {numba.__version__}")
    clock = clock_hz(arguments.repeats)
    multiply_shift = multiply_shift_cycles(bits, clock, arguments.repeats)
    per_word = cycles_per_word(bits, multiply_shift)
    print(f"clock measured: {clock / 1e9:.2f} GHz; a {bits}-bit multiply-and-shift: {multiply_shift:.2f} cycles")
    print(f"estimate: {per_word:.2f} cycles per word")
    print()
    header = "Melem/s (wall)", "Melem per CPU-s", "% of limit (measured)", "% of warm fill", "% of np.full (alloc)"
    row("threads", "size", "row", *header)
    row("---:", "---", "---", *["---:"] * len(header))
    for threads in (int(t) for t in arguments.threads.split(",")):
        numba.set_num_threads(threads)
        words = best_rates(words_rows(sizes[0]), 4 * arguments.repeats)  # cheap rows; the limit wants its best run
        limit = words["kernel words loop (fused_cpu._fill_words)"].cpu
        estimate = f"Philox limit, estimated ({per_word:.2f} cycles/word)"
        row(threads, "", estimate, millions(threads * clock / per_word), millions(clock / per_word), "", "", "")
        for name, rate in words.items():
            cells = millions(rate.wall), millions(rate.cpu), percent(rate.cpu, limit)
            row(threads, size_label(sizes[0]), f"{name}: words", *cells, "", "")
        for count in sizes:
            rates = best_rates(draw_rows(count), arguments.repeats)
            for dtype, words_each in (("float32", 1), ("float64", 2)):
                warm, alloc = rates[f"fill warm {dtype}"], rates[f"fill alloc {dtype}"]
                for name in DISTRIBUTIONS:
                    rate = rates[f"{name} {dtype}"]
                    shares = (
                        percent(rate.cpu * words_each, limit),
                        percent(rate.cpu, warm.cpu),
                        percent(rate.cpu, alloc.cpu),
                    )
                    row(threads, size_label(count), f"{name} {dtype}", millions(rate.wall), millions(rate.cpu), *shares)
                fills = f"fill {dtype}: warm np.copyto / np.full"
                cells = (
                    f"{millions(warm.wall)} / {millions(alloc.wall)}",
                    f"{millions(warm.cpu)} / {millions(alloc.cpu)}",
                )
                row(threads, size_label(count), fills, *cells, "", "", "")
    print(f"\n{load()} at the end")


if __name__ == "__main__":
    main()
