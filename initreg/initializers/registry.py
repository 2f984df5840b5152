"""The initializer registry (entry-point group ``initreg.initializers``) and the `register` decorator."""

from __future__ import annotations

import inspect
from collections.abc import Callable, Iterable
from typing import Any

from initreg.errors import InvalidArgumentError
from initreg.initializers.base import Initializer
from initreg.plugin_registry import Registry, describe


def _check_initializer(value: Any) -> str | None:
    """None for an Initializer subclass whose constructor's signature can be read (the command needs it)."""
    if not (inspect.isclass(value) and issubclass(value, Initializer)):
        return f"is {value!r}, not a subclass of initreg.Initializer"
    try:
        inspect.signature(value)
    except (ValueError, TypeError) as error:
        return f"has a constructor whose signature cannot be read ({describe(error)})"
    return None


initializers: Registry[type[Initializer]] = Registry("initializer", "initreg.initializers", _check_initializer)


def register(
    name: str, *, aliases: Iterable[str] = (), force: bool = False
) -> Callable[[type[Initializer]], type[Initializer]]:
    """Class decorator: ``@register("my_init", aliases=["MyInit"])`` adds an initializer.

    Running it again on a class of the same module and qualname (a notebook cell run again) replaces
    the entry with a ReplacedWarning; another class under a taken name is a NameClashError.
    """

    def decorate(cls: type[Initializer]) -> type[Initializer]:
        problem = _check_initializer(cls)
        if problem:
            raise InvalidArgumentError(f"cannot register {name!r}: it {problem}")
        return initializers.register(name, cls, aliases=aliases, force=force)

    return decorate


def names() -> dict[str, tuple[str, ...]]:
    """Every initializer name with its aliases, plugins included."""
    return initializers.names()
