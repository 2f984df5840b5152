"""initreg: Keras-compatible weight initializers, reproducible on every backend, by name or config."""

from initreg import registry
from initreg.errors import InitregError
from initreg.initializers import (
    Constant,
    GlorotNormal,
    GlorotUniform,
    HeNormal,
    HeUniform,
    Identity,
    Initializer,
    LecunNormal,
    LecunUniform,
    Ones,
    Orthogonal,
    RandomNormal,
    RandomUniform,
    TruncatedNormal,
    VarianceScaling,
    Zeros,
    compute_fans,
)
from initreg.registry import get, register
from initreg.rules import RuleSet
from initreg.serialization import deserialize, serialize
from initreg.slicing import init_slice
from initreg.tree import init_tree, plan, save_tree

__version__ = "0.1.0"

__all__ = [
    "Constant",
    "GlorotNormal",
    "GlorotUniform",
    "HeNormal",
    "HeUniform",
    "Identity",
    "Initializer",
    "InitregError",
    "LecunNormal",
    "LecunUniform",
    "Ones",
    "Orthogonal",
    "RandomNormal",
    "RandomUniform",
    "RuleSet",
    "TruncatedNormal",
    "VarianceScaling",
    "Zeros",
    "compute_fans",
    "deserialize",
    "get",
    "init_slice",
    "init_tree",
    "plan",
    "register",
    "registry",
    "save_tree",
    "serialize",
]
