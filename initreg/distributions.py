"""What a random initializer draws: a distribution and its exact standard deviation.

Initializers turn a shape into one of these; backends turn it into numbers through the random stream
(``initreg.rng``). Keeping the two apart is what lets every backend share the same math.
"""

from __future__ import annotations

import math
from dataclasses import dataclass


@dataclass(frozen=True)
class UniformDist:
    """Uniform on [low, high); std = (high - low) / sqrt(12)."""

    low: float
    high: float

    @property
    def std(self) -> float:
        return (self.high - self.low) / math.sqrt(12.0)


@dataclass(frozen=True)
class NormalDist:
    """Normal with the given mean and stddev, not truncated."""

    mean: float
    stddev: float

    @property
    def std(self) -> float:
        return self.stddev


@dataclass(frozen=True)
class TruncatedNormalDist:
    """mean + stddev * Z, with Z a standard normal conditioned on [low, high] (in stddev units).

    Its std is stddev * sqrt(1 + (a phi(a) - b phi(b)) / P - ((phi(a) - phi(b)) / P)^2), where
    P = Phi(b) - Phi(a); for [-2, 2] that is stddev * 0.87962566103423978.
    """

    mean: float
    stddev: float
    low: float = -2.0
    high: float = 2.0

    @property
    def std(self) -> float:
        a, b = self.low, self.high
        mass = 0.5 * (math.erf(b / math.sqrt(2.0)) - math.erf(a / math.sqrt(2.0)))
        pdf_a, pdf_b = _standard_normal_pdf(a), _standard_normal_pdf(b)
        variance = 1.0 + (a * pdf_a - b * pdf_b) / mass - ((pdf_a - pdf_b) / mass) ** 2
        return self.stddev * math.sqrt(variance)

    @property
    def bounds(self) -> tuple[float, float]:
        """The support in output units: (mean + low * stddev, mean + high * stddev)."""
        return self.mean + self.low * self.stddev, self.mean + self.high * self.stddev


Distribution = UniformDist | NormalDist | TruncatedNormalDist


def _standard_normal_pdf(x: float) -> float:
    return math.exp(-0.5 * x * x) / math.sqrt(2.0 * math.pi)
