"""The Backend base class: an array namespace plus the reference random stream drawn through it."""

from __future__ import annotations

import importlib
from typing import Any

from initreg import rng
from initreg.distributions import Distribution
from initreg.dtypes import compute_dtype
from initreg.errors import InvalidArgumentError
from initreg.lazy import locked_cached_property

Array = Any


class Backend:
    """An array library that initreg creates parameters with.

    `module` names an array-API namespace (numpy, cupy, array_api_strict, ...); it is imported only
    when first used, so listing backends imports none of them. Subclasses add fast paths by
    overriding `draw`/`draw_slice`; they must give what the reference gives.
    """

    def __init__(self, name: str, module: str) -> None:
        self.name = name
        self.module = module

    def __repr__(self) -> str:
        return f"<initreg backend {self.name!r} ({self.module})>"

    def unavailable_reason(self) -> str | None:
        """None when the backend can run here, else why it cannot (shown to the user)."""
        try:
            importlib.import_module(self.module)
        except ImportError as error:
            return f"cannot import {self.module}: {error}"
        return None

    @locked_cached_property
    def xp(self) -> Any:
        """The array namespace (imported on first use, under a lock)."""
        return importlib.import_module(self.module)

    def dtype(self, name: str) -> Any:
        """The namespace's dtype for a canonical float name."""
        found = getattr(self.xp, name, None)
        if found is None:
            raise InvalidArgumentError(f"dtype {name!r} is not supported by the {self.name!r} backend")
        return found

    def compute_dtype(self, dtype: str) -> Any:
        """The namespace dtype that values of `dtype` are computed in (float32, or float64)."""
        return self.dtype(compute_dtype(dtype))

    def cast(self, array: Array, dtype: str) -> Array:
        """`array` converted to the canonical float dtype `dtype`."""
        return self.xp.astype(array, self.dtype(dtype))

    def draw(self, dist: Distribution, key: rng.Key, shape: tuple[int, ...], dtype: str) -> Array:
        """A whole tensor of samples of `dist` from the stream keyed by `key`."""
        return self.cast(rng.draw(dist, key, shape, dtype, self.xp), dtype)

    def draw_slice(
        self, dist: Distribution, key: rng.Key, shape: tuple[int, ...], index: tuple[slice, ...], dtype: str
    ) -> Array:
        """tensor[index] of what `draw` gives, computed on its own."""
        return self.cast(rng.draw_slice(dist, key, shape, index, dtype, self.xp), dtype)

    def words(self, key: rng.Key, start: int, count: int) -> Array:
        """Raw uint32 words of the main stream (for tests across backends)."""
        return rng.words_range(key, start, count, self.xp)

    def to_numpy(self, array: Array) -> Any:
        """A NumPy copy (or view) of an array of this backend."""
        import numpy as np

        return np.asarray(array)
