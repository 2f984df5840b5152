"""What a planned parameter is meant to hold: one or more components, each a distribution or exact values.

A parameter's initializer is split into components: an Overlay (a rule's `index`) gives its base and
each part, every other initializer one component. Each component is

- ``normal``, ``truncated_normal`` or ``uniform``: its distribution (initreg.distributions), tested
  statistically;
- ``constant`` (Zeros, Ones, Constant) or ``identity``: exact values, compared element by element with
  what the initializer makes;
- ``orthogonal``: gain times a matrix with orthonormal rows or columns (checked as a whole);
- ``unknown``: anything else (a plugin's initializer that states no distribution): not checked.

Which elements a component owns is `owners`: for an Overlay, the last part whose region holds the
element, as in drawing.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from initreg.backends.registry import get_backend
from initreg.distributions import Distribution, NormalDist, TruncatedNormalDist, UniformDist
from initreg.initializers.base import Initializer, RandomInitializer, Shape
from initreg.initializers.constant import Constant, Identity
from initreg.initializers.orthogonal import Orthogonal, _matrix_shape
from initreg.initializers.overlay import Overlay, Part
from initreg.rng import derive_key

RANDOM_FAMILIES = ("normal", "truncated_normal", "uniform")
EXACT_FAMILIES = ("constant", "identity")


@dataclass(frozen=True)
class Intended:
    """One component: its family, the initializer that makes it, its distribution if random.

    mean and std are the distribution's (for exact families, NaN); low and high its support (infinite
    for a normal).
    """

    family: str
    initializer: Initializer
    layout: str | None
    dist: Distribution | None = None

    @property
    def mean(self) -> float:
        """The distribution's mean: m, (low + high) / 2, or m + s (phi(a) - phi(b)) / P truncated."""
        return raw_moments(self.dist)[0] if self.dist is not None else math.nan

    @property
    def std(self) -> float:
        """The distribution's std (initreg.distributions' formulas)."""
        return self.dist.std if self.dist is not None else math.nan

    @property
    def support(self) -> tuple[float, float]:
        """[low, high] in output units: infinite for a normal."""
        if isinstance(self.dist, UniformDist):
            return self.dist.low, self.dist.high
        if isinstance(self.dist, TruncatedNormalDist):
            return self.dist.bounds
        return -math.inf, math.inf

    def describe(self) -> dict[str, Any]:
        """Family and parameters as plain data: mean, std, bounds; a constant's value; a gain."""
        described: dict[str, Any] = {"family": self.family}
        if self.dist is not None:
            described.update(mean=self.mean, std=self.std)
            if self.family != "normal":
                described.update(low=self.support[0], high=self.support[1])
        elif isinstance(self.initializer, Constant):
            described["value"] = self.initializer.value
        elif isinstance(self.initializer, (Identity, Orthogonal)):
            described["gain"] = self.initializer.gain
        return described


def intended(initializer: Initializer, shape: Shape, layout: str | None) -> Intended:
    """The component `initializer` makes for a tensor of `shape` (not an Overlay: see `components`)."""
    if isinstance(initializer, Constant):
        return Intended("constant", initializer, layout)
    if isinstance(initializer, Identity):
        return Intended("identity", initializer, layout)
    if isinstance(initializer, Orthogonal):
        return Intended("orthogonal", initializer, layout)
    if isinstance(initializer, RandomInitializer):
        try:
            dist = initializer.distribution_for(shape, layout)
        except NotImplementedError:
            return Intended("unknown", initializer, layout)
        families = {NormalDist: "normal", TruncatedNormalDist: "truncated_normal", UniformDist: "uniform"}
        family = families.get(type(dist))
        if family is not None:
            return Intended(family, initializer, layout, dist)
    return Intended("unknown", initializer, layout)


def components(initializer: Initializer, shape: Shape, layout: str | None) -> list[Intended]:
    """The components of a parameter: an Overlay's base then its parts, else the initializer alone."""
    if not isinstance(initializer, Overlay):
        return [intended(initializer, shape, layout)]
    parts = [Part((), initializer.base), *initializer.parts]
    return [intended(part.initializer, shape, part.layout or layout) for part in parts]


def owners(initializer: Initializer, shape: Shape, index: tuple[slice, ...]) -> Any:
    """For each element of ``tensor[index]``, the number of the component that makes it (0: the base).

    None when the initializer is not an Overlay (component 0 owns every element).
    """
    if not isinstance(initializer, Overlay):
        return None
    numbered = Overlay(
        Constant(0), [Part(part.region, Constant(k), part.layout) for k, part in enumerate(initializer.parts, 1)]
    )
    return numbered.generate_slice(shape, index, "int32", key=derive_key(0, ""), backend=get_backend("numpy"))


def expected_values(component: Intended, shape: Shape, index: tuple[slice, ...], dtype: str) -> Any:
    """``tensor[index]`` as an exact component's initializer makes it, in `dtype` (NumPy)."""
    return component.initializer.generate_slice(
        shape, index, dtype, key=derive_key(0, ""), backend=get_backend("numpy"), layout=component.layout
    )


def matrix_shape(component: Intended, shape: Shape) -> tuple[int, int]:
    """(rows, cols) of the matrix an orthogonal component is read as (initreg.initializers.orthogonal)."""
    return _matrix_shape(shape, component.layout)


def raw_moments(dist: Distribution | None) -> tuple[float, float, float]:
    """(mean, variance, fourth central moment) of `dist`.

    normal: (m, s^2, 3 s^4); uniform on [l, h]: ((l + h) / 2, (h - l)^2 / 12, (h - l)^4 / 80); a normal
    truncated to [a, b] standard deviations: m + s E1, s^2 c2 and s^4 c4 from the moments E_k of the
    truncated standard normal, E_k = (k - 1) E_(k-2) + (a^(k-1) phi(a) - b^(k-1) phi(b)) / P.
    """
    if isinstance(dist, NormalDist):
        return dist.mean, dist.stddev**2, 3.0 * dist.stddev**4
    if isinstance(dist, UniformDist):
        width = dist.high - dist.low
        return (dist.low + dist.high) / 2, width**2 / 12.0, width**4 / 80.0
    if isinstance(dist, TruncatedNormalDist):
        a, b, mass = dist.low, dist.high, dist.mass

        def edge(power: int) -> float:
            return (_tail_term(a, power) - _tail_term(b, power)) / mass

        e1 = edge(0)
        e2 = 1.0 + edge(1)
        e3 = 2.0 * e1 + edge(2)
        e4 = 3.0 * e2 + edge(3)
        c2 = e2 - e1 * e1
        c4 = e4 - 4.0 * e1 * e3 + 6.0 * e1 * e1 * e2 - 3.0 * e1**4
        return dist.mean + dist.stddev * e1, dist.stddev**2 * c2, dist.stddev**4 * c4
    raise TypeError(f"no moments for {dist!r}")


def _tail_term(x: float, power: int) -> float:
    """x^power phi(x), 0 at an infinite x."""
    if math.isinf(x):
        return 0.0
    return x**power * math.exp(-0.5 * x * x) / math.sqrt(2.0 * math.pi)
