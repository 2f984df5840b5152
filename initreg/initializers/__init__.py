"""The Keras initializer family; importing this package registers every built-in name."""

from initreg.initializers.base import Initializer, RandomInitializer
from initreg.initializers.constant import Constant, Identity, Ones, Zeros
from initreg.initializers.orthogonal import Orthogonal
from initreg.initializers.random import RandomNormal, RandomUniform, TruncatedNormal
from initreg.initializers.variance_scaling import (
    GlorotNormal,
    GlorotUniform,
    HeNormal,
    HeUniform,
    LecunNormal,
    LecunUniform,
    VarianceScaling,
    compute_fans,
)

__all__ = [
    "Constant",
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
]
