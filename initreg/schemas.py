"""Structured configs: one dataclass per registered initializer, built from its constructor's signature.

Hydra checks a config node against its dataclass while composing, so ``init.scale=abc``,
``init.mode=fan_avgg`` or a misspelled key fails there, naming the key. For ``variance_scaling``:

    _target_: str = "initreg.schemas.make"   # hydra.utils.instantiate(node) returns the initializer
    name: str = "variance_scaling"           # the name (or alias) it was selected by
    scale: float = 1.0                       # then every constructor argument, with its default
    mode: str = fan_in                       # a ChoiceNode: fan_in, fan_out, fan_avg or fan_geo_avg
    ...
    seed: Optional[int] = None

An argument's type comes from its annotation: int, float, bool and str as they are; ``X | None`` as
Optional; a sequence as List and a mapping as Dict[str, ...] of their item types; a Literal of strings,
or the strings the class lists in ``config_choices``, as a str field whose default is a
`initreg.typed_nodes.ChoiceNode` (checked while composing, a plain string in the composed config); an
Enum as itself; anything else, or an annotation that cannot be evaluated, as Any. An argument without a
default must be given (``???``); one whose default is not a plain value is left out, so that the
constructor's default applies, as are ``*args``, ``**kwargs`` and arguments called `name` or
`_target_`. `seed` seeds direct calls (``instantiate(node)(shape)``); in a tree the tree's seed keys
every parameter.

Dataclasses are built on first use, under a lock, and cached. Each is an attribute of this module named
after its registered name (``getattr(initreg.schemas, "init/variance_scaling")``), so a composed config
pickles: a fresh process rebuilds the class when it unpickles one.
"""

from __future__ import annotations

import copy
import dataclasses
import enum
import functools
import inspect
import reprlib
import threading
import types
import typing
from collections.abc import Mapping, MutableMapping, MutableSequence, Sequence
from typing import TYPE_CHECKING, Any, Literal, Optional, Union, cast

from initreg.errors import InitregError, InvalidArgumentError
from initreg.initializers.lookup import get
from initreg.initializers.registry import initializers

if TYPE_CHECKING:
    from initreg.initializers.base import Initializer

TARGET = f"{__name__}.make"
PREFIX = "init/"  # of the dataclasses' names; the group Hydra serves them in
MISSING = "???"  # OmegaConf's marker for a value that must be given
PLAIN = (type(None), bool, int, float, str, enum.Enum)
SEQUENCES = (list, tuple, Sequence, MutableSequence)
MAPPINGS = (dict, Mapping, MutableMapping)
SKIPPED = ("name", "_target_")  # the node's own keys

_lock = threading.Lock()
_built: dict[str, tuple[type, type]] = {}  # canonical name -> (initializer class, dataclass)


@dataclasses.dataclass(frozen=True)
class Choices:
    """The type of an argument that takes one of `values` (or None if `optional`): a ChoiceNode field."""

    values: tuple[str, ...]
    optional: bool = False


def make(*arguments: Any, name: str, **config: Any) -> Initializer:
    """The initializer registered as `name`, built from `config`: the `_target_` of every dataclass.

    ``instantiate(node, _partial_=True)`` is a factory of the initializer: ``factory(scale=3)`` replaces
    values, and a positional argument (a shape, a tensor) is refused, since the factory makes the
    initializer and does not draw (call ``factory()(shape)``).
    """
    if arguments:
        raise InvalidArgumentError(
            f"the initializer {name!r} is made from keyword arguments only, not {reprlib.repr(arguments)}: "
            "instantiate(cfg, _partial_=True) gives a factory of the initializer; call factory()(shape) to draw"
        )
    return cast("Initializer", get({"name": name, **config}))  # a mapping always gives an Initializer


def schema(name: str) -> type:
    """The dataclass of the initializer registered as `name` (a name or alias; a plugin is loaded)."""
    entry = initializers.entry(name)
    with _lock:
        built = _built.get(entry.name)
        if built is None or built[0] is not entry.value:
            built = (entry.value, _dataclass(entry.name, entry.value))
            _built[entry.name] = built
        return built[1]


def node(name: str) -> Any:
    """An instance of `name`'s dataclass whose `name` is the name it was selected by."""
    return schema(name)(name=name)


def __getattr__(attribute: str) -> type:
    """The dataclass ``init/<name>``, built if need be (for unpickling)."""
    if attribute.startswith(PREFIX):
        try:
            return schema(attribute.removeprefix(PREFIX))
        except InitregError as error:
            raise AttributeError(f"module {__name__!r} has no attribute {attribute!r}: {error}") from error
    raise AttributeError(f"module {__name__!r} has no attribute {attribute!r}")


# --- building ----------------------------------------------------------------------------------


def _dataclass(name: str, cls: type) -> type:
    """The dataclass ``init/<name>``: _target_, name, then one field per constructor argument."""
    qualname = PREFIX + name
    fields: list[tuple[str, Any, Any]] = [
        ("_target_", str, dataclasses.field(default=TARGET)),
        ("name", str, dataclasses.field(default=name)),
    ]
    namespace = _constructor_globals(cls)
    choices: Mapping[str, Sequence[Any]] = getattr(cls, "config_choices", {})
    for parameter in inspect.signature(cls).parameters.values():
        if parameter.kind in (parameter.VAR_POSITIONAL, parameter.VAR_KEYWORD) or parameter.name in SKIPPED:
            continue
        hint = _evaluated(parameter.name, parameter.annotation, namespace)
        if parameter.name in choices:
            hint = _with_choices(hint, choices[parameter.name])
        field_type = _field_type(hint)
        default = MISSING if parameter.default is parameter.empty else parameter.default
        field = _field(field_type, default)
        if field is not None:
            fields.append((parameter.name, *field))
    made = dataclasses.make_dataclass(qualname, fields)
    made.__module__, made.__qualname__ = __name__, qualname
    made.__doc__ = f"The structured config of initializer {name!r} ({cls.__module__}.{cls.__qualname__})."
    return made


def _constructor_globals(cls: type) -> dict[str, Any]:
    """The module namespace of the `__init__` that `cls` uses, where its annotations are evaluated."""
    for klass in cls.__mro__:
        function = vars(klass).get("__init__")
        if function is not None:
            return dict(getattr(function, "__globals__", {}))
    return {}


def _evaluated(name: str, annotation: Any, namespace: dict[str, Any]) -> Any:
    """The annotation as a type (evaluated in the constructor's module if a string), or Any."""
    if annotation is inspect.Parameter.empty:
        return Any
    if not isinstance(annotation, str):
        return annotation
    holder = types.SimpleNamespace(__annotations__={name: annotation})
    try:
        return typing.get_type_hints(holder, globalns=namespace)[name]
    except Exception:  # a name only imported for type checking, say: the argument is typed Any
        return Any


def _with_choices(hint: Any, values: Sequence[Any]) -> Any:
    """A Literal of the string choices, Optional if None is a choice or the annotation allows it."""
    strings = tuple(value for value in values if isinstance(value, str))
    if not strings:
        return hint
    literal = Literal.__getitem__(strings)
    optional = None in values or type(None) in typing.get_args(hint)
    return Optional[literal] if optional else literal  # noqa: UP045  # a runtime type, built from parts


def _field_type(hint: Any, nested: bool = False) -> Any:
    """The type OmegaConf checks a value against (see the module docstring); a Literal of strings is
    `Choices` at the top level and ``str`` inside a list or dict (`nested`)."""
    origin, arguments = typing.get_origin(hint), typing.get_args(hint)
    if hint in (int, float, bool, str) or (inspect.isclass(hint) and issubclass(hint, enum.Enum)):
        return hint
    if origin in (Union, types.UnionType):
        others = [argument for argument in arguments if argument is not type(None)]
        inner = _field_type(others[0], nested) if len(others) == 1 else Any
        if isinstance(inner, Choices):
            return Choices(inner.values, optional=True)
        return Any if inner is Any else Optional[inner]  # noqa: UP045
    if origin is Literal:
        if arguments and all(isinstance(argument, str) for argument in arguments):
            return str if nested else Choices(arguments)
        return Any
    if hint in SEQUENCES or origin in SEQUENCES:
        items = [argument for argument in arguments if argument is not Ellipsis]
        item = items[0] if items and all(argument == items[0] for argument in items) else Any
        return list[_field_type(item, nested=True)]  # type: ignore[misc]
    if hint in MAPPINGS or origin in MAPPINGS:
        key, value = arguments if len(arguments) == 2 else (str, Any)
        return dict[str, _field_type(value, nested=True)] if key is str else Any  # type: ignore[misc]
    return Any


def _field(field_type: Any, default: Any) -> tuple[Any, Any] | None:
    """(type, dataclasses.field) of an argument, or None if its default is not a plain value."""
    if not _is_plain(default):
        return None
    if isinstance(field_type, Choices):
        return _choice_field(field_type, default)
    if default is None and field_type is not Any and type(None) not in typing.get_args(field_type):
        field_type = Optional[field_type]  # noqa: UP045
    if isinstance(default, (list, tuple, dict)):
        return field_type, dataclasses.field(default_factory=functools.partial(_copied, default))
    return field_type, dataclasses.field(default=default)


def _copied(default: Any) -> Any:
    """A fresh copy of a list, tuple (as a list) or dict default."""
    return copy.deepcopy(list(default) if isinstance(default, tuple) else default)


def _choice_field(choices: Choices, default: Any) -> tuple[Any, Any]:
    """(str or Optional[str], a field whose default is a ChoiceNode of `choices` holding `default`); a default
    that is not one of the choices leaves the value unchecked (Any)."""
    from initreg.typed_nodes import ChoiceNode  # OmegaConf is imported only once a node is built

    optional = choices.optional or default is None
    if not (default is None or default == MISSING or default in choices.values):
        return Any, dataclasses.field(default=default)
    node = functools.partial(ChoiceNode, default, choices.values, is_optional=optional)
    return (Optional[str] if optional else str), dataclasses.field(default_factory=node)  # noqa: UP045


def _is_plain(value: Any) -> bool:
    if isinstance(value, PLAIN):
        return True
    if isinstance(value, (list, tuple)):
        return all(_is_plain(item) for item in value)
    if isinstance(value, dict):
        return all(isinstance(key, str) and _is_plain(item) for key, item in value.items())
    return False
