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
    deserialize,
    get,
    register,
    serialize,
)
from initreg.rules import RuleSet
from initreg.slicing import init_slice
from initreg.tree import init_tree, plan, save_tree
from initreg.version import __version__ as __version__


def __getattr__(name: str) -> object:
    """`initreg.check`, imported on first use (initreg.checking), so that `import initreg` stays light."""
    if name == "check":
        from initreg.checking import check

        return check
    raise AttributeError(f"module 'initreg' has no attribute {name!r}")


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
    "check",
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
