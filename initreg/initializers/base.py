"""The Initializer base classes, and the shape and seed checks every initializer shares."""

from __future__ import annotations

import inspect
import math
import numbers
import random
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any, ClassVar

from initreg.backends.registry import get_backend
from initreg.distributions import Distribution, TruncatedNormalDist, UniformDist
from initreg.dtypes import FLOAT_DTYPES, standardize_dtype
from initreg.errors import InvalidArgumentError
from initreg.initializers.fans import compute_fans
from initreg.rng import Key, derive_key

if TYPE_CHECKING:
    from initreg.backends.base import Backend

Array = Any
Shape = tuple[int, ...]


MAX_RANK = 64  # NumPy's limit on the number of dimensions
MAX_ELEMENTS = 2**63 - 1  # the most elements an array can index (int64 sizes)


def magnitude(number: int) -> str:
    """`number` in digits, or as ~10^k once it is too long to read (or to print: Python caps int digits)."""
    return str(number) if number < 10**30 else f"~10^{int(math.log10(number))}"


def standardize_shape(shape: Any) -> Shape:
    """`shape` as a tuple of non-negative ints, of rank <= MAX_RANK and at most MAX_ELEMENTS elements.

    Anything else raises an error naming it.
    """
    if isinstance(shape, (str, bytes)) or not isinstance(shape, Sequence):
        raise InvalidArgumentError(f"shape must be a sequence of non-negative integers; got {shape!r}")
    if len(shape) > MAX_RANK:
        raise InvalidArgumentError(f"shape has rank {len(shape)}; valid: at most {MAX_RANK} dimensions (NumPy's limit)")
    dims = []
    for dim in shape:
        if isinstance(dim, bool) or not isinstance(dim, numbers.Integral):
            raise InvalidArgumentError(f"shape {_shape_text(shape)} has a non-integer dimension {dim!r}")
        if dim < 0:
            raise InvalidArgumentError(f"shape {_shape_text(shape)} has a negative dimension {dim}")
        dims.append(int(dim))
    size = math.prod(dims)
    if size > MAX_ELEMENTS:
        raise InvalidArgumentError(
            f"shape {_shape_text(dims)} has {magnitude(size)} elements; valid: at most 2^63 - 1 = {MAX_ELEMENTS}"
        )
    return tuple(dims)


def _shape_text(shape: Sequence[Any]) -> str:
    """A shape for a message, with huge integer dimensions abbreviated (see `magnitude`)."""
    dims = [magnitude(d) if isinstance(d, int) and d >= 10**30 else repr(d) for d in shape]
    return "(" + ", ".join(dims) + ("," if len(dims) == 1 else "") + ")"


def standardize_seed(seed: Any) -> int | None:
    """An int seed (a 0-d integer array too) or None; a bool, float, string or generator object is an error."""
    if seed is None:
        return None
    number = python_number(seed)
    if isinstance(number, int):
        return number
    raise InvalidArgumentError(f"seed must be an integer or None; got {seed!r}")


def python_number(value: Any) -> int | float | None:
    """A real scalar as a plain Python int or float, else None.

    A real scalar is a `numbers.Real` (NumPy scalars included) or a 0-d array of any library (NumPy, torch,
    JAX: whatever has shape () and .item()); integers stay int. Bools (Python, NumPy or 0-d bool arrays),
    complex numbers and arrays of any other shape (a 1-element 1-d array too) are not real scalars.
    """
    if not isinstance(value, numbers.Real) and _is_zero_dimensional(value):
        try:
            value = value.item()
        except (TypeError, ValueError, RuntimeError):  # a traced (JAX) or data-less (torch meta) array
            return None
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        return None
    return int(value) if isinstance(value, numbers.Integral) else float(value)


def _is_zero_dimensional(value: Any) -> bool:
    """Whether `value` is an array of shape () with an .item() method (NumPy, torch, JAX, ...)."""
    shape = getattr(value, "shape", None)
    return isinstance(shape, tuple) and shape == () and hasattr(value, "item")


def finite_number(name: str, value: Any) -> float:
    """`value`, a real scalar (see `python_number`), as a float; anything else or a non-finite one raises."""
    number = python_number(value)
    if number is None or not math.isfinite(float_or_inf(number)):
        raise InvalidArgumentError(
            f"Argument `{name}` must be a finite number. Received: {name}={value!r}; valid: a finite real "
            "scalar (a Python or NumPy number, or a 0-d array of any library; not a bool or a complex number)"
        )
    return float(number)


def float_or_inf(value: float) -> float:
    """float(value), or inf for an int too large for a float."""
    try:
        return float(value)
    except OverflowError:
        return math.inf


def non_negative(name: str, value: Any) -> float:
    """`value` as a float that must be finite and >= 0."""
    number = finite_number(name, value)
    if number < 0:
        raise InvalidArgumentError(f"Argument `{name}` must be >= 0. Received: {name}={value!r}")
    return number


def positive(name: str, value: Any) -> float:
    """`value` as a float that must be finite and > 0."""
    number = finite_number(name, value)
    if number <= 0:
        raise InvalidArgumentError(f"Argument `{name}` must be > 0. Received: {name}={value!r}")
    return number


class Initializer:
    """Makes an array of a given shape and dtype: ``init(shape, dtype=None)``.

    Subclasses implement `generate`, which receives the random-stream key explicitly, so that a tree
    of parameters can key each one by (seed, path) while a direct call uses (self.seed, "").

    `slices_independently` declares whether `generate_slice` makes any slice without making the whole
    tensor. False, the default, means a whole-tensor initializer: every element may depend on the whole
    tensor (a QR decomposition, a column's ranks), so a slice is cut from the whole tensor and callers
    that make a parameter in pieces (streaming, Dask, JAX shards, torch.distributed) make it once and
    cut their pieces from it. An initializer that sets it True must make ``generate_slice(index)`` equal
    to ``generate()[index]`` without the rest of the tensor; `ElementwiseInitializer` does.
    """

    # constructor arguments that take one of a few strings, by name: Hydra checks them (initreg.schemas)
    config_choices: ClassVar[Mapping[str, Sequence[str | None]]] = {}
    dtypes: ClassVar[tuple[str, ...]] = FLOAT_DTYPES  # the dtypes it can make
    slices_independently: bool = False  # see the class docstring; a class declares it (an Overlay per instance)

    def __call__(
        self, shape: Sequence[int], dtype: Any = None, *, layout: str | None = None, backend: Any = None
    ) -> Array:
        """An array of `shape` and `dtype` (float32 by default; one of `self.dtypes`) on `backend` (NumPy by default).

        `layout` names the weight layout fans are computed for: "keras" (the default,
        [..., in, out]) or "torch" ([out, in, ...]).
        """
        return self.generate(
            standardize_shape(shape), standardize_dtype(dtype, self.dtypes), key=self.key(),
            backend=get_backend(backend), layout=layout,
        )  # fmt: skip

    def key(self, path: str = "") -> Key:
        """The random-stream key of this initializer's own seed (unused by non-random ones)."""
        return derive_key(0, path)

    def generate(self, shape: Shape, dtype: str, *, key: Key, backend: Backend, layout: str | None = None) -> Array:
        """The whole tensor, drawn from the stream `key`; shape and dtype are already standardized."""
        raise NotImplementedError(f"{type(self).__name__} must implement generate()")

    def check(self, shape: Shape, dtype: str, layout: str | None = None) -> None:
        """Raises what `generate` would raise for these (standardized) arguments, without making any values.

        For callers that make values where an error cannot surface as itself (inside ``jax.pure_callback``).
        By default nothing is checked; initializers that refuse some shapes or layouts override it.
        """

    def generate_slice(
        self, shape: Shape, index: tuple[slice, ...], dtype: str, *, key: Key, backend: Backend,
        layout: str | None = None,
    ) -> Array:  # fmt: skip
        """tensor[index] of what `generate` gives: the whole tensor is made and sliced (see `slices_independently`)."""
        return self.generate(shape, dtype, key=key, backend=backend, layout=layout)[index]

    def fans(self, shape: Shape, layout: str | None = None) -> tuple[int, int]:
        """(fan_in, fan_out) of `shape` read in `layout` (initreg.initializers.fans.compute_fans)."""
        return compute_fans(shape, layout=layout)

    def target_std(self, shape: Shape, layout: str | None = None) -> float:
        """The standard deviation of the values this initializer gives for `shape`; NaN when it cannot tell."""
        return math.nan

    def moments(self, shape: Shape, layout: str | None = None) -> tuple[float, float] | None:
        """(mean, std) of the values this initializer gives for `shape`, or None when it cannot tell."""
        return None

    def get_config(self) -> dict[str, Any]:
        """The constructor arguments, JSON-serializable, such that from_config(get_config()) is equal."""
        return {}

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> Initializer:
        """An instance from a get_config() dict; unknown keys raise an error naming the valid ones."""
        parameters = inspect.signature(cls.__init__).parameters
        valid = [name for name in parameters if name != "self"]
        unknown = [key for key in config if key not in valid]
        if unknown:
            raise InvalidArgumentError(
                f"{cls.__name__} got unknown config key {unknown[0]!r}; valid: {', '.join(valid) or '(none)'}"
            )
        return cls(**config)

    def __repr__(self) -> str:
        arguments = ", ".join(f"{k}={v!r}" for k, v in self.get_config().items())
        return f"{type(self).__name__}({arguments})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Initializer) and type(self) is type(other) and self.get_config() == other.get_config()

    __hash__ = None  # type: ignore[assignment]


class RandomInitializer(Initializer):
    """An initializer drawing from the random stream.

    An int seed gives the same values on every call. seed=None draws a seed once, at construction,
    from Python's `random` (so `random.seed` makes it repeatable), and get_config() keeps None.
    A subclass either implements `generate` or gives `distribution_for`, whose draws `generate` makes
    the whole tensor of; it is whole-tensor unless it declares otherwise (see `ElementwiseInitializer`).
    """

    def __init__(self, seed: int | None = None) -> None:
        self._init_seed = standardize_seed(seed)
        self.seed = random.randrange(2**31) if self._init_seed is None else self._init_seed

    def key(self, path: str = "") -> Key:
        """The stream key of this initializer's own seed: derive_key(seed, path)."""
        return derive_key(self.seed, path)

    def get_config(self) -> dict[str, Any]:
        """{"seed": the seed as given}, so that None stays None."""
        return {"seed": self._init_seed}

    def distribution_for(self, shape: Shape, layout: str | None = None) -> Distribution:
        """What to draw for each element of a tensor of `shape`."""
        raise NotImplementedError(f"{type(self).__name__} must implement distribution_for() or generate()")

    def generate(self, shape: Shape, dtype: str, *, key: Key, backend: Backend, layout: str | None = None) -> Array:
        """The whole tensor: `backend` draws distribution_for(shape, layout) from the stream `key`."""
        return backend.draw(self.distribution_for(shape, layout), key, shape, dtype)


class ElementwiseInitializer(RandomInitializer):
    """A random initializer whose elements are independent draws from `distribution_for(shape, layout)`.

    Element i is a pure function of (key, i), so it slices independently: any slice is drawn on its own
    and equals that slice of the whole tensor. Its mean and std are the distribution's.
    """

    slices_independently = True

    def generate_slice(
        self, shape: Shape, index: tuple[slice, ...], dtype: str, *, key: Key, backend: Backend,
        layout: str | None = None,
    ) -> Array:  # fmt: skip
        """tensor[index], drawn on its own from the same stream: equal to generate(...)[index]."""
        return backend.draw_slice(self.distribution_for(shape, layout), key, shape, index, dtype)

    def target_std(self, shape: Shape, layout: str | None = None) -> float:
        """The std of distribution_for(shape, layout)."""
        return self.distribution_for(shape, layout).std

    def moments(self, shape: Shape, layout: str | None = None) -> tuple[float, float]:
        """(mean, std) of distribution_for(shape, layout) (see `distribution_mean`)."""
        dist = self.distribution_for(shape, layout)
        return distribution_mean(dist), dist.std


def distribution_mean(dist: Distribution) -> float:
    """The mean of `dist`: (low + high) / 2 for a uniform, the mean for a normal, and for a normal cut at
    [a, b] (in stddev units) mean + stddev (phi(a) - phi(b)) / (Phi(b) - Phi(a))."""
    if isinstance(dist, UniformDist):
        return (dist.low + dist.high) / 2
    if isinstance(dist, TruncatedNormalDist):
        density = (math.exp(-0.5 * dist.low**2) - math.exp(-0.5 * dist.high**2)) / math.sqrt(2 * math.pi)
        return dist.mean + dist.stddev * density / dist.mass
    return dist.mean
