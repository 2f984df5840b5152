"""Initializers to and from dicts in the Keras 3 format, reading tf.keras 2.x dicts as well.

Keras 3:    {"module": "keras.initializers", "class_name": "LecunNormal", "config": {...},
             "registered_name": None}
tf.keras 2: {"class_name": "LecunNormal", "config": {..., "dtype": "float32"}}  (dtype is dropped)

Built-ins are written with module "keras.initializers", so keras.initializers.deserialize builds the
matching Keras initializer; other registered initializers carry their registry name. Keras's own
serialization of a registered initreg class (see initreg.interop.keras) writes "initreg>ClassName",
which is read back by the class's name.
"""

from __future__ import annotations

from typing import Any

from initreg.errors import InvalidArgumentError
from initreg.initializers.base import Initializer
from initreg.initializers.registry import initializers
from initreg.plugin_registry import BUILT_IN

KERAS_MODULE = "keras.initializers"
KERAS_PACKAGE = "initreg"  # Keras's registered names of initreg's classes are "initreg>ClassName"
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
    cls = _initializer_class(config["class_name"], config.get("registered_name"))
    arguments = {k: v for k, v in arguments.items() if k not in LEGACY_KEYS}
    return cls.from_config({**arguments, **overrides})


def _initializer_class(class_name: str, registered_name: Any) -> type[Initializer]:
    """The class a dict names: by registered name, by class name, or by the class in "initreg>ClassName"."""
    for name in (registered_name, class_name):
        if isinstance(name, str) and name in initializers:
            return initializers.get(name)
    if isinstance(registered_name, str) and registered_name == f"{KERAS_PACKAGE}>{class_name}":
        for entry in initializers.entries():
            if entry.value.__name__ == class_name:
                return entry.value
    return initializers.get(class_name)  # unknown: raises, with did-you-mean
