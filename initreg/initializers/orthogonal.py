"""Orthogonal(gain): a (semi-)orthogonal matrix from the QR of a standard normal one (Saxe et al., 2014).

The weight is read as a (rows, cols) matrix: in the "keras" layout [..., cols], rows = prod(shape[:-1]),
as Keras does; in the "torch" layout [out, in, ...], rows = out and cols = prod(shape[1:]), as torch's
orthogonal_ does (so weight.view(out, -1) is the orthogonal matrix). A ~ N(0, 1) of shape (max, min) of
(rows, cols) is drawn from the stream, A = QR, Q's columns are multiplied by sign(diag(R)) so that Q is
Haar-distributed, transposed when rows < cols, reshaped row-major to `shape` and scaled by gain.

Every element depends on the whole matrix, so Orthogonal is a whole-tensor initializer: a slice is cut
from the whole tensor (``slices_independently`` is False).
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

from initreg.distributions import NormalDist
from initreg.dtypes import compute_dtype
from initreg.errors import InvalidArgumentError, choices
from initreg.initializers.base import Array, RandomInitializer, Shape, finite_number
from initreg.initializers.fans import LAYOUTS
from initreg.initializers.registry import register
from initreg.memory import elementwise_peak_bytes, itemsize
from initreg.rng import Key

if TYPE_CHECKING:
    from initreg.backends.base import Backend


def _matrix_shape(shape: Shape, layout: str | None) -> tuple[int, int]:
    """(rows, cols) of the matrix a weight of `shape` is read as in `layout` (see the module docstring)."""
    layout = layout or "keras"
    if layout not in LAYOUTS:
        raise InvalidArgumentError(f"unknown layout {layout!r}; valid: {choices(LAYOUTS)}")
    if len(shape) < 2:
        raise InvalidArgumentError(
            f"The tensor to initialize must be at least two-dimensional. Received: shape={shape} of rank {len(shape)}."
        )
    if layout == "torch":
        return shape[0], math.prod(shape[1:])
    return math.prod(shape[:-1]), shape[-1]


@register("orthogonal", aliases=["Orthogonal", "OrthogonalInitializer"])
class Orthogonal(RandomInitializer):
    """gain times a random matrix with orthonormal rows or columns, reshaped to the weight's shape."""

    def __init__(self, gain: float = 1.0, seed: int | None = None) -> None:
        self.gain = finite_number("gain", gain)
        super().__init__(seed=seed)

    def check(self, shape: Shape, dtype: str, layout: str | None = None) -> None:
        """Raises for a rank below 2 or an unknown layout, as `generate` does."""
        _matrix_shape(shape, layout)

    def generate(self, shape: Shape, dtype: str, *, key: Key, backend: Backend, layout: str | None = None) -> Array:
        """gain * Q of the QR of a (max, min) standard normal matrix, as the module docstring says; zeros if empty."""
        rows, cols = _matrix_shape(shape, layout)
        xp = backend.xp
        if rows * cols == 0:
            return backend.cast(xp.zeros(shape, dtype=backend.compute_dtype(dtype)), dtype)
        flat_shape = (max(rows, cols), min(rows, cols))
        normal = backend.draw(NormalDist(0.0, 1.0), key, flat_shape, compute_dtype(dtype))
        q, r = xp.linalg.qr(normal)
        diagonal = xp.sum(r * xp.eye(r.shape[0], dtype=r.dtype), axis=0)  # diag(R) with core ops only
        q = q * xp.sign(diagonal)
        if rows < cols:
            q = q.T
        return backend.cast(self.gain * xp.reshape(q, shape), dtype)

    def peak_bytes(self, shape: Shape, dtype: str, layout: str | None = None, fused: bool = True) -> int:
        """Bytes `generate` holds at its peak on NumPy: the larger of the normal matrix's draw and the QR phase.

        The QR phase holds at most (6 m n + 3 n^2) c + m n o, o only if `dtype` is not the compute
        dtype: m, n = max, min of (rows, cols), c and o bytes per element of the compute dtype and of
        `dtype` (the normal matrix, QR's copies, Q, Q sign(diag R) and its gain multiple; R, the identity
        and their product; the cast). The draw is element-wise (initreg.memory.elementwise_peak_bytes).
        """
        rows, cols = _matrix_shape(shape, layout)
        big, small = max(rows, cols), min(rows, cols)
        compute = compute_dtype(dtype)
        cast = 0 if compute == dtype else big * small * itemsize(dtype)
        qr = (6 * big * small + 3 * small * small) * itemsize(compute) + cast
        return max(qr, elementwise_peak_bytes((big, small), compute, fused))

    def target_std(self, shape: Shape, layout: str | None = None) -> float:
        """|gain| / sqrt(max(rows, cols)), the root mean square of the entries of gain * Q."""
        rows, cols = _matrix_shape(shape, layout)
        return abs(self.gain) / math.sqrt(max(rows, cols, 1))

    def moments(self, shape: Shape, layout: str | None = None) -> tuple[float, float]:
        """(0, target_std): Q's sign-corrected columns are symmetric in law, so every entry has mean 0."""
        return 0.0, self.target_std(shape, layout)

    def get_config(self) -> dict[str, Any]:
        """Keras's config: seed and gain."""
        return {**super().get_config(), "gain": self.gain}
