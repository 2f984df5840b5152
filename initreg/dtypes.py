"""Dtypes by name (floating ones for every initializer, integer and bool ones for constants), and the bounds a
clipped value keeps after a cast to a floating one."""

from __future__ import annotations

from typing import Any

from initreg.errors import InvalidArgumentError, choices

FLOAT_DTYPES = ("float16", "bfloat16", "float32", "float64")
EXACT_DTYPES = ("bool", "int8", "int16", "int32", "int64", "uint8", "uint16", "uint32", "uint64")
DEFAULT_DTYPE = "float32"


def standardize_dtype(dtype: Any, valid: tuple[str, ...] = FLOAT_DTYPES) -> str:
    """Returns the canonical name ('float32', 'int8', ...) of a dtype in `valid`, given by name or dtype object.

    None gives float32. `valid` is what the initializer can make: floating dtypes for all of them, integer and
    bool dtypes too for the constants (as Keras allows, for quantized weights); complex dtypes raise.
    """
    if dtype is None:
        return DEFAULT_DTYPE
    name = _dtype_name(dtype)
    if name in valid:
        return name
    if name in EXACT_DTYPES:
        raise InvalidArgumentError(
            f"dtype {name!r} is not a floating dtype, and only the constants (Zeros, Ones, Constant) make "
            f"integer or bool values; valid here: {choices(valid)}"
        )
    raise InvalidArgumentError(f"dtype {name!r} is not a dtype initreg can produce; valid: {choices(valid)}")


def _dtype_name(dtype: Any) -> str:
    """'float32' for "float32", np.float32, np.dtype("float32"), jnp.float32 or torch.float32."""
    if isinstance(dtype, str):
        return dtype
    import numpy as np

    try:
        return str(np.dtype(dtype).name)
    except TypeError:
        return str(dtype).removeprefix("torch.")


def compute_dtype(dtype: str) -> str:
    """The precision values are evaluated in: float64 for float64, an integer or bool dtype itself, else float32."""
    return dtype if dtype == "float64" or dtype in EXACT_DTYPES else "float32"


def numpy_dtype(dtype: str) -> Any:
    """The NumPy dtype for a canonical name; bfloat16 comes from ml_dtypes."""
    import numpy as np

    if dtype == "bfloat16":
        import ml_dtypes

        return np.dtype(ml_dtypes.bfloat16)
    return np.dtype(dtype)


def inner_bounds(low: float, high: float, dtype: str, *, high_open: bool = False) -> tuple[float, float]:
    """The tightest [low', high'] inside [low, high] (or [low, high) with high_open) exact in `dtype`.

    A value clipped to these and then cast to `dtype` stays inside the original interval: rounding
    is monotonic and both ends are representable.
    """
    import numpy as np

    kind = numpy_dtype(dtype)
    lo, hi = np.asarray(low, dtype=kind), np.asarray(high, dtype=kind)
    if float(lo) < low:
        lo = np.nextafter(lo, np.asarray(np.inf, dtype=kind))
    if float(hi) > high or (high_open and float(hi) == high):
        hi = np.nextafter(hi, np.asarray(-np.inf, dtype=kind))
    return float(lo), float(hi)
