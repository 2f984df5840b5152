"""A recipe's variables and where their values come from: the model, the caller or a hyper-parameter default.

A recipe's ``variables`` maps each name its expressions read to a declaration. A plain value is a true
hyper-parameter's default (``init_cutoff_factor: 3.0``). A mapping says how the value is read from the model
and whether it may default:

- ``config``: a name or a list of names of ``model.config`` attributes (a transformers config, or any
  mapping given as ``config=``); the first one the config has is read;
- ``none``: the value that stands for the config's None (``pad_token_id: none: -1``, no padding row);
- ``blocks``: a path pattern with the capture ``{i}``, or a list of them (``["h.{i}.*", "*.h.{i}.*"]``); the
  value is the number of blocks in the parameter tree, whose indices must be 0 ... n-1;
- ``shape``: ``{match: <pattern>, dim: <int>}``: a dimension of the matching tensors' shape (all equal);
- ``default``: the value when nothing could be read and none was given, for a true hyper-parameter only.

`resolve` gives each variable's value and its source ("model.config.n_layer", "tree: 12 blocks h.{i}",
"tree: wte.weight.shape[1]", "given", "default, a hyper-parameter"). Readings that disagree with each
other or with a given value are an error naming both; a variable that has no reading, was not given and
has no default is an error naming the recipe and the variable.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from initreg.errors import InvalidArgumentError, choices
from initreg.patterns import compile_pattern
from initreg.spec import flatten

DECLARATION_KEYS = ("config", "none", "blocks", "shape", "default")
GIVEN = "given"
DEFAULT = "default, a hyper-parameter"


@dataclass(frozen=True)
class Declaration:
    """How one variable is read: config attribute names, the blocks pattern, the shape reading, a default."""

    name: str
    config: tuple[str, ...] = ()
    none: Any = None
    blocks: tuple[str, ...] = ()
    shape: tuple[str, int] | None = None
    default: Any = None
    has_default: bool = False

    @property
    def block_name(self) -> str:
        """The blocks' patterns as one name: "h.{i}" for "h.{i}.*" and "*.h.{i}.*"."""
        return self.blocks[0].removeprefix("*.").removesuffix(".*")

    def readers(self) -> str:
        """Where the value could have come from, in words (for the error when it came from nowhere)."""
        found = [f"model.config.{'/'.join(self.config)}"] if self.config else []
        found += [f"the number of blocks {self.block_name}"] if self.blocks else []
        found += [f"dimension {self.shape[1]} of {self.shape[0]}"] if self.shape else []
        return " or ".join(found)


def declarations(recipe: str, variables: Mapping[str, Any]) -> dict[str, Declaration]:
    """The recipe's variable declarations; a malformed one raises naming the recipe and the variable."""
    return {str(name): _declaration(recipe, str(name), value) for name, value in variables.items()}


def _declaration(recipe: str, name: str, value: Any) -> Declaration:
    if not isinstance(value, Mapping):
        return Declaration(name, default=value, has_default=True)
    where = f"recipe {recipe!r}: variable {name!r}"
    unknown = [key for key in value if key not in DECLARATION_KEYS]
    if unknown:
        raise InvalidArgumentError(f"{where} has unknown key {unknown[0]!r}; valid: {choices(DECLARATION_KEYS)}")
    config = value.get("config") or ()
    config = (config,) if isinstance(config, str) else tuple(config)
    blocks = value.get("blocks") or ()
    blocks = (blocks,) if isinstance(blocks, str) else tuple(blocks)
    if any(not isinstance(pattern, str) or "{i}" not in pattern for pattern in blocks):
        raise InvalidArgumentError(f"{where}: blocks must be path patterns with the capture {{i}}; got {blocks!r}")
    shape = value.get("shape")
    if shape is not None:
        if (
            not isinstance(shape, Mapping)
            or not isinstance(shape.get("match"), str)
            or type(shape.get("dim")) is not int
        ):
            raise InvalidArgumentError(f"{where}: shape must be {{match: <pattern>, dim: <int>}}; got {shape!r}")
        shape = (shape["match"], shape["dim"])
    return Declaration(
        name, config, value.get("none"), blocks, shape, value.get("default"), has_default="default" in value
    )


def tree_shapes(model: Any) -> dict[str, tuple[int, ...]]:
    """{dotted name: shape} of a torch module's parameters (tied names included) or of a parameter spec."""
    if hasattr(model, "named_parameters"):
        return {name: tuple(p.shape) for name, p in model.named_parameters(remove_duplicate=False)}
    return {path: tuple(getattr(leaf, "shape", leaf)) for path, leaf in flatten(model).items()}


def config_value(config: Any, name: str) -> tuple[bool, Any]:
    """(whether `config` has `name`, its value): a mapping's key or an object's attribute."""
    if isinstance(config, Mapping):
        return name in config, config.get(name)
    return hasattr(config, name), getattr(config, name, None)


def _count_blocks(patterns: tuple[str, ...], tree: Mapping[str, tuple[int, ...]]) -> int | None:
    indices: set[int] = set()
    for compiled in map(compile_pattern, patterns):
        indices.update(found["i"] for path in tree if (found := compiled.match(path)) is not None)
    if not indices:
        return None
    if indices != set(range(len(indices))):
        missing = min(set(range(max(indices) + 1)) - indices)
        raise InvalidArgumentError(f"the model's blocks {patterns[0]} are not numbered 0 ... n-1: {missing} is missing")
    return len(indices)


def _shape_dim(match: str, dim: int, tree: Mapping[str, tuple[int, ...]]) -> tuple[int, str] | None:
    compiled = compile_pattern(match)
    found = {path: shape for path, shape in tree.items() if compiled.matches(path) and len(shape) > dim}
    if not found:
        return None
    sizes = {shape[dim] for shape in found.values()}
    if len(sizes) > 1:
        raise InvalidArgumentError(f"the tensors {match} have different sizes {sorted(sizes)} in dimension {dim}")
    path = next(iter(found))
    return found[path][dim], f"tree: {path}.shape[{dim}]"


def readings(
    declaration: Declaration, config: Any, tree: Mapping[str, tuple[int, ...]] | None
) -> list[tuple[Any, str]]:
    """(value, source) of every reading of the variable the model offers."""
    found: list[tuple[Any, str]] = []
    if config is not None:
        for attribute in declaration.config:
            present, value = config_value(config, attribute)
            if present and (value is not None or declaration.none is not None):
                found.append((declaration.none if value is None else value, f"model.config.{attribute}"))
                break
    if tree is not None and declaration.blocks:
        count = _count_blocks(declaration.blocks, tree)
        if count is not None:
            found.append((count, f"tree: {count} blocks {declaration.block_name}"))
    if tree is not None and declaration.shape:
        size = _shape_dim(*declaration.shape, tree)
        if size is not None:
            found.append(size)
    return found


def resolve(
    recipe: str,
    declared: Mapping[str, Declaration],
    given: Mapping[str, Any],
    *,
    config: Any = None,
    tree: Mapping[str, tuple[int, ...]] | None = None,
) -> tuple[dict[str, Any], dict[str, str]]:
    """({variable: value}, {variable: source}) of the recipe's variables for this model and these values."""
    values: dict[str, Any] = {}
    sources: dict[str, str] = {}
    for name, declaration in declared.items():
        try:
            read = readings(declaration, config, tree)
        except InvalidArgumentError as error:
            raise InvalidArgumentError(f"recipe {recipe!r}: variable {name!r}: {error}") from None
        for value, source in read[1:]:
            if value != read[0][0]:
                raise InvalidArgumentError(
                    f"recipe {recipe!r}: variable {name!r} is {read[0][0]!r} by {read[0][1]} but {value!r} by {source}"
                )
        if name in given:
            value = declaration.none if given[name] is None and declaration.none is not None else given[name]
            if read and value != read[0][0]:
                raise InvalidArgumentError(
                    f"recipe {recipe!r}: {name}={given[name]!r} was given but the model has {read[0][0]!r} "
                    f"({read[0][1]})"
                )
            values[name], sources[name] = value, read[0][1] if read else GIVEN
        elif read:
            values[name], sources[name] = read[0]
        elif declaration.has_default:
            values[name], sources[name] = declaration.default, DEFAULT
        elif declaration.readers():
            raise InvalidArgumentError(
                f"recipe {recipe!r} needs variable {name!r}, read from {declaration.readers()}: "
                f"pass the model (load({recipe!r}, model)) or give {name}=..."
            )
        else:
            raise InvalidArgumentError(
                f"recipe {recipe!r} needs variable {name!r}, which no model holds: give {name}=..."
            )
    return values, sources
