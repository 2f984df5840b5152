"""initreg-extra: initializers that plug into initreg through the ``initreg.initializers`` entry points.

- delta_orthogonal: an orthogonal matrix at the spatial centre of a conv kernel (as in JAX)
- torch_default:    PyTorch's default nn.Linear / nn.ConvNd initialization, U(-1/sqrt(fan_in), 1/sqrt(fan_in))
- stft:             Keras 3's STFT kernel (real or imaginary DFT part, windowed)
- torch_init:       torch.nn.init's kaiming_*, xavier_*, trunc_normal, dirac and sparse with torch's
                    defaults, and calculate_gain

Importing this package registers nothing by itself: initreg finds the classes through the entry points
declared in pyproject.toml, on first use of their names.
"""

from initreg_extra.delta_orthogonal import DeltaOrthogonal
from initreg_extra.stft import STFT
from initreg_extra.torch_default import TorchDefault
from initreg_extra.torch_init import (
    Dirac,
    KaimingNormal,
    KaimingUniform,
    Sparse,
    TruncNormal,
    XavierNormal,
    XavierUniform,
    calculate_gain,
)

__all__ = [
    "STFT",
    "DeltaOrthogonal",
    "Dirac",
    "KaimingNormal",
    "KaimingUniform",
    "Sparse",
    "TorchDefault",
    "TruncNormal",
    "XavierNormal",
    "XavierUniform",
    "calculate_gain",
]
