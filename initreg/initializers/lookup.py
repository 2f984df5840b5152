"""`get`: an initializer from anything that names or describes one, as Keras's ``initializers.get``."""

from __future__ import annotations

import dataclasses
import inspect
from collections.abc import Callable, Mapping
from typing import Any

from initreg.errors import InvalidArgumentError
from initreg.initializers.base import Initializer
from initreg.initializers.constant import Constant
from initreg.initializers.registry import initializers
from initreg.initializers.serialization import deserialize
from initreg.plain import plain


def get(identifier: Any, **config: Any) -> Initializer | Callable[..., Any] | None:
    """An initializer from a name, alias, mapping, dataclass instance, instance, class, array or callable.

    A mapping is a Keras dict (with 'class_name') or ``{name, **config}``: a dict, or a Hydra node
    such as ``cfg.init`` (its `_target_` is ignored). A dataclass instance (a structured config made an
    object by ``OmegaConf.to_object``) is read as the mapping of its fields. None gives None, as in
    Keras. Keyword arguments are config values: ``get("lecun_normal", seed=3)``. An array (NumPy,
    torch, JAX, ...) gives an initializer that makes exactly that array, as Keras's get(tensor):
    ``Constant(array, broadcast=False)``, which refuses any other shape.
    """
    if identifier is None:
        return None
    if isinstance(identifier, str):
        return initializers.get(identifier).from_config(config)
    if isinstance(identifier, Mapping):
        return _from_mapping(identifier, config)
    if isinstance(identifier, Initializer):
        return identifier.from_config({**identifier.get_config(), **config}) if config else identifier
    if inspect.isclass(identifier) and issubclass(identifier, Initializer):
        return identifier.from_config(config)
    if dataclasses.is_dataclass(identifier):
        if inspect.isclass(identifier):
            raise InvalidArgumentError(
                f"initializer identifier {identifier.__qualname__} is a dataclass; pass an instance of it, "
                f"such as {identifier.__qualname__}()"
            )
        return _from_mapping(dataclasses.asdict(identifier), config)
    if all(hasattr(identifier, attribute) for attribute in ("shape", "dtype", "tolist")):  # an array, as Keras's get
        if config:
            raise InvalidArgumentError(f"an array identifier takes no config; got {sorted(config)}")
        return Constant(identifier, broadcast=False)
    if callable(identifier) and not config:
        function: Callable[..., Any] = identifier
        return function
    raise InvalidArgumentError(
        f"could not interpret initializer identifier {identifier!r}; valid: a name such as 'lecun_normal', "
        "a Keras dict or {name, **config}, a structured config (dataclass instance), an Initializer instance or "
        "class, an array, or a callable(shape, dtype=None)"
    )


def _from_mapping(mapping: Mapping[str, Any], config: dict[str, Any]) -> Initializer:
    """An initializer from a Keras dict (with 'class_name') or from {name, **config}, such as a Hydra node.

    OmegaConf containers are read as plain values; a `_target_` key is ignored.
    """
    settings = plain(mapping)
    if "class_name" in settings:
        return deserialize(settings, **config)
    settings = {key: value for key, value in settings.items() if key != "_target_"}
    name = settings.pop("name", None)
    if not isinstance(name, str):
        raise InvalidArgumentError(
            f"initializer config {settings!r} needs a 'name' (e.g. {{name: variance_scaling, scale: 2}}) "
            "or a Keras 'class_name'"
        )
    settings.update(config)
    try:
        return initializers.get(name).from_config(settings)
    except TypeError as error:  # a plugin's constructor rejecting its arguments
        raise InvalidArgumentError(f"initializer {name!r} rejected {settings!r}: {error}") from error
