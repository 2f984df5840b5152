"""The NumPy backend, the default: the random stream on the CPU, bfloat16 through ml_dtypes.

Draws run the reference of ``initreg.rng`` or the fused, multithreaded kernels of
``initreg.backends.fused_cpu``; the two give the same bits for every distribution and dtype
(``tests/test_reference_bits.py``), so the choice between them is one of speed alone, and a tensor and
each of its slices are the same numbers whichever drew them.

Loading the kernels (importing numba, then reading the compiled code from its cache) costs a process
about as much as the reference drawing REFERENCE_WORK elements (``bench/bench_startup.py`` measures
both). A process therefore draws with the reference until the work it has given the reference, each
draw's elements plus REFERENCE_CALL for the call, reaches REFERENCE_WORK, and then loads the kernels
and keeps them: a process of small draws (the command on its default model) never imports numba, one
draw of REFERENCE_WORK elements or more loads the kernels at once, and many small draws adding up to more
cost at most about twice (2.4 times for float64 normals) what the better choice in hindsight would have.
"""

from __future__ import annotations

import math
import threading
from types import ModuleType
from typing import Any

from initreg import rng
from initreg.backends.base import Backend
from initreg.distributions import Distribution
from initreg.dtypes import numpy_dtype

Array = Any

# Measured with bench/bench_startup.py (2 cores): a reference draw costs what 260 (float64 normal) to 860
# (float32 uniform) more elements would; loading the kernels, 0.6 CPU s, what 0.76M (float64 normal) to
# 4.4M (float32 uniform) elements would. REFERENCE_WORK is below every float32 break-even and within 1.4x
# of every float64 one.
REFERENCE_CALL = 1 << 9
REFERENCE_WORK = 1 << 20

_lock = threading.Lock()
_reference_work = [0]  # element-equivalents the reference has been given in this process
_imported: list[ModuleType | None] = []  # the kernels once imported (None without numba)


def fused_kernels(elements: int | None = None, calls: int = 1, *, counted: bool = True) -> ModuleType | None:
    """``initreg.backends.fused_cpu``, or None (the reference), under a lock; None whenever numba cannot be imported.

    Without `elements`: the kernels, imported now if they are not yet. With `elements`, the caller's coming
    work (`calls` draws of `elements` elements in all, counted as elements + REFERENCE_CALL calls): the
    kernels if already imported, or once this work takes the reference's total in this process to
    REFERENCE_WORK; else None, and the work is counted as the reference's, unless not `counted` (a caller
    that only asks, whose draws through this backend then count themselves).
    """
    if _imported:  # once known, read without the lock (a list append is atomic)
        return _imported[0]
    with _lock:
        if not _imported:
            if elements is not None:
                work = _reference_work[0] + elements + calls * REFERENCE_CALL
                if work < REFERENCE_WORK:
                    if counted:
                        _reference_work[0] = work
                    return None
            try:
                from initreg.backends import fused_cpu
            except ImportError:
                _imported.append(None)
            else:
                _imported.append(fused_cpu)
        return _imported[0]


def loaded_kernels() -> ModuleType | None:
    """The fused kernels if this process has imported them, else None; never imports them."""
    return _imported[0] if _imported else None


class NumpyBackend(Backend):
    """NumPy arrays on the CPU."""

    def dtype(self, name: str) -> Any:
        """The NumPy dtype for a canonical name; bfloat16 comes from ml_dtypes."""
        return numpy_dtype(name)

    def cast(self, array: Array, dtype: str) -> Array:
        """`array` as `dtype`; the array itself when it already is (draws return fresh arrays)."""
        return array.astype(self.dtype(dtype), copy=False)

    def draw(self, dist: Distribution, key: rng.Key, shape: tuple[int, ...], dtype: str) -> Array:
        """The whole tensor through the fused CPU kernels or the reference (see the module's docstring)."""
        fused = fused_kernels(math.prod(shape))
        if fused is None:
            return super().draw(dist, key, shape, dtype)
        return self.cast(fused.draw(dist, key, shape, dtype), dtype)

    def draw_slice(
        self, dist: Distribution, key: rng.Key, shape: tuple[int, ...], index: tuple[slice, ...], dtype: str
    ) -> Array:
        """tensor[index] through the fused CPU kernels or the reference (see the module's docstring)."""
        fused = fused_kernels(rng.sliced_size(shape, index))
        if fused is None:
            return super().draw_slice(dist, key, shape, index, dtype)
        return self.cast(fused.draw_slice(dist, key, shape, index, dtype), dtype)

    def words(self, key: rng.Key, start: int, count: int) -> Array:
        """Words of the main stream through the fused CPU kernels or the reference (see the module's docstring)."""
        fused = fused_kernels(count)
        if fused is None:
            return super().words(key, start, count)
        return fused.words(key, start, count)


backend = NumpyBackend("numpy", "numpy")
