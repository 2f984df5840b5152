"""What a random initializer draws: a distribution and its exact standard deviation.

Initializers turn a shape into one of these; backends turn it into numbers through the random stream
(``initreg.rng``). Keeping the two apart is what lets every backend share the same math.
"""

from __future__ import annotations

import math
import sys
from dataclasses import dataclass

from initreg.errors import InvalidArgumentError

DEFAULT_CUTOFF = 2.0  # Keras's truncation: within two stddevs of the mean
STD_PRECISION = 1e-9  # the relative error allowed in a truncated normal's variance, as estimated below


@dataclass(frozen=True)
class UniformDist:
    """Uniform on [low, high); std = (high - low) / sqrt(12)."""

    low: float
    high: float

    @property
    def std(self) -> float:
        """(high - low) / sqrt(12)."""
        return (self.high - self.low) / math.sqrt(12.0)


@dataclass(frozen=True)
class NormalDist:
    """Normal with the given mean and stddev, not truncated."""

    mean: float
    stddev: float

    @property
    def std(self) -> float:
        """stddev."""
        return self.stddev


@dataclass(frozen=True)
class TruncatedNormalDist:
    """mean + stddev * Z, with Z a standard normal conditioned on [low, high] (in stddev units).

    Its std is stddev * sqrt(1 + (a phi(a) - b phi(b)) / P - ((phi(a) - phi(b)) / P)^2), where
    P = Phi(b) - Phi(a); for [-2, 2] that is stddev * 0.87962566103423978. `support`, when given, is
    the support in output units exactly as the caller wrote it (torch's absolute [a, b]), so that
    values are clipped to those numbers rather than to mean + low * stddev, which may round past them.
    """

    mean: float
    stddev: float
    low: float = -DEFAULT_CUTOFF
    high: float = DEFAULT_CUTOFF
    support: tuple[float, float] | None = None

    @property
    def std(self) -> float:
        """The std by the class docstring's formula; raises when it cannot be computed to STD_PRECISION."""
        a, b, mass = self.low, self.high, self.mass
        pdf_a, pdf_b = _standard_normal_pdf(a), _standard_normal_pdf(b)
        variance = 1.0 + (a * pdf_a - b * pdf_b) / mass - ((pdf_a - pdf_b) / mass) ** 2
        # The terms cancel for bounds close together or far in a tail: their size, over the variance left
        # and the mass, bounds the relative error (one float64 epsilon per unit, P's own error included).
        terms = 1.0 + abs(a * pdf_a / mass) + abs(b * pdf_b / mass) + ((pdf_a - pdf_b) / mass) ** 2
        if not variance * mass > terms * sys.float_info.epsilon / STD_PRECISION:
            raise InvalidArgumentError(
                f"the std of a normal truncated to [{a!r}, {b!r}] standard deviations cannot be computed to "
                f"{STD_PRECISION:g}: the bounds are too close together or too far in a tail"
            )
        return self.stddev * math.sqrt(variance)

    @property
    def bounds(self) -> tuple[float, float]:
        """The support in output units: `support`, else (mean + low * stddev, mean + high * stddev)."""
        if self.support is not None:
            return self.support
        return self.mean + self.low * self.stddev, self.mean + self.high * self.stddev

    @classmethod
    def between(cls, mean: float, stddev: float, a: float, b: float) -> TruncatedNormalDist:
        """N(mean, stddev^2) conditioned on the absolute interval [a, b], as torch's trunc_normal_."""
        return cls(mean, stddev, (a - mean) / stddev, (b - mean) / stddev, support=(a, b))

    @property
    def mass(self) -> float:
        """P = Phi(high) - Phi(low), the probability of [low, high] under the standard normal."""
        return 0.5 * (math.erf(self.high / math.sqrt(2.0)) - math.erf(self.low / math.sqrt(2.0)))


Distribution = UniformDist | NormalDist | TruncatedNormalDist


def _standard_normal_pdf(x: float) -> float:
    return math.exp(-0.5 * x * x) / math.sqrt(2.0 * math.pi)
