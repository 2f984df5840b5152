"""torch.nn.init's own initializers by name, with torch's defaults, drawn from initreg's stream.

- calculate_gain(nonlinearity, param): torch's gains, 1 (linear, conv*, sigmoid), 5/3 (tanh), sqrt(2)
  (relu), sqrt(2 / (1 + slope^2)) (leaky_relu, slope 0.01 by default) and 3/4 (selu)
- kaiming_normal / kaiming_uniform (a, mode, nonlinearity): std = gain / sqrt(fan), untruncated normal or
  U(+-sqrt(3) std); xavier_normal / xavier_uniform (gain): std = gain sqrt(2 / (fan_in + fan_out))
  These are VarianceScaling(scale = gain^2) in the "torch" layout [out, in, *kernel] unless the caller
  names another, with strict fans: a tensor of rank < 2 raises, as torch's does.
- trunc_normal (mean, std, a, b): N(mean, std^2) conditioned on the absolute bounds [a, b] (-2, 2 by default)
- dirac (groups): W[g out_per_group + d, d, *centre] = 1 for d < min(out_per_group, in), centre = k // 2 on
  every kernel axis, zeros elsewhere (torch layout; the "keras" layout [*kernel, in, out] stores it transposed)
- sparse (sparsity, std): N(0, std^2) on a 2-D (rows, cols) weight, with ceil(sparsity rows) entries of each
  column set to zero; the rows are those with the smallest ranks of the column in the auxiliary stream 1
  (its uint32 words, ties broken by row), so that they form a uniformly random subset as torch's randperm does

Asked for a tensor with no elements, each of them warns as torch's kaiming_* do ("Initializing zero-element
tensors is a no-op", a UserWarning) and returns the empty array.
"""

from __future__ import annotations

import math
import numbers
import warnings
from collections.abc import Mapping, Sequence
from typing import Any, ClassVar

import numpy as np

from initreg import rng
from initreg.backends.base import Backend
from initreg.distributions import NormalDist
from initreg.errors import InvalidArgumentError, choices
from initreg.initializers import Initializer, RandomInitializer, TruncatedNormal, VarianceScaling
from initreg.initializers.base import Array, Shape, finite_number, non_negative
from initreg.rng import Key
from initreg_extra.conv import conv_layout

LINEAR_FUNCTIONS = (
    "linear", "conv1d", "conv2d", "conv3d", "conv_transpose1d", "conv_transpose2d", "conv_transpose3d", "sigmoid",
)  # fmt: skip
NONLINEARITIES = (*LINEAR_FUNCTIONS, "tanh", "relu", "leaky_relu", "selu")
KAIMING_MODES = ("fan_in", "fan_out")
AUXILIARY_STREAM = 1  # the Philox stream of draws other than the values themselves
ZERO_ELEMENT_WARNING = "Initializing zero-element tensors is a no-op"  # torch.nn.init's own words
MAX_ROWS = 2**32  # Sparse ranks (word, row) pairs as int64 (word - 2^31) 2^32 + row


def calculate_gain(nonlinearity: str, param: float | None = None) -> float:
    """torch.nn.init.calculate_gain: the gain that keeps activations' variance for `nonlinearity`."""
    if nonlinearity in LINEAR_FUNCTIONS:
        return 1.0
    if nonlinearity == "tanh":
        return 5.0 / 3
    if nonlinearity == "relu":
        return math.sqrt(2.0)
    if nonlinearity == "leaky_relu":
        if param is not None and (isinstance(param, bool) or not isinstance(param, (int, float))):
            raise InvalidArgumentError(f"negative_slope {param!r} is not a valid number")
        slope = 0.01 if param is None else param
        try:
            return math.sqrt(2.0 / (1 + slope**2))
        except OverflowError:
            raise InvalidArgumentError(f"negative_slope {param!r} is too large: its square overflows a float") from None
    if nonlinearity == "selu":
        return 3.0 / 4
    raise InvalidArgumentError(f"Unsupported nonlinearity {nonlinearity!r}; valid: {choices(NONLINEARITIES)}")


def warn_if_zero_element(shape: Shape) -> None:
    """torch.nn.init's UserWarning when `shape` has no elements, pointing at the initializer's caller."""
    if 0 in shape:
        warnings.warn(ZERO_ELEMENT_WARNING, UserWarning, stacklevel=4)


class _WarnsOnZeroElements(Initializer):
    """Warns as torch does (`warn_if_zero_element`) once it has made a whole tensor or a slice of one."""

    def generate(self, shape: Shape, dtype: str, *, key: Key, backend: Backend, layout: str | None = None) -> Array:
        made = super().generate(shape, dtype, key=key, backend=backend, layout=layout)
        warn_if_zero_element(shape)
        return made

    def generate_slice(
        self, shape: Shape, index: tuple[slice, ...], dtype: str, *, key: Key, backend: Backend,
        layout: str | None = None,
    ) -> Array:  # fmt: skip
        made = super().generate_slice(shape, index, dtype, key=key, backend=backend, layout=layout)
        warn_if_zero_element(shape)
        return made


class _TorchFans(_WarnsOnZeroElements, VarianceScaling):
    """A VarianceScaling whose fans default to the torch layout and raise below rank 2, as torch's do."""

    def fans(self, shape: Shape, layout: str | None = None) -> tuple[int, int]:
        return super().fans(shape, layout or "torch")


class _Kaiming(_TorchFans):
    DISTRIBUTION = "untruncated_normal"
    config_choices: ClassVar[Mapping[str, Sequence[str | None]]] = {
        "mode": KAIMING_MODES,
        "nonlinearity": NONLINEARITIES,
    }

    def __init__(
        self,
        a: float = 0.0,
        mode: str = "fan_in",
        nonlinearity: str = "leaky_relu",
        seed: int | None = None,
        input_axes: Sequence[int] | None = None,
        output_axes: Sequence[int] | None = None,
    ) -> None:
        if mode not in KAIMING_MODES:
            raise InvalidArgumentError(f"Mode {mode!r} not supported; valid: {choices(KAIMING_MODES)}")
        self.a, self.nonlinearity = finite_number("a", a), nonlinearity
        gain = calculate_gain(nonlinearity, self.a)
        super().__init__(gain**2, mode, self.DISTRIBUTION, seed, input_axes, output_axes, strict_fans=True)

    def get_config(self) -> dict[str, Any]:
        return {
            "a": self.a, "mode": self.mode, "nonlinearity": self.nonlinearity, "seed": self._init_seed,
            "input_axes": self.input_axes, "output_axes": self.output_axes,
        }  # fmt: skip


class KaimingNormal(_Kaiming):
    """torch's kaiming_normal_: N(0, gain^2 / fan), gain = calculate_gain(nonlinearity, a)."""


class KaimingUniform(_Kaiming):
    """torch's kaiming_uniform_: U(+-gain sqrt(3 / fan)), gain = calculate_gain(nonlinearity, a)."""

    DISTRIBUTION = "uniform"


class _Xavier(_TorchFans):
    DISTRIBUTION = "untruncated_normal"

    def __init__(
        self,
        gain: float = 1.0,
        seed: int | None = None,
        input_axes: Sequence[int] | None = None,
        output_axes: Sequence[int] | None = None,
    ) -> None:
        self.gain = finite_number("gain", gain)
        try:
            scale = self.gain**2
        except OverflowError:
            scale = math.inf
        if not 0 < scale < math.inf:
            raise InvalidArgumentError(f"Argument `gain` must be nonzero, with a finite square. Received: {gain=!r}")
        super().__init__(scale, "fan_avg", self.DISTRIBUTION, seed, input_axes, output_axes, strict_fans=True)

    def get_config(self) -> dict[str, Any]:
        return {
            "gain": self.gain, "seed": self._init_seed, "input_axes": self.input_axes, "output_axes": self.output_axes
        }  # fmt: skip


class XavierNormal(_Xavier):
    """torch's xavier_normal_: N(0, gain^2 2 / (fan_in + fan_out))."""


class XavierUniform(_Xavier):
    """torch's xavier_uniform_: U(+-gain sqrt(6 / (fan_in + fan_out)))."""

    DISTRIBUTION = "uniform"


class TruncNormal(_WarnsOnZeroElements, TruncatedNormal):
    """torch's trunc_normal_(mean=0, std=1, a=-2, b=2): N(mean, std^2) conditioned on [a, b]."""

    def __init__(
        self, mean: float = 0.0, std: float = 1.0, a: float = -2.0, b: float = 2.0, seed: int | None = None
    ) -> None:
        super().__init__(mean, std, seed, a=a, b=b)

    def get_config(self) -> dict[str, Any]:
        return {"mean": self.mean, "std": self.stddev, "a": self.a, "b": self.b, "seed": self._init_seed}


def _conv_shape(shape: Shape, layout: str | None, name: str) -> tuple[Shape, bool]:
    """`shape` in the torch layout (out, in, *kernel), and whether it came in the keras layout."""
    if conv_layout(shape, layout, "torch", name) == "torch":
        return shape, False
    return (shape[-1], shape[-2], *shape[:-2]), True


class Dirac(Initializer):
    """torch's dirac_: an identity convolution, per group (see the module docstring). Deterministic.

    Whole-tensor (the default declaration): a slice is cut from the whole kernel.
    """

    def __init__(self, groups: int = 1) -> None:
        if isinstance(groups, bool) or not isinstance(groups, numbers.Integral) or groups < 1:
            raise InvalidArgumentError(f"Argument `groups` must be a positive integer. Received: {groups=!r}")
        self.groups: int = int(groups)

    def kernel(self, shape: Shape, layout: str | None) -> np.ndarray:
        """The kernel as float64 NumPy, in the layout asked for."""
        torch_shape, transposed = _conv_shape(shape, layout, "Dirac")
        if torch_shape[0] % self.groups:
            raise InvalidArgumentError(
                f"dim 0 (out channels) must be divisible by groups; received out={torch_shape[0]}, groups={self.groups}"
            )
        per_group = torch_shape[0] // self.groups
        kernel = np.zeros(torch_shape)
        centre = tuple(size // 2 for size in torch_shape[2:])
        for group in range(self.groups):
            for d in range(min(per_group, torch_shape[1])):
                index = (group * per_group + d, d, *centre)
                kernel[index] = 1.0
        return np.transpose(kernel, (*range(2, kernel.ndim), 1, 0)) if transposed else kernel

    def generate(self, shape: Shape, dtype: str, *, key: Key, backend: Backend, layout: str | None = None) -> Array:
        kernel = self.kernel(shape, layout)
        warn_if_zero_element(shape)
        return backend.cast(backend.xp.asarray(kernel, dtype=backend.compute_dtype(dtype)), dtype)

    def target_std(self, shape: Shape, layout: str | None = None) -> float:
        return float(np.std(self.kernel(shape, layout)))

    def get_config(self) -> dict[str, Any]:
        return {"groups": self.groups}


class Sparse(RandomInitializer):
    """torch's sparse_: N(0, std^2) with ceil(sparsity rows) zeros in each column (see the module docstring).

    Whole-tensor: a column's zeros depend on the whole column, so a slice is cut from the whole tensor.
    """

    slices_independently = False

    def __init__(self, sparsity: float = 0.1, std: float = 0.01, seed: int | None = None) -> None:
        self.sparsity = finite_number("sparsity", sparsity)
        if not 0.0 <= self.sparsity <= 1.0:
            raise InvalidArgumentError(f"Argument `sparsity` must be in [0, 1]. Received: {sparsity=!r}")
        self.std = non_negative("std", std)
        super().__init__(seed=seed)

    @staticmethod
    def _matrix(shape: Shape) -> tuple[int, int]:
        if len(shape) != 2:
            raise InvalidArgumentError(
                f"Sparse supports only tensors with 2 dimensions; received shape={shape} of rank {len(shape)}"
            )
        if shape[0] > MAX_ROWS:
            raise InvalidArgumentError(f"Sparse supports at most 2^32 = {MAX_ROWS} rows; received shape={shape}")
        return shape[0], shape[1]

    def zeros_per_column(self, shape: Shape) -> int:
        """ceil(sparsity * rows), as torch."""
        return math.ceil(self.sparsity * self._matrix(shape)[0])

    def distribution_for(self, shape: Shape, layout: str | None = None) -> NormalDist:
        return NormalDist(0.0, self.std)

    def generate(self, shape: Shape, dtype: str, *, key: Key, backend: Backend, layout: str | None = None) -> Array:
        rows, cols = self._matrix(shape)
        warn_if_zero_element(shape)
        xp = backend.xp
        values = backend.draw(self.distribution_for(shape), key, shape, dtype)
        words = xp.astype(rng.words_range(key, 0, rows * cols, xp, stream=AUXILIARY_STREAM), xp.int64)
        row = xp.reshape(xp.arange(rows, dtype=xp.int64), (rows, 1))
        # (word, row) as one int64 in word order, ties broken by row whatever the sort: exact for rows <= 2^32
        distinct = (xp.reshape(words, shape) - 2**31) * 2**32 + row
        ranks = xp.argsort(xp.argsort(distinct, axis=0), axis=0)  # each column's ranks
        return xp.where(ranks < self.zeros_per_column(shape), xp.zeros_like(values), values)

    def target_std(self, shape: Shape, layout: str | None = None) -> float:
        rows, _ = self._matrix(shape)
        return self.std * math.sqrt(1.0 - self.zeros_per_column(shape) / rows) if rows else 0.0

    def moments(self, shape: Shape, layout: str | None = None) -> tuple[float, float]:
        """(0, target_std): zeros and a symmetric normal have mean 0."""
        return 0.0, self.target_std(shape, layout)

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "sparsity": self.sparsity, "std": self.std}
