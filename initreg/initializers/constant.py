"""Zeros, Ones, Constant(value) (an array value broadcasts) and Identity(gain) (gain * eye, 2-D).

The constants make integer and bool dtypes too, as Keras's do (quantized weights, integer state): a value
is cast as Keras casts it, toward zero for integers and nonzero -> True for bool; a value that does not
fit the integer dtype raises (values are finite: the constructor checks).
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any, ClassVar

from initreg.backends.registry import get_backend
from initreg.dtypes import EXACT_DTYPES, FLOAT_DTYPES, compute_dtype
from initreg.errors import InvalidArgumentError, choices
from initreg.initializers.base import Array, Initializer, Shape, finite_number, python_number
from initreg.initializers.registry import register
from initreg.memory import itemsize
from initreg.rng import Key

if TYPE_CHECKING:
    from initreg.backends.base import Backend

TENSOR_CLASSES = ("__tensor__", "__numpy__")  # the class names Keras serializes a tensor under


def _tensor_value(value: Any) -> Any:
    """A Keras-serialized tensor as its number or nested list; any other value as given.

    Keras writes {"class_name": "__tensor__" or "__numpy__", "config": {"value": nested list, "dtype": name}};
    a malformed one raises naming what is wrong and what is valid.
    """
    if not isinstance(value, dict) or value.get("class_name") not in TENSOR_CLASSES:
        return value
    kind, config = value["class_name"], value.get("config")
    if not isinstance(config, dict) or "value" not in config:
        raise InvalidArgumentError(
            f"a serialized {kind} needs a 'config' dict with a 'value' (a number or a nested list of numbers) and "
            f"a 'dtype' name. Received: value={value!r}"
        )
    dtype = config.get("dtype")
    if dtype is not None and dtype not in FLOAT_DTYPES + EXACT_DTYPES:
        raise InvalidArgumentError(
            f"the 'dtype' of a serialized {kind} is {dtype!r}; valid: {choices(FLOAT_DTYPES + EXACT_DTYPES)}"
        )
    tensor = config["value"]
    if not isinstance(tensor, (list, int, float)):  # bools too: a 0-d bool tensor's value is one
        raise InvalidArgumentError(
            f"the 'value' of a serialized {kind} must be a number or a nested list of numbers. Received: {tensor!r}"
        )
    return tensor


def _plain_value(value: Any) -> Any:
    """`value` in plain Python: a real scalar (see `python_number`) as an int or float, an array as a nested list.

    Anything else is returned as given, for `_check_finite_numbers` to judge.
    """
    number = python_number(value)
    if number is not None:
        return number
    return value.tolist() if hasattr(value, "tolist") else value


def _exact_value(value: Any, dtype: str) -> Any:
    """`value` cast to the integer or bool `dtype` (toward zero; nonzero is True), as nested Python values."""
    import numpy as np

    array = np.asarray(value)
    if dtype != "bool" and array.size:
        info = np.iinfo(dtype)
        low, high = (float(np.trunc(v)) if array.dtype.kind == "f" else int(v) for v in (array.min(), array.max()))
        if low < int(info.min) or high > int(info.max):  # exact: Python compares floats and ints exactly
            raise InvalidArgumentError(
                f"Constant value {value!r} does not fit {dtype}; valid: {int(info.min)} .. {int(info.max)}"
            )
    return array.astype(dtype).tolist()


def _broadcasts(source: Shape, target: Shape) -> bool:
    """Whether an array of shape `source` broadcasts to exactly `target`."""
    if len(source) > len(target):
        return False
    return all(s in (1, t) for s, t in zip(source[::-1], target[::-1], strict=False))


def _check_finite_numbers(value: Any) -> None:
    """Raises unless `value` is a finite number or a (nested, rectangular) list of them."""
    if isinstance(value, (int, float)):  # bools too, as in Keras, where they cast to 0 and 1
        finite_number("value", float(value) if isinstance(value, bool) else value)
        return
    import numpy as np

    try:
        array = np.asarray(value)
    except ValueError as error:  # ragged nested lists
        raise InvalidArgumentError(
            f"Argument `value` must be a number or an array of numbers. Received: value={value!r}"
        ) from error
    if array.dtype.kind not in "biuf":
        raise InvalidArgumentError(
            f"Argument `value` must be a number or an array of numbers. Received: value={value!r}"
        )
    if not np.isfinite(array).all():
        raise InvalidArgumentError(f"Argument `value` must hold finite numbers. Received: value={value!r}")


@register("constant", aliases=["Constant"])
class Constant(Initializer):
    """Every element equals `value`; an array value is broadcast to the shape."""

    dtypes: ClassVar[tuple[str, ...]] = FLOAT_DTYPES + EXACT_DTYPES
    slices_independently = True  # a slice is copied from a broadcast view

    def __init__(self, value: Any = 0.0, *, broadcast: bool = True) -> None:
        """`broadcast=False` makes only the value's own shape (what ``initreg.get(array)`` gives, as Keras's get)."""
        if not isinstance(broadcast, bool):
            raise InvalidArgumentError(f"Argument `broadcast` must be True or False. Received: {broadcast=!r}")
        self.value = _plain_value(_tensor_value(value))
        _check_finite_numbers(self.value)
        self.broadcast = broadcast

    def check(self, shape: Shape, dtype: str, layout: str | None = None) -> None:
        """Raises, as `generate` does, for a value that does not fit `dtype` or does not make `shape`."""
        self._broadcast(shape, dtype, get_backend("numpy"))

    def generate(self, shape: Shape, dtype: str, *, key: Key, backend: Backend, layout: str | None = None) -> Array:
        """The value broadcast to `shape`, a fresh array of `dtype` (integers and bools cast as Keras casts)."""
        return backend.cast(backend.xp.asarray(self._broadcast(shape, dtype, backend), copy=True), dtype)

    def generate_slice(
        self, shape: Shape, index: tuple[slice, ...], dtype: str, *, key: Key, backend: Backend,
        layout: str | None = None,
    ) -> Array:  # fmt: skip
        """tensor[index], copied from a broadcast view: the whole tensor is never made."""
        return backend.cast(backend.xp.asarray(self._broadcast(shape, dtype, backend)[index], copy=True), dtype)

    def _broadcast(self, shape: Shape, dtype: str, backend: Backend) -> Array:
        """The value broadcast to `shape` in the compute precision of `dtype` (a read-only view)."""
        xp = backend.xp
        value = _exact_value(self.value, dtype) if dtype in EXACT_DTYPES else self.value
        value = xp.asarray(value, dtype=backend.compute_dtype(dtype))
        if not self.broadcast and tuple(value.shape) != shape:
            raise InvalidArgumentError(  # Keras's words first: its users match on them
                f"Expected `shape` to be {tuple(value.shape)} for direct tensor as initializer. Received "
                f"shape={shape}: this initializer holds an array of shape {tuple(value.shape)}; it cannot make "
                f"shape {shape} (Constant(value) broadcasts instead)"
            )
        if not _broadcasts(tuple(value.shape), shape):  # checked here: libraries raise different errors
            raise InvalidArgumentError(
                f"Constant value of shape {tuple(value.shape)} does not broadcast to shape {shape}"
            )
        return xp.broadcast_to(value, shape)

    def target_std(self, shape: Shape, layout: str | None = None) -> float:
        """The std of the broadcast value over the tensor (0 for an empty shape)."""
        return self.moments(shape, layout)[1]

    def moments(self, shape: Shape, layout: str | None = None) -> tuple[float, float]:
        """(mean, std) of the broadcast value over the tensor ((0, 0) for an empty shape)."""
        values = self._broadcast(shape, "float64", get_backend("numpy"))
        return (float(values.mean()), float(values.std())) if math.prod(shape) else (0.0, 0.0)

    def get_config(self) -> dict[str, Any]:
        """Keras's config; broadcast is added only when it is False."""
        return {"value": self.value} if self.broadcast else {"value": self.value, "broadcast": False}


@register("zeros", aliases=["Zeros", "zero"])
class Zeros(Constant):
    """Every element is 0."""

    def __init__(self) -> None:
        super().__init__(0.0)

    def get_config(self) -> dict[str, Any]:
        """{}: Zeros takes no arguments."""
        return {}


@register("ones", aliases=["Ones", "one"])
class Ones(Constant):
    """Every element is 1."""

    def __init__(self) -> None:
        super().__init__(1.0)

    def get_config(self) -> dict[str, Any]:
        """{}: Ones takes no arguments."""
        return {}


@register("identity", aliases=["Identity", "IdentityInitializer"])
class Identity(Initializer):
    """gain * eye(rows, cols) for a 2-D shape, square or not. Unlike Keras, get_config keeps the gain."""

    def __init__(self, gain: float = 1.0) -> None:
        self.gain = finite_number("gain", gain)

    def check(self, shape: Shape, dtype: str, layout: str | None = None) -> None:
        """Raises unless `shape` is 2-D, in Keras's words."""
        if len(shape) != 2:
            raise InvalidArgumentError(
                "Identity matrix initializer can only be used for 2D matrices. "
                f"Received: shape={shape} of rank {len(shape)}."
            )

    def generate(self, shape: Shape, dtype: str, *, key: Key, backend: Backend, layout: str | None = None) -> Array:
        """gain * eye(rows, cols); a shape of another rank than 2 raises."""
        self.check(shape, dtype, layout)
        xp = backend.xp
        return backend.cast(self.gain * xp.eye(shape[0], shape[1], dtype=backend.compute_dtype(dtype)), dtype)

    def peak_bytes(self, shape: Shape, dtype: str, layout: str | None = None, fused: bool = True) -> int:
        """Bytes `generate` holds at its peak on NumPy: 2 r c + r o, o only if `dtype` is not the compute dtype.

        r elements, c bytes each in the compute dtype (the identity and its gain multiple), o in `dtype`
        for the cast.
        """
        size, compute = math.prod(shape), compute_dtype(dtype)
        return 2 * size * itemsize(compute) + (0 if compute == dtype else size * itemsize(dtype))

    def target_std(self, shape: Shape, layout: str | None = None) -> float:
        """|gain| sqrt(s (1 - s)), s = min(rows, cols) / (rows cols) the diagonal's share (0 unless 2-D, non-empty)."""
        share = _diagonal_share(shape)
        return abs(self.gain) * math.sqrt(share * (1.0 - share))

    def moments(self, shape: Shape, layout: str | None = None) -> tuple[float, float]:
        """(gain s, target_std), s the diagonal's share (see `target_std`): a share s of the values is gain."""
        return self.gain * _diagonal_share(shape), self.target_std(shape, layout)

    def get_config(self) -> dict[str, Any]:
        """{"gain": gain}, which Keras's config drops."""
        return {"gain": self.gain}


def _diagonal_share(shape: Shape) -> float:
    """min(rows, cols) / (rows cols): the share of an identity matrix's elements on its diagonal (0 unless 2-D)."""
    size = math.prod(shape)
    return min(shape) / size if len(shape) == 2 and size else 0.0
