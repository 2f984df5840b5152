"""DeltaOrthogonal: scale times an orthogonal matrix at the spatial centre of a conv kernel, zeros elsewhere.

For a kernel of shape (k_1, ..., k_d, in, out) with d in 1..3 and in <= out (the "keras" layout):

    W[c_1, ..., c_d] = scale * Q,   c_i = (k_i - 1) // 2,   Q Q^T = I (Q of shape (in, out)),

and W = 0 everywhere else (Xiao et al., "Dynamical Isometry and a Mean Field Theory of CNNs", 2018),
as jax.nn.initializers.delta_orthogonal does. Q is initreg's Orthogonal drawn from the parameter's own
stream, so the kernel is reproducible on every backend. In the "torch" layout (out, in, k_1, ..., k_d)
the same Q is stored transposed: W[:, :, c_1, ..., c_d] = scale * Q^T.
"""

from __future__ import annotations

import math
from typing import Any

from initreg.backends.base import Backend
from initreg.dtypes import compute_dtype
from initreg.errors import InvalidArgumentError
from initreg.initializers import Orthogonal, RandomInitializer
from initreg.initializers.base import Array, Shape, finite_number
from initreg.rng import Key
from initreg_extra.conv import conv_layout


class DeltaOrthogonal(RandomInitializer):
    """A delta-orthogonal conv kernel (see the module docstring); 3-D, 4-D or 5-D shapes only.

    Whole-tensor: every element of Q depends on the whole matrix, so a slice is cut from the whole kernel.
    """

    slices_independently = False

    def __init__(self, scale: float = 1.0, seed: int | None = None) -> None:
        self.scale = finite_number("scale", scale)
        super().__init__(seed=seed)

    @staticmethod
    def _channels(shape: Shape, layout: str | None) -> tuple[int, int]:
        """(in, out) of a conv kernel shape in `layout`, after checking that it is one."""
        layout = conv_layout(shape, layout, "keras", "DeltaOrthogonal")
        fan_in, fan_out = (shape[-2], shape[-1]) if layout == "keras" else (shape[1], shape[0])
        if fan_in > fan_out:
            raise InvalidArgumentError(
                f"DeltaOrthogonal requires fan_in <= fan_out; received shape={shape} ({layout} layout) with "
                f"fan_in={fan_in} > fan_out={fan_out}"
            )
        return fan_in, fan_out

    def generate(self, shape: Shape, dtype: str, *, key: Key, backend: Backend, layout: str | None = None) -> Array:
        fan_in, fan_out = self._channels(shape, layout)
        precision = compute_dtype(dtype)
        centre_matrix = Orthogonal(gain=self.scale, seed=0).generate(
            (fan_in, fan_out), precision, key=key, backend=backend
        )  # the key, not the seed, picks the stream
        xp = backend.xp
        kernel = xp.zeros(shape, dtype=backend.dtype(precision))
        centre = tuple((k - 1) // 2 for k in (shape[2:] if layout == "torch" else shape[:-2]))
        if layout == "torch":
            index, centre_matrix = (slice(None), slice(None), *centre), xp.permute_dims(centre_matrix, (1, 0))
        else:
            index = (*centre, ...)
        kernel[index] = centre_matrix
        return backend.cast(kernel, dtype)

    def target_std(self, shape: Shape, layout: str | None = None) -> float:
        """The root mean square, scale sqrt(in / size): the centre holds in rows of norm scale."""
        fan_in, _ = self._channels(shape, layout)
        return abs(self.scale) * math.sqrt(fan_in / math.prod(shape)) if math.prod(shape) else 0.0

    def moments(self, shape: Shape, layout: str | None = None) -> tuple[float, float]:
        """(0, target_std): Q's entries have mean 0 (see Orthogonal.moments), and so do the zeros."""
        return 0.0, self.target_std(shape, layout)

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "scale": self.scale}
