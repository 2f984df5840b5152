"""STFT: Keras 3's kernel initializer for short-time Fourier transform convolutions (keras.initializers.STFT).

For a kernel of shape (T, C, K), K = n_fft / 2 + 1 frequency bins (n_fft = 2 (K - 1)), every channel c gets

    W[t, c, k] = w[t] f(-2 pi t k / n_fft) / s,   f = cos (side "real") or sin (side "imag"),

with w the window (scipy.signal.get_window(window, T, fftbins=periodic) for a name, the values given,
or 1 for None) and s = sqrt(sum w^2) (scaling "density"), sum |w| ("spectrum") or 1 (None). The phase
is reduced exactly, as (t k mod n_fft) / n_fft, before the cosine, so values are accurate to the dtype.
Deterministic: no random stream is used.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any, ClassVar

import numpy as np

from initreg.backends.base import Backend
from initreg.dtypes import compute_dtype
from initreg.errors import InvalidArgumentError, choices
from initreg.initializers import Initializer
from initreg.initializers.base import Array, Shape
from initreg.rng import Key

SIDES = ("real", "imag")
SCALINGS = ("density", "spectrum", None)


def _window_values(window: str | list[float] | None, length: int, periodic: bool) -> np.ndarray | None:
    """The window as float64 values of `length`, or None for no window."""
    if window is None:
        return None
    if isinstance(window, str):
        import scipy.signal

        try:
            return np.asarray(scipy.signal.get_window(window, length, fftbins=periodic), dtype=np.float64)
        except ValueError as error:
            raise InvalidArgumentError(f"unknown window {window!r} for scipy.signal.get_window: {error}") from error
    values = np.asarray(window, dtype=np.float64)
    if values.shape != (length,):
        raise InvalidArgumentError(
            f"The shape of `window` must be equal to [frame_length]. Received: window shape={values.shape}, "
            f"frame_length={length}"
        )
    return values


class STFT(Initializer):
    """Real or imaginary DFT kernels with a window (see the module docstring), as Keras 3 makes them."""

    config_choices: ClassVar[Mapping[str, Sequence[str | None]]] = {"side": SIDES, "scaling": SCALINGS}

    def __init__(
        self,
        side: str = "real",
        window: str | list[float] | None = "hann",
        scaling: str | None = "density",
        periodic: bool = False,
    ) -> None:
        if side not in SIDES:
            raise InvalidArgumentError(f"side should be one of {choices(SIDES)}; received side={side!r}")
        if scaling not in SCALINGS:
            raise InvalidArgumentError(f"scaling should be one of {choices(SCALINGS)}; received scaling={scaling!r}")
        if isinstance(window, str):
            _window_values(window, 1, bool(periodic))  # an unknown name fails here, not at first use
        self.side = side
        self.window = window if window is None or isinstance(window, str) else [float(v) for v in window]
        self.scaling = scaling
        self.periodic = bool(periodic)

    def kernel(self, shape: Shape) -> np.ndarray:
        """The kernel in float64 NumPy."""
        if len(shape) != 3 or shape[2] < 2:
            raise InvalidArgumentError(
                f"STFT requires a shape (frame_length, channels, fft_bins) with fft_bins >= 2; received shape={shape}"
            )
        frames, channels, bins = shape
        n_fft = 2 * (bins - 1)
        phase = (np.arange(frames)[:, None] * np.arange(bins)[None, :]) % n_fft
        angle = (-2.0 * math.pi / n_fft) * phase
        kernel = np.cos(angle) if self.side == "real" else np.sin(angle)
        window = _window_values(self.window, frames, self.periodic)
        if window is not None:
            scale = {"density": math.sqrt(float(np.sum(window**2))), "spectrum": float(np.sum(np.abs(window)))}
            kernel = kernel * window[:, None] / (scale[self.scaling] if self.scaling else 1.0)
        return np.broadcast_to(kernel[:, None, :], (frames, channels, bins))

    def generate(self, shape: Shape, dtype: str, *, key: Key, backend: Backend, layout: str | None = None) -> Array:
        values = self.kernel(shape).astype(compute_dtype(dtype))
        return backend.cast(backend.xp.asarray(values, dtype=backend.compute_dtype(dtype)), dtype)

    def target_std(self, shape: Shape, layout: str | None = None) -> float:
        return float(np.std(self.kernel(shape)))

    def get_config(self) -> dict[str, Any]:
        return {"side": self.side, "window": self.window, "scaling": self.scaling, "periodic": self.periodic}
