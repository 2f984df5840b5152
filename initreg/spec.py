"""Parameter specs: trees of shapes or arrays, flattened to dotted paths and rebuilt.

A spec is a mapping whose leaves are shapes (sequences of ints) or arrays (anything with `.shape`
and `.dtype`, of which only those two are read); nested mappings and lists of subtrees add path
components, so ``{"dense": {"kernel": (784, 256)}}`` and ``{"dense.kernel": (784, 256)}`` both name
the parameter ``dense.kernel``.
"""

from __future__ import annotations

import numbers
from collections.abc import Iterable, Mapping
from typing import Any

from initreg.dtypes import standardize_dtype
from initreg.errors import InitregError, InvalidArgumentError, prefix_message
from initreg.initializers.base import Array, Shape, standardize_shape

Leaf = Any  # a Shape, or an array-like with .shape and .dtype


def is_array(value: Any) -> bool:
    """Whether a leaf is an array (has `.shape` and `.dtype`) rather than a shape."""
    return hasattr(value, "shape") and hasattr(value, "dtype")


def _is_shape(value: Any) -> bool:
    if not isinstance(value, (list, tuple)):
        return False
    for dim in value:  # a loop with a fast test for int: trees can hold many thousands of shapes
        if type(dim) is not int and (isinstance(dim, bool) or not isinstance(dim, numbers.Integral)):
            return False
    return True


def _key_name(key: Any) -> str:
    """A tree key's path component; a key that is not a non-empty string or an int raises."""
    if type(key) is str and key:
        return key
    if isinstance(key, bool) or not isinstance(key, (str, int)) or key == "":
        raise InvalidArgumentError(f"tree keys must be non-empty strings or ints; got {key!r}")
    return str(key)


def _children(node: Any) -> Iterable[tuple[Any, str, Any]] | None:
    """(key, name, child) of each child of a subtree node, in order, or None for a leaf."""
    if type(node) is dict or isinstance(node, Mapping):
        if all(type(key) is str and key for key in node):  # the common case: each key is its name
            return zip(node, node, node.values(), strict=True)  # (zip reuses its tuple as the loop unpacks it)
        return [(key, _key_name(key), node[key]) for key in node]
    if isinstance(node, (list, tuple)) and not _is_shape(node):
        return [(index, str(index), child) for index, child in enumerate(node)]
    return None


def _is_leaf(node: Any) -> bool:
    """Whether a node is a leaf: a shape, or anything that is neither a mapping nor a list or tuple."""
    if type(node) is tuple:  # the common leaf, tested first: trees can hold many thousands of shapes
        return _is_shape(node)
    if isinstance(node, Mapping):
        return False
    return not isinstance(node, (list, tuple)) or _is_shape(node)


def _flatten_into(flat: dict[str, Shape | Array], node: Any, prefix: str, shapes: dict[Shape, Shape]) -> None:
    """Adds the leaves under the subtree `node` to `flat` by dotted path; `shapes` holds those standardized."""
    for _, name, child in _children(node) or ():
        path = f"{prefix}.{name}" if prefix else name
        if not _is_leaf(child):
            _flatten_into(flat, child, path, shapes)
            continue
        if path in flat:
            raise InvalidArgumentError(f"parameter path {path!r} appears twice in the spec")
        if is_array(child):
            flat[path] = child
        elif isinstance(child, (list, tuple)):  # a leaf only when it is a shape
            try:  # what `about` does, without the cost of a context manager per parameter
                shape = shapes.get(tuple(child))
                flat[path] = shape if shape is not None else shapes.setdefault(tuple(child), standardize_shape(child))
            except InitregError as error:
                prefix_message(error, f"parameter {path!r}")
                raise
        else:
            raise InvalidArgumentError(f"parameter {path!r} is {child!r}; valid: a shape (list of ints) or an array")


def flatten(spec: Mapping[str, Any]) -> dict[str, Shape | Array]:
    """The leaves of a spec by dotted path, in tree order: shapes as tuples, arrays as given."""
    if not isinstance(spec, Mapping):
        raise InvalidArgumentError(f"a parameter spec must be a mapping of paths to shapes or arrays; got {spec!r}")
    flat: dict[str, Shape | Array] = {}
    _flatten_into(flat, spec, "", {})  # trees repeat their shapes
    return flat


def unflatten(flat: Mapping[str, Any], like: Any = None) -> Any:
    """Rebuilds a tree from dotted paths.

    With `like`, the result has like's structure (its keys, lists and tuples) with each leaf replaced
    by ``flat[path]``; leaves missing from `flat` are left out. Without it, paths are split at dots
    into nested dicts.
    """
    if like is not None:
        return _rebuild(like, "", flat)
    tree: dict[str, Any] = {}
    for path, value in flat.items():
        *parents, name = path.split(".")
        node = tree
        for part in parents:
            node = node.setdefault(part, {})
            if not isinstance(node, dict):
                raise InvalidArgumentError(f"path {path!r} runs through the leaf {part!r}")
        if name in node:
            raise InvalidArgumentError(f"path {path!r} is both a leaf and a subtree")
        node[name] = value
    return tree


_LEFT_OUT = object()  # what _rebuild gives for a leaf missing from `flat`


def _rebuild(node: Any, prefix: str, flat: Mapping[str, Any]) -> Any:
    children = _children(node)
    if children is None:
        return flat.get(prefix, _LEFT_OUT) if prefix else flat[prefix]  # a leaf at the root must be there
    built = {}
    for key, name, child in children:
        path = f"{prefix}.{name}" if prefix else name
        value = flat.get(path, _LEFT_OUT) if _is_leaf(child) else _rebuild(child, path, flat)
        if value is not _LEFT_OUT:
            built[key] = value
    return built if isinstance(node, Mapping) else type(node)(built.values())


def shape_and_dtype(leaf: Any, default_dtype: str) -> tuple[Shape, str]:
    """An array leaf's shape and dtype, or a shape leaf with the tree's dtype."""
    if type(leaf) is not tuple and is_array(leaf):  # a flattened spec holds its shapes as tuples
        return standardize_shape(tuple(leaf.shape)), standardize_dtype(leaf.dtype)
    return leaf, default_dtype
