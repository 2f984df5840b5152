"""The NumPy backend, the default: the reference stream on the CPU, bfloat16 through ml_dtypes."""

from __future__ import annotations

from typing import Any

from initreg.backends.base import Backend
from initreg.dtypes import numpy_dtype


class NumpyBackend(Backend):
    """NumPy arrays on the CPU."""

    def dtype(self, name: str) -> Any:
        return numpy_dtype(name)


backend = NumpyBackend("numpy", "numpy")
