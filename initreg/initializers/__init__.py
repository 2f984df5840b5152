"""The Keras initializer family; importing this package registers every built-in name.

As in Keras, the family owns its registry and the functions that look it up: `get`, `register`,
`serialize` and `deserialize`.
"""

from initreg.initializers.base import ElementwiseInitializer, Initializer, RandomInitializer
from initreg.initializers.constant import Constant, Identity, Ones, Zeros
from initreg.initializers.fans import compute_fans
from initreg.initializers.lookup import get
from initreg.initializers.orthogonal import Orthogonal
from initreg.initializers.random import RandomNormal, RandomUniform, TruncatedNormal
from initreg.initializers.registry import register
from initreg.initializers.serialization import deserialize, serialize
from initreg.initializers.variance_scaling import (
    GlorotNormal,
    GlorotUniform,
    HeNormal,
    HeUniform,
    LecunNormal,
    LecunUniform,
    VarianceScaling,
)

__all__ = [
    "Constant",
    "ElementwiseInitializer",
    "GlorotNormal",
    "GlorotUniform",
    "HeNormal",
    "HeUniform",
    "Identity",
    "Initializer",
    "LecunNormal",
    "LecunUniform",
    "Ones",
    "Orthogonal",
    "RandomInitializer",
    "RandomNormal",
    "RandomUniform",
    "TruncatedNormal",
    "VarianceScaling",
    "Zeros",
    "compute_fans",
    "deserialize",
    "get",
    "register",
    "serialize",
]
