"""The NumPy backend, the default: the random stream on the CPU, bfloat16 through ml_dtypes.

Draws run the fused, multithreaded kernels of ``initreg.backends.fused_cpu`` when numba can be
imported (it is imported on the first draw, never by ``import initreg``), and the reference of
``initreg.rng`` otherwise. The choice depends only on numba being importable, never on a tensor's size,
so a tensor and each of its slices always come from the same code.
"""

from __future__ import annotations

from types import ModuleType
from typing import Any

from initreg import rng
from initreg.backends.base import Backend
from initreg.distributions import Distribution
from initreg.dtypes import numpy_dtype
from initreg.lazy import once

Array = Any


@once
def fused_kernels() -> ModuleType | None:
    """``initreg.backends.fused_cpu``, or None when numba cannot be imported (imported once, under a lock)."""
    try:
        from initreg.backends import fused_cpu
    except ImportError:
        return None
    return fused_cpu


class NumpyBackend(Backend):
    """NumPy arrays on the CPU."""

    def dtype(self, name: str) -> Any:
        """The NumPy dtype for a canonical name; bfloat16 comes from ml_dtypes."""
        return numpy_dtype(name)

    def cast(self, array: Array, dtype: str) -> Array:
        """`array` as `dtype`; the array itself when it already is (draws return fresh arrays)."""
        return array.astype(self.dtype(dtype), copy=False)

    def draw(self, dist: Distribution, key: rng.Key, shape: tuple[int, ...], dtype: str) -> Array:
        """The whole tensor through the fused CPU kernels, or the NumPy reference without numba."""
        fused = fused_kernels()
        if fused is None:
            return super().draw(dist, key, shape, dtype)
        return self.cast(fused.draw(dist, key, shape, dtype), dtype)

    def draw_slice(
        self, dist: Distribution, key: rng.Key, shape: tuple[int, ...], index: tuple[slice, ...], dtype: str
    ) -> Array:
        """tensor[index] through the fused CPU kernels, or the NumPy reference without numba."""
        fused = fused_kernels()
        if fused is None:
            return super().draw_slice(dist, key, shape, index, dtype)
        return self.cast(fused.draw_slice(dist, key, shape, index, dtype), dtype)

    def words(self, key: rng.Key, start: int, count: int) -> Array:
        """Words of the main stream through the fused CPU kernels, or the NumPy reference without numba."""
        fused = fused_kernels()
        if fused is None:
            return super().words(key, start, count)
        return fused.words(key, start, count)


backend = NumpyBackend("numpy", "numpy")
