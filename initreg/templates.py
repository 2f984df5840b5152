"""Initializers whose arguments are expressions, made concrete for each parameter.

``{name: random_normal, stddev: "=0.02 / sqrt(2 * n_layer)"}`` becomes an InitTemplate. For each
parameter, `resolve` evaluates its expressions (see initreg.expressions) with the names PARAMETER_NAMES
describe, the path's captures and the rule set's variables, and builds the initializer, once per
distinct set of argument values.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Mapping
from typing import Any

from initreg.errors import InvalidArgumentError
from initreg.expressions import (
    CONSTANTS,
    FUNCTIONS,
    MAX_INT_BITS,
    Expression,
    compile_expression,
    is_expression,
)
from initreg.initializers.base import Initializer, Shape
from initreg.initializers.lookup import get
from initreg.initializers.registry import initializers
from initreg.initializers.variance_scaling import compute_fans

PARAMETER_NAMES = {
    "fan_in": "the fan-in of the whole parameter (by its rule's layout)",
    "fan_out": "the fan-out of the whole parameter",
    "shape": "the parameter's shape, a sequence: shape[0], shape[-1]",
    "ndim": "the number of axes",
    "size": "the number of elements",
}
RESERVED_NAMES = (*PARAMETER_NAMES, *CONSTANTS, *FUNCTIONS)  # what a variable or a capture may not be called


def parameter_values(shape: Shape, layout: str | None) -> dict[str, Any]:
    """The values of PARAMETER_NAMES for a parameter of `shape` whose fans are read by `layout`."""
    fan_in, fan_out = compute_fans(shape, layout=layout)
    return {"fan_in": fan_in, "fan_out": fan_out, "shape": shape, "ndim": len(shape), "size": math.prod(shape)}


class InitTemplate:
    """The initializer `name` with `config`, in which Expression values are evaluated per parameter."""

    def __init__(self, name: str, config: Mapping[str, Any]) -> None:
        initializers.get(name)  # an unknown name raises here, with suggestions
        self.name = name
        self.config = {key: compile_expression(v) if is_expression(v) else v for key, v in config.items()}
        self._made: dict[str, Initializer] = {}
        self._lock = threading.Lock()

    def resolve(self, values: Mapping[str, Any]) -> Initializer:
        """The initializer with each expression replaced by its value under `values`."""
        config = {key: v.evaluate(values) if isinstance(v, Expression) else v for key, v in self.config.items()}
        key = repr(sorted(config.items()))
        with self._lock:
            made = self._made.get(key)
            if made is None:
                made = self._made[key] = build(self.name, config)
        return made

    def expressions(self) -> list[Expression]:
        """The expression values of its config."""
        return [value for value in self.config.values() if isinstance(value, Expression)]

    def __repr__(self) -> str:
        arguments = ", ".join(f"{k}={v.text if isinstance(v, Expression) else v!r}" for k, v in self.config.items())
        return f"{self.name}({arguments})"


def build(name: str, config: Mapping[str, Any]) -> Initializer:
    """The registered initializer `name` made with `config`; a constructor rejecting it raises InvalidArgumentError."""
    found = get({"name": name, **config})
    if not isinstance(found, Initializer):
        raise InvalidArgumentError(f"init {name!r} is a plain callable; a tree needs an initreg Initializer")
    return found


def check_variables(variables: Mapping[str, Any] | None) -> dict[str, Any]:
    """`variables` as a dict of identifiers to finite numbers; anything else raises."""
    if variables is None:
        return {}
    if not isinstance(variables, Mapping):
        raise InvalidArgumentError(f"variables must be a mapping of names to numbers; got {variables!r}")
    checked = {}
    for name, value in variables.items():
        if not isinstance(name, str) or not name.isidentifier() or name in RESERVED_NAMES:
            raise InvalidArgumentError(
                f"variable name {name!r} is not valid; valid: an identifier other than {', '.join(RESERVED_NAMES)}"
            )
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise InvalidArgumentError(f"variable {name!r} must be a finite number; got {value!r}")
        if isinstance(value, int) and value.bit_length() > MAX_INT_BITS:
            raise InvalidArgumentError(
                f"variable {name!r} is an int of {value.bit_length()} bits; at most {MAX_INT_BITS} are valid"
            )
        if isinstance(value, float) and not math.isfinite(value):
            raise InvalidArgumentError(f"variable {name!r} must be a finite number; got {value!r}")
        checked[name] = value
    return checked


def has_expressions(config: Mapping[str, Any]) -> bool:
    """Whether any value of an init config is an expression string."""
    return any(is_expression(value) for value in config.values())
