"""Parameter trees: dotted paths, glob rules, the plan, and `init_tree`.

A spec is a mapping whose leaves are shapes (sequences of ints) or arrays (anything with `.shape`
and `.dtype`, of which only those two are read); nested mappings and lists of subtrees add path
components, so ``{"dense": {"kernel": (784, 256)}}`` and ``{"dense.kernel": (784, 256)}`` both name
the parameter ``dense.kernel``.

Rules map names to ``{match, init, dtype?, layout?, index?}``. `match` is a shell-style glob over the
whole dotted path, case-sensitive, in which ``*`` also crosses dots and ``{name}`` captures a run of
digits as an int (see initreg.patterns). For each parameter the last matching rule wins, like
.gitignore. A rule matching nothing and a parameter matching no rule are errors unless relaxed
(`allow_unused_rules`, `allow_unmatched_params`; unmatched parameters are then left out).

Rule language beyond globs (docs/rules.md, "Rule semantics"):

- init arguments may be expressions, ``stddev: "=0.02 / sqrt(2 * n_layer)"`` (initreg.expressions),
  over the captures, the rule set's `variables` and the parameter's fans and shape (PARAMETER_NAMES);
  they are evaluated in `plan`, so every PlanEntry holds a concrete initializer.
- A rule with ``index: "[0]"`` (NumPy basic indexing, entries may be int expressions) sets only that
  region: last-match-wins applies element-wise. The values are those of the parameter's last matching
  whole-tensor rule, overwritten in rule order by the later matching index rules, each giving its
  region the values its initializer's whole tensor has there, drawn from the parameter's own stream
  (initreg.initializers.overlay): a slice of the result is still the same slice of the whole.
- `ties` ({alias: parameter}) makes alias another name of the same tensor: rules are matched against
  all of its names (the last rule matching any of them wins), it is drawn once from the parameter's
  stream and written once, under the parameter's name; `init_tree` puts the same array at the alias
  if the spec has it.

Parameter p is drawn from the stream ``derive_key(seed, p)``: its values depend on (seed, p) only,
not on the other parameters, their order, or the initializer's own seed.

`init_tree` holds the whole tree in memory. `save_tree` streams it into a .safetensors file instead:
each parameter is made in pieces of consecutive rows (``generate_slice`` of a row range, which is a
contiguous range of the file) of at most `chunk_bytes` each, so that memory is bounded by
`chunk_bytes`, not by the tree. The file is byte-identical to ``io.save`` of `init_tree`'s arrays.
"""

from __future__ import annotations

import itertools
import math
import numbers
import os
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from initreg import io, memory
from initreg.backends.numpy import NumpyBackend, fused_kernels
from initreg.backends.registry import get_backend
from initreg.dtypes import numpy_dtype, standardize_dtype
from initreg.errors import InitregError, InvalidArgumentError, choices
from initreg.expressions import compile_index
from initreg.initializers.base import Array, Initializer, Shape, standardize_shape
from initreg.initializers.lookup import get
from initreg.initializers.overlay import Overlay, Part
from initreg.initializers.variance_scaling import LAYOUTS, VarianceScaling, compute_fans
from initreg.patterns import PathPattern, PatternIndex, compile_pattern
from initreg.plain import plain
from initreg.progress import WriteProgress
from initreg.rng import derive_key
from initreg.slicing import forward_slices, normalize_index, slices_independently, stream_seed
from initreg.templates import (
    PARAMETER_NAMES,
    RESERVED_NAMES,
    InitTemplate,
    check_variables,
    has_expressions,
    parameter_values,
)

if TYPE_CHECKING:
    from initreg.backends.base import Backend

Leaf = Any  # a Shape, or an array-like with .shape and .dtype
RULE_KEYS = ("match", "init", "dtype", "layout", "index", "optional")
SHOWN = 5  # names listed in an error message before "and N more"
DEFAULT_CHUNK_BYTES = 64 << 20  # 64 MiB: the most bytes of values save_tree holds at once (by default)


@dataclass(frozen=True)
class Rule:
    """Parameters whose dotted path matches the pattern `match` get `init`, in `dtype`/`layout` if set.

    `init` is an Initializer, or an InitTemplate whose expressions read `variables`, the captures and
    the parameter (see `initializer_for`). With `index`, the rule sets only that region of a tensor.
    An `optional` rule matching nothing is not an error.
    """

    name: str
    match: str
    init: Initializer | InitTemplate
    dtype: str | None = None
    layout: str | None = None
    index: str | None = None
    optional: bool = False  # may match no parameter (a recipe's rule for tensors some models lack)
    variables: Mapping[str, Any] = field(default_factory=dict, hash=False)
    pattern: PathPattern = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "pattern", compile_pattern(self.match))

    def matches(self, path: str) -> bool:
        """Whether the pattern matches the whole path (case-sensitive; ``*`` crosses dots)."""
        return self.pattern.matches(path)

    def captures(self, path: str) -> dict[str, int] | None:
        """The pattern's captures for `path` ({} without captures), or None if it does not match."""
        return self.pattern.match(path)

    def _values(self, captured: Mapping[str, int], shape: Shape, layout: str | None) -> dict[str, Any]:
        return {**self.variables, **parameter_values(shape, layout), **captured}

    def initializer_for(self, captured: Mapping[str, int], shape: Shape, layout: str | None) -> Initializer:
        """The concrete initializer for a parameter of `shape` whose path gave `captured`."""
        if isinstance(self.init, Initializer):
            return self.init
        return self.init.resolve(self._values(captured, shape, layout))

    def region_for(self, captured: Mapping[str, int], shape: Shape, layout: str | None) -> tuple[slice, ...]:
        """The positive-step slices of `shape` that `index` selects (the whole tensor without one)."""
        if self.index is None:
            return tuple(slice(0, size, 1) for size in shape)
        slices, _ = normalize_index(compile_index(self.index).evaluate(self._values(captured, shape, layout)), shape)
        return forward_slices(slices, shape)[0]


@dataclass(frozen=True)
class PlanEntry:
    """What one parameter gets: its winning rule, initializer, dtype, layout, fans and target std.

    `target_std` is NaN for an initializer that cannot tell it.
    """

    path: str
    shape: Shape
    dtype: str
    rule: str
    initializer: Initializer
    layout: str | None
    fan_in: int
    fan_out: int
    target_std: float
    aliases: tuple[str, ...] = ()  # other names of the same tensor (ties)

    @property
    def size(self) -> int:
        """The number of elements."""
        return math.prod(self.shape)

    @property
    def nbytes(self) -> int:
        """The number of bytes of its values."""
        return self.size * int(numpy_dtype(self.dtype).itemsize)


def _prefix(error: InitregError, subject: str) -> None:
    """Puts `subject` before the error's message (keeping its type)."""
    error.args = (f"{subject}: {error}",)


@contextmanager
def _about(subject: str) -> Iterator[None]:
    """Prefixes the message of an InitregError raised inside with `subject`."""
    try:
        yield
    except InitregError as error:
        _prefix(error, subject)
        raise


def _listing(names: Sequence[str]) -> str:
    shown = choices(names[:SHOWN])
    return shown + (f" and {len(names) - SHOWN} more" if len(names) > SHOWN else "")


# --- trees -------------------------------------------------------------------------------------


def _is_array(value: Any) -> bool:
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


def _children(node: Any) -> list[tuple[Any, str]] | None:
    """(key, name) pairs of a subtree node, or None for a leaf."""
    if type(node) is dict or isinstance(node, Mapping):
        return [(key, _key_name(key)) for key in node]
    if isinstance(node, (list, tuple)) and not _is_shape(node):
        return [(index, str(index)) for index in range(len(node))]
    return None


def _walk(node: Any, prefix: str) -> Iterator[tuple[str, Leaf]]:
    children = _children(node)
    if children is None:
        yield prefix, node
        return
    for key, name in children:
        yield from _walk(node[key], f"{prefix}.{name}" if prefix else name)


def flatten(spec: Mapping[str, Any]) -> dict[str, Shape | Array]:
    """The leaves of a spec by dotted path, in tree order: shapes as tuples, arrays as given."""
    if not isinstance(spec, Mapping):
        raise InvalidArgumentError(f"a parameter spec must be a mapping of paths to shapes or arrays; got {spec!r}")
    flat: dict[str, Shape | Array] = {}
    for path, leaf in _walk(spec, ""):
        if path in flat:
            raise InvalidArgumentError(f"parameter path {path!r} appears twice in the spec")
        if _is_array(leaf):
            flat[path] = leaf
        elif _is_shape(leaf):
            try:  # what _about does, without the cost of a context manager per parameter
                flat[path] = standardize_shape(leaf)
            except InitregError as error:
                _prefix(error, f"parameter {path!r}")
                raise
        else:
            raise InvalidArgumentError(f"parameter {path!r} is {leaf!r}; valid: a shape (list of ints) or an array")
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
    built = []
    for key, name in children:
        value = _rebuild(node[key], f"{prefix}.{name}" if prefix else name, flat)
        if value is not _LEFT_OUT:
            built.append((key, value))
    if isinstance(node, Mapping):
        return dict(built)
    return type(node)(value for _, value in built)


# --- rules -------------------------------------------------------------------------------------


def _initializer(value: Any) -> Initializer:
    """An Initializer from a name, {name, **config} (a Hydra node too), a Keras dict, or an instance."""
    if not isinstance(value, (str, Initializer, Mapping)):
        raise InvalidArgumentError(
            f"init {value!r} is not an initializer; valid: a name, {{name: ..., **config}}, a Keras dict "
            "or an Initializer"
        )
    found = get(value)
    if not isinstance(found, Initializer):
        raise InvalidArgumentError(f"init {value!r} is a plain callable; a tree needs an initreg Initializer")
    return found


def _layout(value: Any) -> str | None:
    if value is not None and value not in LAYOUTS:
        raise InvalidArgumentError(f"unknown layout {value!r}; valid: {choices(LAYOUTS)}")
    return None if value is None else str(value)


def _init_or_template(value: Any) -> Initializer | InitTemplate:
    """An InitTemplate for ``{name, **config}`` with expression values, else an Initializer."""
    if isinstance(value, Mapping) and isinstance(value.get("name"), str) and has_expressions(value):
        config = {key: item for key, item in value.items() if key != "_target_"}  # a Hydra node's, as in get
        return InitTemplate(config.pop("name"), config)
    return _initializer(value)


def _check_names(rule: Rule) -> None:
    """Raises if a capture shadows a variable or a parameter name, or an expression reads an unknown name."""
    captures = rule.pattern.captures
    for capture in captures:
        if capture in rule.variables or capture in RESERVED_NAMES:
            raise InvalidArgumentError(
                f"capture {{{capture}}} in {rule.match!r} has the name of a variable or of {choices(RESERVED_NAMES)}"
            )
    known = [*rule.variables, *PARAMETER_NAMES, *captures]
    if isinstance(rule.init, InitTemplate):
        for expression in rule.init.expressions():
            expression.check_names(known)
    if rule.index is not None:
        compile_index(rule.index).check_names(known)


def _rule(name: str, value: Mapping[str, Any], variables: Mapping[str, Any]) -> Rule:
    unknown = [key for key in value if key not in RULE_KEYS]
    if unknown:
        raise InvalidArgumentError(f"unknown key {unknown[0]!r}; valid: {choices(RULE_KEYS)}")
    match = value.get("match")
    if not isinstance(match, str) or not match:
        raise InvalidArgumentError(f"'match' must be a glob such as '*.kernel'; got {match!r}")
    if value.get("init") is None:
        raise InvalidArgumentError("'init' is missing; give a name such as 'lecun_normal' or {name: ..., **config}")
    dtype, index = value.get("dtype"), value.get("index")
    if index is not None and dtype is not None:
        raise InvalidArgumentError("a rule with an 'index' sets part of a tensor and cannot set its 'dtype'")
    if index is not None and not isinstance(index, str):
        raise InvalidArgumentError(f"'index' must be a string such as '[0]' or '[:, 0:d_model]'; got {index!r}")
    optional = value.get("optional", False)
    if not isinstance(optional, bool):
        raise InvalidArgumentError(f"'optional' must be true or false; got {optional!r}")
    rule = Rule(
        name=name,
        match=match,
        init=_init_or_template(value["init"]),
        dtype=None if dtype is None else standardize_dtype(dtype),
        layout=_layout(value.get("layout")),
        index=index,
        optional=optional,
        variables=variables,
    )
    _check_names(rule)
    return rule


def parse_rules(
    rules: Mapping[str, Mapping[str, Any] | Rule | None], variables: Mapping[str, Any] | None = None
) -> list[Rule]:
    """Rules in order from ``{name: {match, init, dtype?, layout?, index?, optional?}}``; None drops a rule.

    `init` is a registered name, ``{name: ..., **config}`` (config values may be expressions), a Keras
    dict or an Initializer. `rules` may be a Hydra node (an OmegaConf DictConfig, such as ``cfg.rules``).
    `variables` ({name: number}) are the names expressions may read besides the captures and
    PARAMETER_NAMES; an expression reading any other name raises here.
    """
    if not isinstance(rules, Mapping):
        raise InvalidArgumentError(f"rules must be a mapping of rule names to {{match, init}}; got {rules!r}")
    checked = check_variables(variables)
    parsed = []
    for name, value in plain(rules).items():
        if value is None:
            continue
        with _about(f"rule {name!r}"):
            if isinstance(value, Rule):
                parsed.append(replace(value, name=str(name)))
            elif isinstance(value, Mapping):
                parsed.append(_rule(str(name), value, checked))
            else:
                raise InvalidArgumentError(
                    f"expected {{match, init, dtype?, layout?, index?, optional?}}; got {value!r}"
                )
    return parsed


# --- the plan ----------------------------------------------------------------------------------


def _fans(initializer: Initializer, shape: Shape, layout: str | None) -> tuple[int, int]:
    if isinstance(initializer, VarianceScaling):
        return initializer.fans(shape, layout)
    return compute_fans(shape, layout=layout)


def _target_std(initializer: Initializer, shape: Shape, layout: str | None) -> float:
    try:
        return initializer.target_std(shape, layout)
    except NotImplementedError:
        return math.nan


def _check_coverage(
    paths: Sequence[str], rules: Sequence[Rule], index: PatternIndex, winners: Mapping[str, Any],
    aliases: Sequence[str], *, allow_unmatched_params: bool, allow_unused_rules: bool,
) -> None:  # fmt: skip
    """Raises for parameters without a rule and rules whose pattern matches no path or alias, unless allowed.

    A rule that matches parameters but is overridden by later rules for all of them is not unused.
    """
    unmatched = [path for path in paths if path not in winners]
    if unmatched and not allow_unmatched_params:
        known = ", ".join(f"{rule.name!r} ({rule.match!r})" for rule in rules) or "(none)"
        raise InvalidArgumentError(
            f"{len(unmatched)} parameter(s) match no rule: {_listing(unmatched)}; rules: {known}; "
            "add a rule or pass allow_unmatched_params=True"
        )
    if allow_unused_rules:
        return
    used = _matched_rules((*paths, *aliases), rules, index)
    unused = [rule for position, rule in enumerate(rules) if not rule.optional and position not in used]
    if unused:
        named = ", ".join(f"{rule.name!r} ({rule.match!r})" for rule in unused)
        raise InvalidArgumentError(
            f"rule(s) {named} match no parameter; parameters: {_listing(list(paths)) or '(none)'}; "
            "fix the pattern or pass allow_unused_rules=True"
        )


def _matched_rules(names: Sequence[str], rules: Sequence[Rule], index: PatternIndex) -> set[int]:
    """The positions of the rules that match at least one of `names` (testing only `index`'s candidates)."""
    used: set[int] = set()
    for name in names:
        used.update(
            position for position in index.candidates(name) if position not in used and rules[position].matches(name)
        )
    return used


def _shape_and_dtype(leaf: Any, default_dtype: str) -> tuple[Shape, str]:
    """An array leaf's shape and dtype, or a shape leaf with the tree's dtype."""
    if _is_array(leaf):
        return standardize_shape(tuple(leaf.shape)), standardize_dtype(leaf.dtype)
    return leaf, default_dtype


def _as_rules(rules: Mapping[str, Any] | Sequence[Rule], variables: Mapping[str, Any] | None) -> list[Rule]:
    if isinstance(rules, Mapping):
        return parse_rules(rules, variables)
    if isinstance(rules, Sequence) and all(isinstance(rule, Rule) for rule in rules):
        if variables is not None:
            raise InvalidArgumentError("variables go with a mapping of rules; parsed Rules hold their own")
        return list(rules)
    raise InvalidArgumentError(f"rules must be a mapping of rule names to {{match, init}}; got {rules!r}")


def _tie(flat: dict[str, Any], ties: Mapping[str, str] | None) -> dict[str, tuple[str, ...]]:
    """{parameter: its aliases} of `ties` ({alias: parameter}); an alias in `flat` is taken out of it.

    The parameter must be in the spec and not itself an alias; an alias in the spec must have its shape.
    """
    if not ties:
        return {}
    if not isinstance(ties, Mapping):
        raise InvalidArgumentError(f"ties must be a mapping of alias paths to parameter paths; got {ties!r}")
    aliases: dict[str, tuple[str, ...]] = {}
    for alias, target in ties.items():
        if not isinstance(alias, str) or not isinstance(target, str) or alias == target:
            raise InvalidArgumentError(f"tie {alias!r}: {target!r} must name two different paths")
        if target not in flat or target in ties:
            raise InvalidArgumentError(
                f"tie {alias!r}: {target!r} names no parameter of the spec that is not itself tied; "
                f"parameters: {_listing([path for path in flat if path not in ties])}"
            )
        if alias in flat:
            shapes = [_shape_and_dtype(flat[path], "float32")[0] for path in (alias, target)]
            if shapes[0] != shapes[1]:
                raise InvalidArgumentError(f"tie {alias!r} {shapes[0]}: {target!r} has another shape, {shapes[1]}")
            del flat[alias]
        aliases[target] = (*aliases.get(target, ()), alias)
    return aliases


def _first_captures(rule: Rule, names: Sequence[str]) -> dict[str, int] | None:
    """The captures of the first of `names` that `rule` matches, or None."""
    for name in names:
        captured = rule.captures(name)
        if captured is not None:
            return captured
    return None


Match = tuple[Rule, dict[str, int]]  # a rule and the captures of the name it matched


def _winners(names: Sequence[str], rules: Sequence[Rule], index: PatternIndex) -> tuple[Match, list[Match]] | None:
    """The last whole-tensor rule matching any of a tensor's names, and the index rules after it, in order.

    Only `index`'s candidates for the names are tested: the others cannot match.
    """
    overlays: list[Match] = []
    for position in sorted({position for name in names for position in index.candidates(name)}, reverse=True):
        rule = rules[position]
        captured = _first_captures(rule, names)
        if captured is None:
            continue
        if rule.index is None:
            return (rule, captured), overlays[::-1]
        overlays.append((rule, captured))
    return None


def _overlay(base: Initializer, overlays: Sequence[Match], shape: Shape, layout: str | None) -> Initializer:
    """`base`, or an Overlay of it with each index rule's region and initializer."""
    if not overlays:
        return base
    parts = []
    for rule, captured in overlays:
        own_layout = rule.layout or layout
        with _about(f"rule {rule.name!r}"):
            parts.append(
                Part(
                    rule.region_for(captured, shape, own_layout),
                    rule.initializer_for(captured, shape, own_layout),
                    rule.layout,
                )
            )
    return Overlay(base, parts)


def plan(
    spec: Mapping[str, Any],
    rules: Mapping[str, Any] | Sequence[Rule],
    *,
    dtype: Any = "float32",
    layout: str | None = None,
    variables: Mapping[str, Any] | None = None,
    ties: Mapping[str, str] | None = None,
    allow_unmatched_params: bool = False,
    allow_unused_rules: bool = False,
) -> list[PlanEntry]:
    """What every parameter of `spec` will get, in tree order; draws nothing.

    dtype: a rule's dtype, else an array leaf's own dtype, else `dtype`. layout ("keras", the
    default, or "torch"): a rule's, else `layout`; it sets how fans are read from the shape.
    variables: the names rule expressions may read (with a mapping of rules). ties: {alias: parameter},
    other names of a parameter (see the module docstring).
    """
    dtype = standardize_dtype(dtype)
    layout = _layout(layout)
    parsed = _as_rules(rules, variables)
    flat = flatten(spec)
    aliases = _tie(flat, ties)
    index = PatternIndex([rule.pattern for rule in parsed])
    winners = {}
    for path in flat:
        found = _winners((path, *aliases.get(path, ())), parsed, index)
        if found is not None:
            winners[path] = found
    _check_coverage(
        list(flat), parsed, index, winners, [alias for names in aliases.values() for alias in names],
        allow_unmatched_params=allow_unmatched_params, allow_unused_rules=allow_unused_rules,
    )  # fmt: skip
    entries = []
    described: dict[tuple[int, Shape, str | None], tuple[int, int, float]] = {}  # trees repeat their shapes
    for path, leaf in flat.items():
        if path not in winners:
            continue
        (rule, captured), overlays = winners[path]
        name = "+".join(matched.name for matched, _ in ((rule, captured), *overlays))
        try:  # what _about does, without the cost of a context manager per parameter
            shape, own_dtype = _shape_and_dtype(leaf, dtype)
            chosen_layout = rule.layout or layout
            base = rule.initializer_for(captured, shape, chosen_layout)
            seen = (id(base), shape, chosen_layout)
            if seen not in described:
                fans = _fans(base, shape, chosen_layout)
                described[seen] = (*fans, _target_std(base, shape, chosen_layout))
            initializer = _overlay(base, overlays, shape, chosen_layout)
        except InitregError as error:
            _prefix(error, f"parameter {path!r} (rule {name!r})")
            raise
        fan_in, fan_out, target_std = described[seen]
        entries.append(
            PlanEntry(
                path=path,
                shape=shape,
                dtype=rule.dtype or own_dtype,
                rule=name,
                initializer=initializer,
                layout=chosen_layout,
                fan_in=fan_in,
                fan_out=fan_out,
                target_std=initializer.target_std(shape, chosen_layout) if overlays else target_std,
                aliases=aliases.get(path, ()),
            )
        )
    return entries


# --- drawing -----------------------------------------------------------------------------------


def generate(entry: PlanEntry, seed: int, backend: Any = None) -> Array:
    """One parameter, drawn from the stream keyed by (seed, entry.path) on `backend` (a name or Backend)."""
    return _generate(entry, stream_seed(seed), get_backend(backend))


def _generate(entry: PlanEntry, seed: int, backend: Backend) -> Array:
    """`generate` with a checked seed and a ready backend: the loop body of trees of many small tensors.

    A draw that needs more memory than is available is refused before anything is allocated (see
    `require_draw`).
    """
    try:
        require_draw(entry.initializer, entry.shape, entry.dtype, entry.layout, backend)
        return entry.initializer.generate(
            entry.shape, entry.dtype, key=derive_key(seed, entry.path), backend=backend, layout=entry.layout
        )
    except InitregError as error:  # what _about does, without the cost of a context manager per parameter
        _prefix(error, f"parameter {entry.path!r} (rule {entry.rule!r})")
        raise


def draw_peak_bytes(initializer: Initializer, shape: Shape, dtype: str, layout: str | None, fused: bool) -> int:
    """Bytes `initializer.generate(shape, dtype, ...)` holds at its peak on the NumPy backend (initreg.memory).

    An initializer with `peak_bytes` (Orthogonal, Identity) states its own; an Overlay needs its base's,
    or its output plus the largest of its parts' over the whole shape; any other draws element-wise.
    """
    own = getattr(initializer, "peak_bytes", None)
    if own is not None:
        return int(own(shape, dtype, layout, fused))
    if isinstance(initializer, Overlay):
        base = draw_peak_bytes(initializer.base, shape, dtype, layout, fused)
        parts = [draw_peak_bytes(part.initializer, shape, dtype, layout, fused) for part in initializer.parts]
        return max(base, math.prod(shape) * memory.itemsize(dtype) + max(parts, default=0))
    return memory.elementwise_peak_bytes(shape, dtype, fused)


def require_draw(
    initializer: Initializer, shape: Shape, dtype: str, layout: str | None, backend: Backend, holding: int = 0
) -> None:
    """Raises OutOfMemoryError if `holding` bytes plus a draw of `shape` on NumPy exceed the available memory.

    Other backends' memory is not checked; nor is a need below memory.MIN_CHECKED_BYTES.
    """
    if holding + math.prod(shape) * memory.MAX_BYTES_PER_ELEMENT < memory.MIN_CHECKED_BYTES:
        return
    if isinstance(backend, NumpyBackend):
        needed = holding + draw_peak_bytes(initializer, shape, dtype, layout, fused_kernels() is not None)
        memory.require(needed, f"a {dtype} tensor of shape {list(shape)} drawn by {initializer!r}")


def init_tree(
    spec: Mapping[str, Any],
    rules: Mapping[str, Any] | Sequence[Rule],
    seed: int = 0,
    dtype: Any = "float32",
    backend: Any = None,
    *,
    layout: str | None = None,
    variables: Mapping[str, Any] | None = None,
    ties: Mapping[str, str] | None = None,
    allow_unmatched_params: bool = False,
    allow_unused_rules: bool = False,
) -> Any:
    """A tree of `spec`'s structure holding a freshly drawn array for every parameter (see `plan`).

    Parameter p gets ``rule.init.generate(shape, dtype, key=derive_key(seed, p), ...)``: the same
    (seed, p) always gives the same values, whatever else is in the tree. A tied alias in the spec
    gets the very array of its parameter.
    """
    entries = plan(
        spec, rules, dtype=dtype, layout=layout, variables=variables, ties=ties,
        allow_unmatched_params=allow_unmatched_params, allow_unused_rules=allow_unused_rules,
    )  # fmt: skip
    chosen, seed = get_backend(backend), stream_seed(seed)
    return unflatten(with_aliases(entries, [_generate(entry, seed, chosen) for entry in entries]), like=spec)


def with_aliases(entries: Sequence[PlanEntry], values: Sequence[Any]) -> dict[str, Any]:
    """{path: value} of planned entries and their values, with each tied alias holding its parameter's value."""
    return {name: value for entry, value in zip(entries, values, strict=True) for name in (entry.path, *entry.aliases)}


# --- streaming ---------------------------------------------------------------------------------


def _chunk_bytes(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 1:
        raise InvalidArgumentError(f"chunk_bytes must be a positive integer (bytes); got {value!r}")
    return int(value)


def chunk_indices(shape: Shape, itemsize: int, chunk_bytes: int) -> Iterator[tuple[slice, ...]]:
    """Indices of consecutive pieces of a row-major tensor of rank >= 1, in order, of <= chunk_bytes each.

    Pieces run along axis a, the first axis whose rows (the axes after it, whole) fit in chunk_bytes:
    a piece is as many such rows as fit, at single positions of the axes before a, ``(i, j, k0:k1, :, :)``
    for a = 2.
    Its elements are a contiguous range of the flattened tensor, and the pieces cover it in order.
    A single element larger than chunk_bytes makes a piece of its own.
    """
    last = len(shape) - 1
    axis = next(a for a in range(len(shape)) if a == last or math.prod(shape[a + 1 :]) * itemsize <= chunk_bytes)
    rows = max(1, chunk_bytes // (math.prod(shape[axis + 1 :]) * itemsize))
    trailing = tuple(slice(0, size, 1) for size in shape[axis + 1 :])
    for outer in itertools.product(*(range(size) for size in shape[:axis])):
        leading = tuple(slice(i, i + 1, 1) for i in outer)
        for start in range(0, shape[axis], rows):
            yield (*leading, slice(start, min(start + rows, shape[axis]), 1), *trailing)


def _slices_cheaply(initializer: Initializer) -> bool:
    """Whether `initializer` makes a slice without making the whole tensor (not Orthogonal, not the default)."""
    return slices_independently(initializer) and type(initializer).generate_slice is not Initializer.generate_slice


def _comes_whole(entry: PlanEntry, chunk_bytes: int) -> bool:
    """Whether `generate_chunks` gives `entry` as one piece: it fits a chunk, is 0-d, or cannot slice cheaply."""
    return entry.nbytes <= chunk_bytes or not entry.shape or not _slices_cheaply(entry.initializer)


def generate_chunks(
    entry: PlanEntry, seed: int, backend: Any = None, chunk_bytes: int = DEFAULT_CHUNK_BYTES
) -> Iterator[Any]:
    """`entry`'s parameter as NumPy arrays of <= chunk_bytes each whose values, in turn, are its row-major values.

    Each piece is ``generate_slice`` of a range of rows (see `chunk_indices`), so it equals that part of
    `generate`'s tensor. A tensor of <= chunk_bytes, and one whose initializer cannot make a slice
    without making the whole tensor (Orthogonal, Identity), comes whole, as one piece.
    """
    chosen, seed, chunk_bytes = get_backend(backend), stream_seed(seed), _chunk_bytes(chunk_bytes)
    if _comes_whole(entry, chunk_bytes):
        yield chosen.to_numpy(_generate(entry, seed, chosen))
        return
    key, itemsize = derive_key(seed, entry.path), int(numpy_dtype(entry.dtype).itemsize)
    for index in chunk_indices(entry.shape, itemsize, chunk_bytes):
        with _about(f"parameter {entry.path!r} (rule {entry.rule!r})"):
            piece = entry.initializer.generate_slice(
                entry.shape, index, entry.dtype, key=key, backend=chosen, layout=entry.layout
            )
        yield chosen.to_numpy(piece)


def assemble(entry: PlanEntry, seed: int, backend: Any = None, chunk_bytes: int = DEFAULT_CHUNK_BYTES) -> Any:
    """`entry`'s parameter as one NumPy array, equal to `generate`'s, holding at most one piece besides it.

    The array is allocated once and filled with the pieces of `generate_chunks` in order; a parameter
    that comes as one piece is that piece. The output and a piece's draw are checked against the
    available memory before the output is allocated.
    """
    import numpy as np

    chosen, seed, chunk_bytes = get_backend(backend), stream_seed(seed), _chunk_bytes(chunk_bytes)
    pieces = generate_chunks(entry, seed, chosen, chunk_bytes)
    if _comes_whole(entry, chunk_bytes):
        return next(pieces)
    piece = (min(entry.size, max(1, chunk_bytes // memory.itemsize(entry.dtype))),)
    with _about(
        f"parameter {entry.path!r} (rule {entry.rule!r}), {entry.nbytes} bytes held while its pieces are drawn"
    ):
        require_draw(entry.initializer, piece, entry.dtype, entry.layout, chosen, holding=entry.nbytes)
    values = np.empty(entry.size, numpy_dtype(entry.dtype))
    start = 0
    for drawn in pieces:
        values[start : start + drawn.size] = drawn.reshape(-1)
        start += drawn.size
    return values.reshape(entry.shape)


def save_entries(
    entries: Sequence[PlanEntry],
    seed: int,
    path: str | os.PathLike[str],
    *,
    backend: Any = None,
    chunk_bytes: int = DEFAULT_CHUNK_BYTES,
    metadata: Mapping[str, str] | None = None,
    quiet: bool = False,
    observe: Callable[[PlanEntry, Any], None] | None = None,
) -> Path:
    """Draws planned parameters straight into a .safetensors file, piece by piece (see `generate_chunks`).

    At most about `chunk_bytes` of values are held at once (plus a whole tensor whose initializer
    cannot make slices). ``observe(entry, piece)`` sees every piece before it is written. A progress
    bar runs on stderr unless `quiet` or stderr is not a terminal. The file's size is checked against
    the free space before anything is drawn (see `io.save_streamed`).
    """
    chosen, seed, chunk_bytes = get_backend(backend), stream_seed(seed), _chunk_bytes(chunk_bytes)
    planned = {entry.path: entry for entry in entries}
    tensors = [io.TensorInfo(entry.path, entry.shape, entry.dtype) for entry in entries]
    with WriteProgress(sum(entry.nbytes for entry in entries), len(entries), quiet=quiet) as progress:

        def pieces(tensor: io.TensorInfo) -> Iterator[Any]:
            entry = planned[tensor.name]
            progress.start(entry.path)
            for piece in generate_chunks(entry, seed, chosen, chunk_bytes):
                if observe is not None:
                    observe(entry, piece)
                yield piece
                progress.advance(piece.nbytes)

        return io.save_streamed(tensors, pieces, path, metadata=metadata)


def save_tree(
    spec: Mapping[str, Any],
    rules: Mapping[str, Any] | Sequence[Rule],
    path: str | os.PathLike[str],
    seed: int = 0,
    dtype: Any = "float32",
    backend: Any = None,
    *,
    layout: str | None = None,
    variables: Mapping[str, Any] | None = None,
    ties: Mapping[str, str] | None = None,
    allow_unmatched_params: bool = False,
    allow_unused_rules: bool = False,
    chunk_bytes: int = DEFAULT_CHUNK_BYTES,
    metadata: Mapping[str, str] | None = None,
    quiet: bool = False,
) -> Path:
    """Writes the tree `init_tree` would make to a .safetensors file, holding <= ~chunk_bytes at a time.

    The file is byte-identical to ``io.save`` of `init_tree`'s arrays (tensors named by dotted path,
    in tree order; a tied tensor once, under its parameter's name) and is written atomically. See
    `plan` for the arguments, `save_entries` for the rest.
    """
    entries = plan(
        spec, rules, dtype=dtype, layout=layout, variables=variables, ties=ties,
        allow_unmatched_params=allow_unmatched_params, allow_unused_rules=allow_unused_rules,
    )  # fmt: skip
    return save_entries(entries, seed, path, backend=backend, chunk_bytes=chunk_bytes, metadata=metadata, quiet=quiet)
