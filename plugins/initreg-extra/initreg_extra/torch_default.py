"""TorchDefault: PyTorch's default initialization of nn.Linear and nn.ConvNd, by name.

PyTorch draws weights with kaiming_uniform_(w, a=sqrt(5)): gain = sqrt(2 / (1 + a^2)) = sqrt(1/3) and
bound = gain sqrt(3 / fan_in) = 1 / sqrt(fan_in); biases are U(-1/sqrt(fan_in), 1/sqrt(fan_in)) with
the weight's fan_in. So both are

    U(-1/sqrt(fan_in), 1/sqrt(fan_in)),   std = 1 / sqrt(3 fan_in),

with fan_in from the "torch" layout (out, in, *kernel): in * prod(kernel). Another layout can be asked
for; a bias, whose shape does not carry the fan, takes `fan_in` (its weight's) explicitly.
"""

from __future__ import annotations

import math
import numbers
from typing import Any

from initreg.distributions import Distribution, UniformDist
from initreg.errors import InvalidArgumentError
from initreg.initializers import ElementwiseInitializer, compute_fans
from initreg.initializers.base import Shape


class TorchDefault(ElementwiseInitializer):
    """U(-1/sqrt(fan_in), 1/sqrt(fan_in)), fan_in from the torch layout or given (for biases)."""

    def __init__(self, fan_in: int | None = None, seed: int | None = None) -> None:
        if fan_in is not None and (isinstance(fan_in, bool) or not isinstance(fan_in, numbers.Integral) or fan_in < 1):
            raise InvalidArgumentError(f"Argument `fan_in` must be a positive integer or None. Received: {fan_in=!r}")
        self.fan_in = None if fan_in is None else int(fan_in)
        super().__init__(seed=seed)

    def bound(self, shape: Shape, layout: str | None = None) -> float:
        """1 / sqrt(fan_in): `fan_in` if given, else that of `shape` in `layout` ("torch" by default)."""
        fan_in = self.fan_in if self.fan_in is not None else compute_fans(shape, layout=layout or "torch")[0]
        return 1.0 / math.sqrt(max(fan_in, 1))  # fan_in is 0 only for a tensor with no elements

    def distribution_for(self, shape: Shape, layout: str | None = None) -> Distribution:
        bound = self.bound(shape, layout)
        return UniformDist(-bound, bound)

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "fan_in": self.fan_in}
