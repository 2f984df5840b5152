"""RandomNormal, RandomUniform and TruncatedNormal, with Keras's defaults.

- RandomNormal:    N(mean, stddev^2)
- RandomUniform:   U[minval, maxval)
- TruncatedNormal: N(mean, stddev^2) cut at mean +- 2 stddev (its std is 0.8796 stddev)
"""

from __future__ import annotations

from typing import Any

from initreg.distributions import Distribution, NormalDist, TruncatedNormalDist, UniformDist
from initreg.errors import InvalidArgumentError
from initreg.initializers.base import RandomInitializer, Shape, finite_number, non_negative
from initreg.registry import register


class _MeanStddev(RandomInitializer):
    """Shared arguments of the two normals: a mean and a (pre-truncation) standard deviation."""

    def __init__(self, mean: float = 0.0, stddev: float = 0.05, seed: int | None = None) -> None:
        self.mean = finite_number("mean", mean)
        self.stddev = non_negative("stddev", stddev)
        super().__init__(seed=seed)

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "mean": self.mean, "stddev": self.stddev}


@register("random_normal", aliases=["RandomNormal", "normal"])
class RandomNormal(_MeanStddev):
    """Normal with mean `mean` and standard deviation `stddev`."""

    def distribution_for(self, shape: Shape, layout: str | None = None) -> Distribution:
        return NormalDist(self.mean, self.stddev)


@register("truncated_normal", aliases=["TruncatedNormal"])
class TruncatedNormal(_MeanStddev):
    """Normal with mean `mean` and pre-truncation std `stddev`, kept within two stddevs of the mean."""

    def distribution_for(self, shape: Shape, layout: str | None = None) -> Distribution:
        return TruncatedNormalDist(self.mean, self.stddev)


@register("random_uniform", aliases=["RandomUniform", "uniform"])
class RandomUniform(RandomInitializer):
    """Uniform on [minval, maxval)."""

    def __init__(self, minval: float = -0.05, maxval: float = 0.05, seed: int | None = None) -> None:
        self.minval = finite_number("minval", minval)
        self.maxval = finite_number("maxval", maxval)
        if not self.minval < self.maxval:
            raise InvalidArgumentError(f"Argument `minval` must be below `maxval`. Received: {minval=}, {maxval=}")
        super().__init__(seed=seed)

    def distribution_for(self, shape: Shape, layout: str | None = None) -> Distribution:
        return UniformDist(self.minval, self.maxval)

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "minval": self.minval, "maxval": self.maxval}
