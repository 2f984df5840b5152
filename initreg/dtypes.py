"""Floating dtypes by name, and the bounds a clipped value keeps after a cast to one of them."""

from __future__ import annotations

from typing import Any

from initreg.errors import InvalidArgumentError, choices

FLOAT_DTYPES = ("float16", "bfloat16", "float32", "float64")
DEFAULT_DTYPE = "float32"


def standardize_dtype(dtype: Any) -> str:
    """Returns the canonical name ('float32', ...) of a floating dtype given by name or dtype object.

    None gives float32. Integer, bool and complex dtypes raise, as tf.keras does: initial weights
    are floating point.
    """
    if dtype is None:
        return DEFAULT_DTYPE
    name = _dtype_name(dtype)
    if name in FLOAT_DTYPES:
        return name
    raise InvalidArgumentError(
        f"dtype {dtype!r} is not a floating dtype initreg can produce; valid: {choices(FLOAT_DTYPES)}"
    )


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
    """The precision the random stream is evaluated in: float64 for float64, else float32."""
    return "float64" if dtype == "float64" else "float32"


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
