"""The tests: Kolmogorov-Smirnov against the exact intended CDF, z tests of the mean and the variance,
Bonferroni within a tensor and Holm across tensors.

KS on a grid. The empirical CDF is compared with the intended one at GRID_POINTS thresholds: the
intended quantiles j / GRID_POINTS, each rounded to the tensor's dtype. A stored value is the draw
rounded to the dtype, so P(stored <= t) for a representable t is F(the midpoint between t and the next
representable value): the test is exact for float16 and bfloat16 tensors too, whose rounding a KS test
against the continuous F rejects from a few million elements on. D, the largest gap at the thresholds, is at
most the full KS statistic, so its p-value (Kolmogorov's limit with Stephens' correction,
lambda = D (sqrt(n) + 0.12 + 0.11 / sqrt(n))) is conservative.

Moments, from MIN_MOMENT_ELEMENTS elements on. With m, s^2 and mu4 the intended mean, variance and
fourth central moment and S1, S2 the sums of (x - m) and (x - m)^2 over n elements: the mean's
z = S1 / (s sqrt(n)); the variance's z = (S2 / n - s^2) / sqrt((mu4 - s^4) / n), for a normal by
Wilson and Hilferty's cube root of the chi-square, z = ((S2 / (n s^2))^(1/3) - 1 + 2 / (9 n)) / sqrt(2 / (9 n)).
Both two-sided.

A tensor's p-value is Bonferroni's over its sub-tests, min(1, k min p); Holm's step-down procedure then
holds the chance that any correctly initialized tensor of the model is reported at `alpha`.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from initreg.checking.intended import Intended, raw_moments
from initreg.distributions import NormalDist, TruncatedNormalDist, UniformDist
from initreg.dtypes import numpy_dtype
from initreg.special import erfinv

GRID_POINTS = 2048  # intended quantiles j / GRID_POINTS at which the empirical CDF is compared
MIN_MOMENT_ELEMENTS = 1000  # fewer elements: KS only (the z tests' normal limit is not yet close)
KOLMOGOROV_TERMS = 100


@dataclass(frozen=True)
class SubTest:
    """One test of one component: its name, statistic and two-sided p-value."""

    name: str
    statistic: float
    p_value: float


@dataclass(frozen=True)
class Grid:
    """KS thresholds (ascending, representable in the dtype) and the intended P(stored value <= each)."""

    thresholds: Any  # float64 array
    probabilities: Any  # float64 array


def cdf(dist: Any, x: float) -> float:
    """The exact CDF of a normal, truncated normal or uniform distribution at x (erfc for the tails)."""
    if isinstance(dist, UniformDist):
        return min(1.0, max(0.0, (x - dist.low) / (dist.high - dist.low)))
    if isinstance(dist, TruncatedNormalDist):
        low, high = dist.bounds
        if x < low:
            return 0.0
        if x >= high:
            return 1.0
        z = (x - dist.mean) / dist.stddev
        return min(1.0, max(0.0, (_phi(z) - _phi(dist.low)) / dist.mass))
    return _phi((x - dist.mean) / dist.stddev)


def _phi(z: float) -> float:
    """The standard normal CDF, 0.5 erfc(-z / sqrt(2)) (accurate in the lower tail)."""
    return float(0.5 * math.erfc(-z / math.sqrt(2.0)))


def quantiles(dist: Any, levels: Any) -> Any:
    """The inverse CDF of a normal, truncated normal or uniform distribution at `levels` in (0, 1) (float64)."""
    import numpy as np

    if isinstance(dist, UniformDist):
        return dist.low + (dist.high - dist.low) * levels
    assert isinstance(dist, (NormalDist, TruncatedNormalDist))
    if isinstance(dist, TruncatedNormalDist):
        levels = _phi(dist.low) + levels * dist.mass
    return dist.mean + dist.stddev * math.sqrt(2.0) * erfinv(2.0 * levels - 1.0, np)


@lru_cache(maxsize=256)
def grid(dist: Any, dtype: str) -> Grid:
    """The KS thresholds of a random component's distribution in `dtype` (see the module docstring)."""
    import numpy as np

    points = quantiles(dist, np.arange(1, GRID_POINTS, dtype=np.float64) / GRID_POINTS)
    kind = numpy_dtype(dtype)
    stored = np.unique(points.astype(kind).astype(np.float64))
    stored = stored[np.isfinite(stored)]
    above = np.nextafter(stored.astype(kind), np.asarray(np.inf, dtype=kind)).astype(np.float64)
    midpoints = stored + (above - stored) / 2
    probabilities = np.array([cdf(dist, float(x)) for x in midpoints])
    return Grid(stored, probabilities)


def kolmogorov_p(d: float, n: int) -> float:
    """P(D_n >= d) by Kolmogorov's limit with Stephens' correction (Numerical Recipes' probks)."""
    root = math.sqrt(n)
    lam = d * (root + 0.12 + 0.11 / root)
    if lam < 0.2:
        return 1.0
    total = sum((1.0 if k % 2 else -1.0) * math.exp(-2.0 * k * k * lam * lam) for k in range(1, KOLMOGOROV_TERMS + 1))
    return min(1.0, max(0.0, 2.0 * total))


def normal_two_sided(z: float) -> float:
    """P(|Z| >= |z|) for a standard normal Z; 0 for a NaN z (sums that overflowed: far from any intent)."""
    return 0.0 if math.isnan(z) else math.erfc(abs(z) / math.sqrt(2.0))


def ks_test(component: Intended, dtype: str, counts: Any, n: int) -> SubTest:
    """KS on the grid: `counts[j]` values lie in (t_(j-1), t_j] (the last past every threshold)."""
    import numpy as np

    chosen = grid(component.dist, dtype)
    empirical = np.cumsum(counts[:-1]) / n
    d = float(np.max(np.abs(empirical - chosen.probabilities))) if len(chosen.thresholds) else 0.0
    return SubTest("ks", d, kolmogorov_p(d, n))


def moment_tests(component: Intended, n: int, centred_sum: float, centred_squares: float) -> list[SubTest]:
    """The mean's and the variance's z tests (module docstring), or [] below MIN_MOMENT_ELEMENTS."""
    if n < MIN_MOMENT_ELEMENTS:
        return []
    _, variance, fourth = raw_moments(component.dist)
    mean_z = centred_sum / math.sqrt(variance * n)
    ratio = centred_squares / (n * variance)
    if component.family == "normal":
        spread = 2.0 / (9.0 * n)
        variance_z = (ratio ** (1.0 / 3.0) - (1.0 - spread)) / math.sqrt(spread)
    else:
        variance_z = (ratio - 1.0) * variance / math.sqrt((fourth - variance * variance) / n)
    return [
        SubTest("mean", mean_z, normal_two_sided(mean_z)),
        SubTest("variance", variance_z, normal_two_sided(variance_z)),
    ]


def bonferroni(p_values: Sequence[float]) -> float:
    """min(1, k min p) over k p-values; 1 with none."""
    return min(1.0, len(p_values) * min(p_values)) if p_values else 1.0


def holm(p_values: Sequence[float], alpha: float) -> list[bool]:
    """Which hypotheses Holm's step-down procedure rejects at family-wise level `alpha`.

    In ascending order of p, the i-th (from 0) of m is rejected while p <= alpha / (m - i).
    """
    order = sorted(range(len(p_values)), key=lambda i: p_values[i])
    rejected = [False] * len(p_values)
    for rank, i in enumerate(order):
        if p_values[i] > alpha / (len(p_values) - rank):
            break
        rejected[i] = True
    return rejected
