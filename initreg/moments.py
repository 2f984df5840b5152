"""The mean and standard deviation of values seen piece by piece, as the command's table reports them.

A `Moments` holds (count, mean, m2), m2 = sum (x - mean)^2, and merges each piece's into them
(Chan, Golub and LeVeque, 1979): with n = n_a + n_b and delta = mean_b - mean_a,

    mean = mean_a + delta n_b / n,    m2 = m2_a + m2_b + delta^2 n_a n_b / n.

In float64, with P pieces of at most k blocks each (see fused_moments) and kappa = max|x| / std, the
merges add to the pieces' own bounds a relative error of at most (2k + P + 8 + (4 + 2 P^2) kappa) u,
u = 2^-53: the pieces' mean errors e_p enter m2 as 2 sum n_p e_p (mean_p - mean), at most 2 max e_p / std
relative; then come the roundings of the P - 1 deltas and the sum of P nonnegative terms. For GPT-2
XL's embedding (P = 5 pieces of k = 4096 blocks, kappa < 3), with the pieces' own bound, the variance is
within 1.5e-12 and the std within 8e-13 relative.

A piece's own moments come from one fused pass over its memory (``initreg.backends.fused_moments``,
which states its error bound) when the piece is of a float dtype and the NumPy backend's fused kernels
are loaded or the piece is large enough to load them (``initreg.backends.numpy.fused_kernels``), else from
NumPy's float64 mean and variance, MOMENT_BLOCK elements at a time.
"""

from __future__ import annotations

import math
from typing import Any

from initreg.backends.numpy import fused_kernels

MOMENT_BLOCK = 1 << 18  # elements NumPy measures at once without numba (2 MiB of float64 temporaries)
FUSED_DTYPES = ("float16", "bfloat16", "float32", "float64")  # what the fused pass reads


def piece_moments(values: Any) -> tuple[int, float, float]:
    """(count, mean, m2) of a NumPy float array, computed in float64; (0, 0.0, 0.0) when empty.

    A value that is inf or NaN makes the mean inf or NaN.
    """
    if fused_kernels(values.size) is not None and values.dtype.name in FUSED_DTYPES:
        from initreg.backends.fused_moments import moments

        return moments(values)
    import numpy as np

    total = Moments()
    flat = values.reshape(-1)
    for start in range(0, flat.size, MOMENT_BLOCK):
        block = flat[start : start + MOMENT_BLOCK]
        mean, variance = float(np.mean(block, dtype=np.float64)), float(np.var(block, dtype=np.float64))
        total.merge(block.size, mean, variance * block.size)
    return total.count, total.mean, total.m2


class Moments:
    """Count, mean and m2 of the values added so far."""

    def __init__(self) -> None:
        self.count, self.mean, self.m2 = 0, 0.0, 0.0

    def add(self, values: Any) -> None:
        """Takes in a NumPy array's values (see `piece_moments`)."""
        self.merge(*piece_moments(values))

    def merge(self, count: int, mean: float, m2: float) -> None:
        """Takes in the moments (count, mean, m2) of other values."""
        if count == 0:
            return
        total = self.count + count
        delta = mean - self.mean
        self.m2 += m2 + delta * delta * self.count * count / total
        self.mean += delta * count / total
        self.count = total

    @property
    def std(self) -> float:
        """sqrt(m2 / count): the population standard deviation; NaN before any value."""
        return math.sqrt(self.m2 / self.count) if self.count else math.nan
