"""The mean and variance of an array in one pass over its memory, with numba: no temporary of its size.

`moments(values)` gives (count, mean, m2), m2 = sum (x - mean)^2, of a float16, bfloat16, float32 or
float64 array, computed in float64 (16-bit values through a table of all 65,536 of them, exact).

The array is cut into blocks of BLOCK elements (the last one shorter), one parallel work item each.
A block is summed in LANES interleaved partial sums, giving a = sum / b; a second pass over the
block, in cache, gives S = sum (x - a)^2 and r = sum (x - a) (the corrected two-pass algorithm):
the block's mean is a + r / b and its m2 is S - r^2 / b. The blocks are then merged in their order,
whatever the thread count and in both builds of the kernel: m = sum b_j mean_j / n, then
m2 = sum (m2_j + b_j (mean_j - m)^2) and the mean m + sum b_j (mean_j - m) / n (corrected as a is).

Error bound, to first order in u = 2^-53, with k = ceil(n / BLOCK) blocks and kappa = max|x| / std:
each term of S is within 3u, the partial sums add (BLOCK / LANES + LANES) u, so a block's m2 is within
(BLOCK / LANES + LANES + 5) u = 525u (the error of a enters S only through b (a - mean)^2, which r
removes to first order). An error in m leaves the merged m2 unchanged to first order (m minimizes
sum b_j (mean_j - m)^2), while the rounding of each mean_j, within u |mean_j|, moves it by at most
2u kappa relative. The k nonnegative terms are summed within (k + 3) u. In all, the relative error of
the variance is at most (533 + k + 2 kappa) u: 5.4e-13 for a 64 MiB float32 piece (k = 4096) of a
tensor whose values lie within 100 standard deviations. The corrected mean is within
2u max|x| + (k + 2) u std (m is within (k + 3) u max|x|, and the correction's k terms, each within 2u,
sum to at most std in absolute value over the weights).

``fused_cpu.fill_with_moments`` runs the same block and merge steps (`block_moments`, `merged_blocks`)
on each block right after drawing it: its moments are these, bit for bit, with the same bound.
"""

from __future__ import annotations

import functools
from typing import Any

import numba
import numpy as np
from numba.core import types
from numba.extending import overload

from initreg.backends.kernel_cache import Kernel
from initreg.dtypes import numpy_dtype

BLOCK = 4096  # elements per work item: 32 KiB of float64, in L1 or L2 for the second pass
LANES = 8  # independent partial sums per block: they hide the latency of a float64 add


def _float64_at(values: np.ndarray, table: np.ndarray, i: int) -> float:
    """values[i] as a float64: through `table` for the bits of a 16-bit float, else converted."""
    raise NotImplementedError("called only inside the kernel")


@overload(_float64_at, inline="always")
def _float64_at_overload(values: Any, table: Any, i: Any) -> Any:
    """The implementation for the types of `values`: a table lookup for uint16 bits, else a conversion."""
    if values.dtype == types.uint16:

        def looked_up(values: Any, table: Any, i: Any) -> Any:
            return table[values[i]]

        return looked_up

    def converted(values: Any, table: Any, i: Any) -> Any:
        return np.float64(values[i])

    return converted


@numba.njit(error_model="numpy", inline="always")
def _sum(values: np.ndarray, table: np.ndarray, first: int, stop: int) -> float:
    """sum x over values[first:stop], in LANES partial sums."""
    sums = np.zeros(LANES)
    whole = first + (stop - first) // LANES * LANES
    for i in range(first, whole, LANES):
        for lane in range(LANES):
            sums[lane] += _float64_at(values, table, i + lane)
    for i in range(whole, stop):
        sums[i - whole] += _float64_at(values, table, i)
    total: float = sums.sum()
    return total


@numba.njit(error_model="numpy", inline="always")
def _deviations(values: np.ndarray, table: np.ndarray, first: int, stop: int, shift: float) -> tuple[float, float]:
    """(sum (x - shift), sum (x - shift)^2) over values[first:stop], in LANES partial sums each."""
    sums, squares = np.zeros(LANES), np.zeros(LANES)
    whole = first + (stop - first) // LANES * LANES
    for i in range(first, whole, LANES):
        for lane in range(LANES):
            d = _float64_at(values, table, i + lane) - shift
            sums[lane] += d
            squares[lane] += d * d
    for i in range(whole, stop):
        d = _float64_at(values, table, i) - shift
        sums[i - whole] += d
        squares[i - whole] += d * d
    return sums.sum(), squares.sum()


@numba.njit(error_model="numpy", inline="always")
def block_moments(values: np.ndarray, table: np.ndarray, first: int, stop: int) -> tuple[float, float]:
    """(mean, m2) of values[first:stop]: a + r / b and S - r^2 / b (see the module's docstring)."""
    size = stop - first
    a = _sum(values, table, first, stop) / size
    r, s = _deviations(values, table, first, stop, a)
    return a + r / size, max(s - r * r / size, 0.0)  # m2 >= 0 exactly; rounding could leave -1 ulp


@numba.njit(error_model="numpy", inline="always")
def merged_blocks(blocks: np.ndarray, n: int) -> tuple[float, float]:
    """(mean, m2) of n values from their blocks' (mean, m2), blocks of BLOCK elements, merged in order."""
    count = blocks.shape[0]
    mean = 0.0
    for block in range(count):
        mean += min(BLOCK, n - block * BLOCK) * blocks[block, 0]
    mean /= n
    m2, residual = 0.0, 0.0
    for block in range(count):
        delta = blocks[block, 0] - mean
        m2 += blocks[block, 1] + min(BLOCK, n - block * BLOCK) * delta * delta
        residual += min(BLOCK, n - block * BLOCK) * delta
    return mean + residual / n, m2


@Kernel
def _moments(values: np.ndarray, table: np.ndarray, blocks: np.ndarray) -> tuple[float, float]:
    """(mean, m2) of `values` (see the module's docstring); `blocks` holds each block's (mean, m2)."""
    n = values.shape[0]
    for block in numba.prange(blocks.shape[0]):
        first = block * BLOCK
        blocks[block, 0], blocks[block, 1] = block_moments(values, table, first, min(first + BLOCK, n))
    return merged_blocks(blocks, n)


@functools.cache
def _table(dtype: str) -> np.ndarray:
    """Every value of a 16-bit float dtype as float64, indexed by its bits (made on first use: bfloat16's
    imports ml_dtypes)."""
    with np.errstate(invalid="ignore"):  # the NaN patterns stay NaN
        table: np.ndarray = np.arange(1 << 16, dtype=np.uint16).view(numpy_dtype(dtype)).astype(np.float64)
    return table


NO_TABLE = np.empty(0)  # the table argument for float32 and float64 values


def moments(values: Any) -> tuple[int, float, float]:
    """(count, mean, m2) of a NumPy array of a float dtype, m2 = sum (x - mean)^2; (0, 0.0, 0.0) when empty.

    A value that is inf or NaN makes the mean inf or NaN.
    """
    flat = np.ascontiguousarray(values).reshape(-1)
    if flat.size == 0:
        return 0, 0.0, 0.0
    name = flat.dtype.name
    if name in ("float16", "bfloat16"):
        flat, table = flat.view(np.uint16), _table(name)
    elif name in ("float32", "float64"):
        table = NO_TABLE
    else:
        raise TypeError(f"moments of a {name} array; valid: float16, bfloat16, float32, float64")
    blocks = np.empty(((flat.size + BLOCK - 1) // BLOCK, 2))
    mean, m2 = _moments(flat.size, flat, table, blocks)
    return flat.size, float(mean), float(m2)
