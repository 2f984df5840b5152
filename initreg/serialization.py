"""Initializers to and from dicts in the Keras 3 format, reading tf.keras 2.x dicts as well.

Keras 3:    {"module": "keras.initializers", "class_name": "LecunNormal", "config": {...},
             "registered_name": None}
tf.keras 2: {"class_name": "LecunNormal", "config": {..., "dtype": "float32"}}  (dtype is dropped)

Built-ins are written with module "keras.initializers", so keras.initializers.deserialize builds the
matching Keras initializer; other registered initializers carry their registry name.
"""

from __future__ import annotations

from typing import Any

from initreg.errors import InvalidArgumentError
from initreg.initializers.base import Initializer
from initreg.registry import BUILT_IN, initializers

KERAS_MODULE = "keras.initializers"
LEGACY_KEYS = ("dtype",)


def _registered_name(cls: type[Initializer]) -> str | None:
    for entry in initializers.entries():
        if entry.value is cls:
            return None if entry.origin == BUILT_IN and cls.__module__.startswith("initreg.") else entry.name
    return None


def serialize(initializer: Initializer) -> dict[str, Any]:
    """The Keras 3 dict {module, class_name, config, registered_name} of an initializer."""
    if not isinstance(initializer, Initializer):
        raise InvalidArgumentError(f"can only serialize an initreg Initializer; got {initializer!r}")
    cls = type(initializer)
    registered_name = _registered_name(cls)
    return {
        "module": KERAS_MODULE if registered_name is None else cls.__module__,
        "class_name": cls.__name__,
        "config": initializer.get_config(),
        "registered_name": registered_name,
    }


def deserialize(config: Any, **overrides: Any) -> Initializer:
    """An initializer from a Keras 3 or tf.keras 2.x dict; `overrides` replace config values."""
    if not isinstance(config, dict) or not isinstance(config.get("class_name"), str):
        raise InvalidArgumentError(
            f"cannot deserialize {config!r}; expected a dict with a 'class_name' string and a 'config' dict"
        )
    arguments = config.get("config") or {}
    if not isinstance(arguments, dict):
        raise InvalidArgumentError(f"the 'config' of {config['class_name']!r} must be a dict; got {arguments!r}")
    name = config.get("registered_name") or config["class_name"]
    if name not in initializers:
        name = config["class_name"]
    cls = initializers.get(name)
    arguments = {k: v for k, v in arguments.items() if k not in LEGACY_KEYS}
    return cls.from_config({**arguments, **overrides})
