"""VarianceScaling and its six presets (Lecun, Glorot, He; normal and uniform).

For a weight with fans (fan_in, fan_out), n is fan_in, fan_out, (fan_in + fan_out)/2 or
sqrt(fan_in fan_out) by `mode`, and with s = scale / max(1, n):

- truncated_normal:   N(0, sigma^2) cut at +-cutoff sigma (cutoff 2 by default, as in Keras),
                      sigma = sqrt(s) / c(cutoff) with c(cutoff) the std of a standard normal truncated to
                      [-cutoff, cutoff] (c(2) = 0.87962566103423978), so that the std after truncation is sqrt(s)
- untruncated_normal: N(0, s)
- uniform:            U(-limit, limit), limit = sqrt(3 s)
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Mapping, Sequence
from typing import Any, ClassVar

from initreg.distributions import DEFAULT_CUTOFF, Distribution, NormalDist, TruncatedNormalDist, UniformDist
from initreg.errors import InvalidArgumentError, choices
from initreg.initializers.base import ElementwiseInitializer, Shape, float_or_inf, positive, python_number
from initreg.initializers.fans import LAYOUTS as LAYOUTS  # re-exported for the modules that import them here
from initreg.initializers.fans import as_axes, check_axes
from initreg.initializers.fans import compute_fans as compute_fans
from initreg.initializers.registry import register

TRUNCATED_STD_FACTOR = 0.87962566103423978  # std of a standard normal truncated to [-2, 2]
MODES = ("fan_in", "fan_out", "fan_avg", "fan_geo_avg")
DISTRIBUTIONS = ("truncated_normal", "untruncated_normal", "uniform")


def truncated_std_factor(cutoff: float) -> float:
    """c(cutoff): the std of a standard normal truncated to [-cutoff, cutoff]; Keras's own literal at 2."""
    if cutoff == DEFAULT_CUTOFF:
        return TRUNCATED_STD_FACTOR
    return TruncatedNormalDist(0.0, 1.0, -cutoff, cutoff).std


def jax_rank_message(rank: int) -> str:
    """JAX's refusal of a weight of rank < 2 with its default in_axis, word for word."""
    return (
        f"Can't compute input and output sizes of a {rank}-dimensional weights tensor with default in_axis. "
        "Must be at least 2D or specify in_axis explicitly."
    )


def _warn_if_one_sided(input_axes: list[int] | None, output_axes: list[int] | None) -> None:
    """A UserWarning when only one of input_axes and output_axes is given: Keras then ignores both."""
    if (input_axes is None) != (output_axes is None):
        given, missing = ("input_axes", "output_axes") if output_axes is None else ("output_axes", "input_axes")
        warnings.warn(
            f"{given}={input_axes if output_axes is None else output_axes} without {missing}: one-sided axes "
            f"are ignored for the fans, as Keras does (they are still checked against each shape's rank); "
            "give both to set the fans",
            UserWarning,
            stacklevel=3,
        )


@register("variance_scaling", aliases=["VarianceScaling"])
class VarianceScaling(ElementwiseInitializer):
    """Keras's VarianceScaling, plus JAX's fan_geo_avg mode (see the module docstring for the math)."""

    config_choices: ClassVar[Mapping[str, Sequence[str | None]]] = {
        "mode": MODES,
        "distribution": (*DISTRIBUTIONS, "normal"),  # "normal" is Keras's old name for truncated_normal
    }

    def __init__(
        self,
        scale: float = 1.0,
        mode: str = "fan_in",
        distribution: str = "truncated_normal",
        seed: int | None = None,
        input_axes: Sequence[int] | None = None,
        output_axes: Sequence[int] | None = None,
        *,
        cutoff: float = DEFAULT_CUTOFF,
        strict_fans: bool = False,
    ) -> None:
        number = python_number(scale)
        if number is None or not 0.0 < float_or_inf(number) < math.inf:
            raise InvalidArgumentError(  # Keras's words first: its users match on them
                f"Argument `scale` must be positive float. Received: scale={scale!r}; valid: a finite real "
                "scalar > 0 (a Python or NumPy number, or a 0-d array)"
            )
        if mode not in MODES:
            raise InvalidArgumentError(f"Invalid `mode` argument: {mode!r}; valid: {choices(MODES)}")
        distribution = distribution.lower() if isinstance(distribution, str) else distribution
        if distribution == "normal":
            distribution = "truncated_normal"
        if distribution not in DISTRIBUTIONS:
            raise InvalidArgumentError(
                f"Invalid `distribution` argument: {distribution!r}; valid: {choices(DISTRIBUTIONS)}"
            )
        if not isinstance(strict_fans, bool):
            raise InvalidArgumentError(f"Argument `strict_fans` must be True or False. Received: {strict_fans=!r}")
        self.strict_fans = strict_fans
        self.cutoff = positive("cutoff", cutoff)
        if self.cutoff != DEFAULT_CUTOFF and distribution != "truncated_normal":
            raise InvalidArgumentError(
                f"Argument `cutoff` applies only to distribution='truncated_normal'. Received: {cutoff=!r} with "
                f"distribution={distribution!r}"
            )
        self.scale = float(number)
        self.mode = mode
        self.distribution = distribution
        self.input_axes = as_axes("input_axes", input_axes)
        self.output_axes = as_axes("output_axes", output_axes)
        _warn_if_one_sided(self.input_axes, self.output_axes)
        super().__init__(seed=seed)

    def fans(self, shape: Shape, layout: str | None = None) -> tuple[int, int]:
        """(fan_in, fan_out) for `shape`: the constructor's axes if both are set, else `layout`'s (one-sided
        axes are still checked against the rank).

        With strict_fans, a shape of rank < 2 raises, as torch does, instead of Keras's (1, 1) and (n, n).
        """
        if self.strict_fans and len(shape) < 2:
            raise InvalidArgumentError(  # torch's and JAX's words: their users match on them
                f"Fan in and fan out can not be computed for a tensor with fewer than 2 dimensions "
                f"(strict_fans=True, as in torch); {jax_rank_message(len(shape))}; received shape={shape} of "
                f"rank {len(shape)}; valid: a shape of rank >= 2"
            )
        if self.input_axes is not None and self.output_axes is not None:
            return compute_fans(shape, self.input_axes, self.output_axes)
        check_axes(shape, self.input_axes, "input_axes")  # one side alone: ignored (see __init__), but checked
        check_axes(shape, self.output_axes, "output_axes")
        return compute_fans(shape, layout=layout)

    def check(self, shape: Shape, dtype: str, layout: str | None = None) -> None:
        """Raises what `fans` raises: strict_fans on rank < 2, axes outside the shape, an unknown layout."""
        self.fans(shape, layout)

    def variance(self, shape: Shape, layout: str | None = None) -> float:
        """The target variance s = scale / max(1, n), n the fan chosen by `mode`."""
        fan_in, fan_out = self.fans(shape, layout)
        fan = {
            "fan_in": fan_in,
            "fan_out": fan_out,
            "fan_avg": (fan_in + fan_out) / 2.0,
            "fan_geo_avg": math.sqrt(fan_in * fan_out),
        }[self.mode]
        return self.scale / max(1.0, fan)

    def distribution_for(self, shape: Shape, layout: str | None = None) -> Distribution:
        """What to draw, with s = variance(shape, layout), by `distribution`:

        truncated_normal: sigma = sqrt(s) / c(cutoff), cut at +-cutoff sigma (c the std of a standard normal
        truncated there); untruncated_normal: N(0, s); uniform: U(-sqrt(3 s), sqrt(3 s)).
        """
        variance = self.variance(shape, layout)
        if self.distribution == "truncated_normal":
            sigma = math.sqrt(variance) / truncated_std_factor(self.cutoff)
            return TruncatedNormalDist(0.0, sigma, -self.cutoff, self.cutoff)
        if self.distribution == "untruncated_normal":
            return NormalDist(0.0, math.sqrt(variance))
        limit = math.sqrt(3.0 * variance)
        return UniformDist(-limit, limit)

    def get_config(self) -> dict[str, Any]:
        """Keras's config; cutoff and strict_fans are added only when they are not the defaults."""
        return self._with_extras(
            {
                **super().get_config(),
                "scale": self.scale,
                "mode": self.mode,
                "distribution": self.distribution,
                "input_axes": self.input_axes,
                "output_axes": self.output_axes,
            }
        )

    def _with_extras(self, config: dict[str, Any]) -> dict[str, Any]:
        if self.cutoff != DEFAULT_CUTOFF:
            config = {**config, "cutoff": self.cutoff}
        return {**config, "strict_fans": True} if self.strict_fans else config


class _Preset(VarianceScaling):
    """A VarianceScaling with fixed scale, mode and distribution; seed, axes, cutoff and strict_fans are config."""

    SCALE = 1.0
    MODE = "fan_in"
    DISTRIBUTION = "truncated_normal"

    def __init__(
        self,
        seed: int | None = None,
        input_axes: Sequence[int] | None = None,
        output_axes: Sequence[int] | None = None,
        *,
        cutoff: float = DEFAULT_CUTOFF,
        strict_fans: bool = False,
    ) -> None:
        super().__init__(
            self.SCALE, self.MODE, self.DISTRIBUTION, seed, input_axes, output_axes,
            cutoff=cutoff, strict_fans=strict_fans,
        )  # fmt: skip

    def get_config(self) -> dict[str, Any]:
        return self._with_extras(
            {"seed": self._init_seed, "input_axes": self.input_axes, "output_axes": self.output_axes}
        )


@register("lecun_normal", aliases=["LecunNormal"])
class LecunNormal(_Preset):
    """Truncated normal with std sqrt(1 / fan_in) (Klambauer et al., 2017)."""


@register("lecun_uniform", aliases=["LecunUniform"])
class LecunUniform(_Preset):
    """Uniform on +-sqrt(3 / fan_in)."""

    DISTRIBUTION = "uniform"


@register("glorot_normal", aliases=["GlorotNormal"])
class GlorotNormal(_Preset):
    """Truncated normal with std sqrt(2 / (fan_in + fan_out)) (Glorot and Bengio, 2010)."""

    MODE = "fan_avg"


@register("glorot_uniform", aliases=["GlorotUniform"])
class GlorotUniform(_Preset):
    """Uniform on +-sqrt(6 / (fan_in + fan_out)) (Glorot and Bengio, 2010)."""

    MODE = "fan_avg"
    DISTRIBUTION = "uniform"


@register("he_normal", aliases=["HeNormal"])
class HeNormal(_Preset):
    """Truncated normal with std sqrt(2 / fan_in) (He et al., 2015)."""

    SCALE = 2.0


@register("he_uniform", aliases=["HeUniform"])
class HeUniform(_Preset):
    """Uniform on +-sqrt(6 / fan_in) (He et al., 2015)."""

    SCALE = 2.0
    DISTRIBUTION = "uniform"
