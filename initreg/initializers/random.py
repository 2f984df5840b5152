"""RandomNormal, RandomUniform and TruncatedNormal, with Keras's defaults.

- RandomNormal:    N(mean, stddev^2)
- RandomUniform:   U[minval, maxval)
- TruncatedNormal: N(mean, stddev^2) cut at mean +- cutoff stddev (cutoff 2 as in Keras: its std is then
                   0.8796 stddev), or at the absolute bounds [a, b] when both are given (torch's
                   trunc_normal_(tensor, mean, std, a, b)); stddev is the std before truncation either way
"""

from __future__ import annotations

from typing import Any

from initreg.distributions import DEFAULT_CUTOFF, Distribution, NormalDist, TruncatedNormalDist, UniformDist
from initreg.errors import InvalidArgumentError
from initreg.initializers.base import ElementwiseInitializer, Shape, finite_number, non_negative, positive
from initreg.initializers.registry import register


class _MeanStddev(ElementwiseInitializer):
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
        """N(mean, stddev^2), whatever the shape."""
        return NormalDist(self.mean, self.stddev)


@register("truncated_normal", aliases=["TruncatedNormal"])
class TruncatedNormal(_MeanStddev):
    """Normal with mean `mean` and pre-truncation std `stddev`, cut at mean +- cutoff stddev or at [a, b]."""

    def __init__(
        self,
        mean: float = 0.0,
        stddev: float = 0.05,
        seed: int | None = None,
        *,
        cutoff: float = DEFAULT_CUTOFF,
        a: float | None = None,
        b: float | None = None,
    ) -> None:
        super().__init__(mean, stddev, seed)
        self.cutoff = positive("cutoff", cutoff)
        self.a, self.b = _absolute_bounds(a, b, self.mean, self.stddev, self.cutoff)

    def distribution_for(self, shape: Shape, layout: str | None = None) -> Distribution:
        """N(mean, stddev^2) cut at [a, b] when they are given, else at mean +- cutoff stddev."""
        if self.a is not None and self.b is not None:
            return TruncatedNormalDist.between(self.mean, self.stddev, self.a, self.b)
        return TruncatedNormalDist(self.mean, self.stddev, -self.cutoff, self.cutoff)

    def get_config(self) -> dict[str, Any]:
        """Keras's config; cutoff, a and b are added only when they are not the defaults."""
        config = super().get_config()
        if self.cutoff != DEFAULT_CUTOFF:
            config["cutoff"] = self.cutoff
        if self.a is not None:
            config.update(a=self.a, b=self.b)
        return config


def _absolute_bounds(
    a: float | None, b: float | None, mean: float, stddev: float, cutoff: float
) -> tuple[float | None, float | None]:
    """(a, b) as floats after checking them, or (None, None) when truncation is by cutoff."""
    if a is None and b is None:
        return None, None
    if a is None or b is None:
        raise InvalidArgumentError(f"Arguments `a` and `b` must be given together. Received: {a=!r}, {b=!r}")
    if cutoff != DEFAULT_CUTOFF:
        raise InvalidArgumentError(
            f"give either `cutoff` (bounds relative to the mean) or `a` and `b` (absolute bounds), not both. "
            f"Received: {cutoff=}, {a=!r}, {b=!r}"
        )
    low, high = finite_number("a", a), finite_number("b", b)
    if not low < high:
        raise InvalidArgumentError(f"Argument `a` must be below `b`. Received: {a=!r}, {b=!r}")
    if stddev <= 0:
        raise InvalidArgumentError(f"Argument `stddev` must be > 0 with absolute bounds. Received: {stddev=!r}")
    if not TruncatedNormalDist.between(mean, stddev, low, high).mass > 0:
        raise InvalidArgumentError(
            f"[a, b] = [{a!r}, {b!r}] lies so far in the tail of N({mean!r}, {stddev!r}^2) that its probability "
            "is 0 in double precision; move the bounds towards the mean or widen stddev"
        )
    return low, high


@register("random_uniform", aliases=["RandomUniform", "uniform"])
class RandomUniform(ElementwiseInitializer):
    """Uniform on [minval, maxval)."""

    def __init__(self, minval: float = -0.05, maxval: float = 0.05, seed: int | None = None) -> None:
        self.minval = finite_number("minval", minval)
        self.maxval = finite_number("maxval", maxval)
        if not self.minval < self.maxval:
            raise InvalidArgumentError(f"Argument `minval` must be below `maxval`. Received: {minval=}, {maxval=}")
        super().__init__(seed=seed)

    def distribution_for(self, shape: Shape, layout: str | None = None) -> Distribution:
        """U[minval, maxval), whatever the shape."""
        return UniformDist(self.minval, self.maxval)

    def get_config(self) -> dict[str, Any]:
        """Keras's config: seed, minval and maxval."""
        return {**super().get_config(), "minval": self.minval, "maxval": self.maxval}
