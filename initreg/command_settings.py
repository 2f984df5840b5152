"""The command's settings: the typed schema its composed, resolved config is checked against.

Every key the command reads has a `Setting` (what values it takes, in words for the error); a config
is checked whole, before anything reads it, and the first bad key is named with what is valid.
"""

from __future__ import annotations

import math
import reprlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from initreg.dtypes import FLOAT_DTYPES
from initreg.errors import InvalidArgumentError
from initreg.initializers.base import magnitude
from initreg.initializers.variance_scaling import LAYOUTS

MIN_SEED, MAX_SEED = -(2**63), 2**64 - 1  # the seeds the command takes: int64's and uint64's


@dataclass(frozen=True)
class Setting:
    """What a key of the command's config takes: `valid(value)` says whether `value` does; `what` says it
    in words, for the error. An optional key may be missing (deleted with ``~key``)."""

    valid: Callable[[Any], bool]
    what: str
    optional: bool = False


def _is_integer(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_mapping_or_none(value: Any) -> bool:
    return value is None or isinstance(value, Mapping)


def _is_positive_number(value: Any) -> bool:
    return (_is_integer(value) or isinstance(value, float)) and 0 < value < math.inf


BOOLEAN = Setting(lambda value: isinstance(value, bool), "true or false")
MAPPING = Setting(lambda value: isinstance(value, Mapping), "a mapping {key: value, ...}")
MAPPING_OR_NONE = Setting(_is_mapping_or_none, "a mapping {key: value, ...} or null", optional=True)
SETTINGS = {  # the command's config (configs/command/config.yaml), resolved
    "seed": Setting(
        lambda v: _is_integer(v) and MIN_SEED <= v <= MAX_SEED, f"an integer from {MIN_SEED} to {MAX_SEED}"
    ),
    "dtype": Setting(lambda value: value in FLOAT_DTYPES, " or ".join(repr(name) for name in FLOAT_DTYPES)),
    "output": Setting(
        lambda value: isinstance(value, str) and value != "", "a file name ending in .safetensors or .npz"
    ),
    "dry_run": BOOLEAN,
    "allow_unmatched_params": BOOLEAN,
    "allow_unused_rules": BOOLEAN,
    "stream": BOOLEAN,
    "chunk_mb": Setting(_is_positive_number, "a positive number of MiB, such as 64"),
    "progress": BOOLEAN,
    "rules": MAPPING,
    "model": MAPPING,
    "recipe": MAPPING_OR_NONE,
    "backend": MAPPING,
    "table": Setting(lambda value: value in ("summary", "full"), "'summary' or 'full'"),
}
MODEL_SETTINGS = {  # keys of `model` the command reads; a model config may add others for its interpolations
    "layout": Setting(
        lambda value: value is None or value in LAYOUTS, f"{' or '.join(map(repr, LAYOUTS))} or null", optional=True
    ),
    "path": Setting(lambda value: value is None or isinstance(value, str), "a file name or null", optional=True),
    "params": MAPPING_OR_NONE,
    "repeat": MAPPING_OR_NONE,
    "variables": MAPPING_OR_NONE,
    "ties": MAPPING_OR_NONE,
}
BACKEND_SETTINGS = {"name": Setting(lambda value: isinstance(value, str), "a registered backend's name")}


class _ShortRepr(reprlib.Repr):
    """reprlib's short repr, with integers as magnitude() writes them (Python cannot print 4,300+ digits)."""

    def repr_int(self, value: int, level: int) -> str:
        return ("-" if value < 0 else "") + magnitude(abs(value))


SHORT_REPR = _ShortRepr()


def _check_settings(settings: Mapping[str, Any], schema: Mapping[str, Setting], prefix: str = "") -> None:
    """Raises InvalidArgumentError naming the first key of `settings` that `schema` does not take."""
    for key, setting in schema.items():
        if key not in settings:
            if setting.optional:
                continue
            raise InvalidArgumentError(
                f"{prefix}{key} is missing (deleted by ~{prefix}{key}?); it must be {setting.what}"
            )
        if not setting.valid(settings[key]):
            raise InvalidArgumentError(f"{prefix}{key} must be {setting.what}; got {SHORT_REPR.repr(settings[key])}")


def check_settings(settings: Mapping[str, Any]) -> None:
    """Checks the command's resolved config against SETTINGS, its `model` against MODEL_SETTINGS and its
    `backend` against BACKEND_SETTINGS, before anything reads them."""
    _check_settings(settings, SETTINGS)
    _check_settings(settings["model"], MODEL_SETTINGS, "model.")
    _check_settings(settings["backend"], BACKEND_SETTINGS, "backend.")
