"""The plan: which rule, initializer, dtype and layout every parameter of a spec gets; draws nothing.

For each parameter the last matching rule wins, like .gitignore. A rule matching nothing and a
parameter matching no rule are errors unless relaxed (`allow_unused_rules`, `allow_unmatched_params`;
unmatched parameters are then left out).

- A rule with ``index: "[0]"`` sets only that region: last-match-wins applies element-wise. The
  values are those of the parameter's last matching whole-tensor rule, overwritten in rule order by
  the later matching index rules, each giving its region the values its initializer's whole tensor
  has there, drawn from the parameter's own stream (initreg.initializers.overlay): a slice of the
  result is still the same slice of the whole.
- `ties` ({alias: parameter}) makes alias another name of the same tensor: rules are matched against
  all of its names (the last rule matching any of them wins where they agree), it is drawn once from the parameter's
  stream and written once, under the parameter's name; `init_tree` puts the same array at the alias
  if the spec has it. When the whole-tensor rules that its names match on their own give different
  initializers (a zero readout `lm_head.weight` tied to the embedding `wte.weight`), that is an error
  naming both, unless exactly one of them has ``wins_ties: true``, which then wins (the index rules
  after it still apply).
- Expressions are evaluated here, so every PlanEntry holds a concrete initializer.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from types import MappingProxyType
from typing import TYPE_CHECKING, Any

from initreg.dtypes import numpy_dtype
from initreg.errors import InitregError, InvalidArgumentError, about, listing, prefix_message
from initreg.initializers.base import Initializer, Shape
from initreg.initializers.overlay import Overlay, Part
from initreg.patterns import PatternIndex
from initreg.rules import Rule, RuleOptions, Rules, RuleSet
from initreg.spec import flatten, shape_and_dtype

if TYPE_CHECKING:
    from typing_extensions import Unpack


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


def _check_coverage(
    paths: Sequence[str], rules: Sequence[Rule], index: PatternIndex, unmatched: Sequence[str],
    aliases: Sequence[str], *, allow_unmatched_params: bool, allow_unused_rules: bool,
) -> None:  # fmt: skip
    """Raises for `unmatched` parameters (without a rule) and rules whose pattern matches no path or alias,
    unless allowed.

    A rule that matches parameters but is overridden by later rules for all of them is not unused.
    """
    if unmatched and not allow_unmatched_params:
        known = ", ".join(f"{rule.name!r} ({rule.match!r})" for rule in rules) or "(none)"
        raise InvalidArgumentError(
            f"{len(unmatched)} parameter(s) match no rule: {listing(unmatched)}; rules: {known}; "
            "add a rule or pass allow_unmatched_params=True"
        )
    if allow_unused_rules:
        return
    used = _matched_rules((*paths, *aliases), rules, index)
    unused = [rule for position, rule in enumerate(rules) if not rule.optional and position not in used]
    if unused:
        named = ", ".join(f"{rule.name!r} ({rule.match!r})" for rule in unused)
        raise InvalidArgumentError(
            f"rule(s) {named} match no parameter; parameters: {listing(list(paths)) or '(none)'}; "
            "fix the pattern or pass allow_unused_rules=True"
        )


def _matched_rules(names: Sequence[str], rules: Sequence[Rule], index: PatternIndex) -> set[int]:
    """The positions of the rules that match at least one of `names` (testing only `index`'s candidates)."""
    used: set[int] = set()
    for name in names:
        if len(used) == len(rules):
            break  # every rule is used: no name can add one
        used.update(
            position for position in index.candidates(name) if position not in used and rules[position].matches(name)
        )
    return used


def _tie(flat: dict[str, Any], ties: Mapping[str, str]) -> dict[str, tuple[str, ...]]:
    """{parameter: its aliases} of `ties` ({alias: parameter}); an alias in `flat` is taken out of it.

    The parameter must be in the spec and not itself an alias; an alias in the spec must have its shape.
    """
    aliases: dict[str, tuple[str, ...]] = {}
    for alias, target in ties.items():
        if not isinstance(alias, str) or not isinstance(target, str) or alias == target:
            raise InvalidArgumentError(f"tie {alias!r}: {target!r} must name two different paths")
        if target not in flat or target in ties:
            raise InvalidArgumentError(
                f"tie {alias!r}: {target!r} names no parameter of the spec that is not itself tied; "
                f"parameters: {listing([path for path in flat if path not in ties])}"
            )
        if alias in flat:
            shapes = [shape_and_dtype(flat[path], "float32")[0] for path in (alias, target)]
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


Match = tuple[Rule, Mapping[str, int]]  # a rule and the captures of the name it matched
Winners = tuple[Match, Sequence[Match]]  # a whole-tensor rule's match and those of the index rules after it
_NO_CAPTURES: Mapping[str, int] = MappingProxyType({})  # what a pattern without captures gives, shared


def _alone(rules: Sequence[Rule]) -> list[Winners | None]:
    """Per rule, its Winners (shared) if it wins whenever it is a name's last candidate: a whole-tensor rule
    whose pattern `fits_by_ends` then matches without captures, with no index rule after it; else None."""
    return [((rule, _NO_CAPTURES), ()) if rule.pattern.fits_by_ends and rule.index is None else None for rule in rules]


def _winners(
    names: Sequence[str], rules: Sequence[Rule], index: PatternIndex, alone: Sequence[Winners | None]
) -> Winners | None:
    """The last whole-tensor rule matching any of a tensor's names, and the index rules after it, in order.

    Only `index`'s candidates for the names are tested: the others cannot match, and one whose pattern
    `fits_by_ends` matches (without captures). `alone` is `_alone(rules)`.
    """
    if len(names) == 1:
        positions = index.candidates(names[0])
    else:
        positions = sorted({position for name in names for position in index.candidates(name)})
    if positions and alone[positions[-1]] is not None:
        return alone[positions[-1]]
    overlays: list[Match] = []
    for position in reversed(positions):
        rule = rules[position]
        captured = _NO_CAPTURES if rule.pattern.fits_by_ends else _first_captures(rule, names)
        if captured is None:
            continue
        if rule.index is None:
            return (rule, captured), overlays[::-1] if overlays else ()
        overlays.append((rule, captured))
    return None


def _tied_winners(
    names: Sequence[str], rules: Sequence[Rule], index: PatternIndex, alone: Sequence[Winners | None], shape: Shape,
    layout: str | None,
) -> Winners | None:  # fmt: skip
    """`_winners` for a tensor with several names, refusing names whose own winners disagree (see above)."""
    together = _winners(names, rules, index, alone)
    own: dict[int, tuple[Match, str]] = {}  # rule position -> its match, the name it won for
    for name in names:
        found = _winners((name,), rules, index, alone)
        if found is not None:
            own.setdefault(rules.index(found[0][0]), (found[0], name))
    if together is None or len(own) < 2:
        return together

    def intent(match: Match) -> tuple[Initializer, str | None, str | None]:
        rule, captured = match
        with about(f"rule {rule.name!r}"):
            return rule.initializer_for(captured, shape, rule.layout or layout), rule.dtype, rule.layout or layout

    first, *others = [intent(match) for match, _ in own.values()]
    if all(other == first for other in others):
        return together
    winning = [position for position, ((rule, _), _) in own.items() if rule.wins_ties]
    if len(winning) != 1:
        shown = " and ".join(f"rule {match[0].name!r} (by {name!r})" for match, name in own.values())
        raise InvalidArgumentError(
            f"its tied names get different initializers from {shown}; set wins_ties: true on the rule "
            "that should win" + ("" if not winning else ", on one of them only")
        )
    position = winning[0]
    overlays = [
        (rule, captured)
        for rule in rules[position + 1 :]
        if rule.index is not None and (captured := _first_captures(rule, names)) is not None
    ]
    return own[position][0], overlays


def _overlay(base: Initializer, overlays: Sequence[Match], shape: Shape, layout: str | None) -> Initializer:
    """`base`, or an Overlay of it with each index rule's region and initializer."""
    if not overlays:
        return base
    parts = []
    for rule, captured in overlays:
        own_layout = rule.layout or layout
        with about(f"rule {rule.name!r}"):
            parts.append(
                Part(
                    rule.region_for(captured, shape, own_layout),
                    rule.initializer_for(captured, shape, own_layout),
                    rule.layout,
                )
            )
    return Overlay(base, parts)


@dataclass(frozen=True)
class Assignment:
    """What the parameters of one rule (with the captures its expressions read, and its index rules), shape and
    dtype get."""

    rule: str
    initializer: Initializer
    shape: Shape
    dtype: str
    layout: str | None
    fan_in: int
    fan_out: int
    target_std: float


@dataclass(frozen=True)
class Assignments:
    """A plan in columns: parameter i, ``paths[i]``, gets ``assignments[chosen[i]]``; `aliases` is
    {parameter: its other names}. Trees of many parameters share few assignments."""

    paths: list[str]
    chosen: list[int]
    assignments: list[Assignment]
    aliases: Mapping[str, tuple[str, ...]]

    def entry(self, position: int) -> PlanEntry:
        """The PlanEntry of parameter `position`."""
        path, assigned = self.paths[position], self.assignments[self.chosen[position]]
        return PlanEntry(
            path, assigned.shape, assigned.dtype, assigned.rule, assigned.initializer, assigned.layout,
            assigned.fan_in, assigned.fan_out, assigned.target_std, self.aliases.get(path, ()),
        )  # fmt: skip

    def entries(self) -> list[PlanEntry]:
        """The PlanEntry of every parameter, in tree order."""
        return [self.entry(position) for position in range(len(self.paths))]


def plan(
    spec: Mapping[str, Any], rules: Rules, *, dtype: Any = None, **options: Unpack[RuleOptions]
) -> list[PlanEntry]:
    """What every parameter of `spec` will get, in tree order; draws nothing.

    `rules` and the options make one RuleSet (see `RuleSet.build`): a mapping of rules, parsed Rules, a
    RuleSet or a Recipe. dtype: a rule's dtype, else an array leaf's own dtype, else the rule set's
    ("float32" unless set). layout ("keras", the default, or "torch"): a rule's, else the rule set's; it
    sets how fans are read from the shape. variables: the names rule expressions may read (with a
    mapping of rules). ties: {alias: parameter}, other names of a parameter (see the module docstring).
    An initializer's own seed in a rule warns (IgnoredSeedWarning), or raises with initializer_seeds="refuse".
    """
    return assign(spec, rules, dtype=dtype, **options).entries()


def assign(spec: Mapping[str, Any], rules: Rules, *, dtype: Any = None, **options: Unpack[RuleOptions]) -> Assignments:
    """`plan` in columns: each distinct (rule, shape, dtype, the captures its expressions read, the index
    rules after it with theirs) is assigned once."""
    ruleset = RuleSet.build(rules, dtype=dtype, **options)
    ruleset.check_initializer_seeds()
    parsed, dtype, layout = list(ruleset.rules), ruleset.dtype, ruleset.layout
    flat = flatten(spec)
    aliases = _tie(flat, ruleset.ties)
    index, alone = PatternIndex([rule.pattern for rule in parsed]), _alone(parsed)
    matched: list[Winners | None] = []  # each parameter's winners, in tree order
    for path in flat:
        if path in aliases:
            with about(f"parameter {path!r}"):
                shape, _ = shape_and_dtype(flat[path], dtype)
                matched.append(_tied_winners((path, *aliases[path]), parsed, index, alone, shape, layout))
        else:
            matched.append(_winners((path,), parsed, index, alone))
    _check_coverage(
        list(flat), parsed, index, [path for path, found in zip(flat, matched, strict=True) if found is None],
        [alias for names in aliases.values() for alias in names],
        allow_unmatched_params=ruleset.allow_unmatched_params, allow_unused_rules=ruleset.allow_unused_rules,
    )  # fmt: skip
    paths: list[str] = []
    chosen: list[int] = []
    assignments: list[Assignment] = []
    known: dict[tuple[Any, ...], int] = {}  # (rule, captures its template reads, shape, dtype, index rules) -> position
    for (path, leaf), found in zip(flat.items(), matched, strict=True):
        if found is None:
            continue
        (rule, captured), overlays = found
        try:  # what `about` does, without the cost of a context manager per parameter
            shape, own_dtype = shape_and_dtype(leaf, dtype)
            read = tuple(captured.items()) if captured and not isinstance(rule.init, Initializer) else ()
            key = (id(rule), read, shape, own_dtype, _overlays_key(overlays) if overlays else ())
            position = known.get(key)
            if position is None:
                assignments.append(_assignment(rule, captured, overlays, shape, rule.dtype or own_dtype, layout))
                position = known[key] = len(assignments) - 1
        except InitregError as error:
            prefix_message(error, f"parameter {path!r} (rule {_rule_name(rule, overlays)!r})")
            raise
        paths.append(path)
        chosen.append(position)
    return Assignments(paths, chosen, assignments, aliases)


def _overlays_key(overlays: Sequence[Match]) -> tuple[Any, ...]:
    return tuple((id(rule), tuple(captured.items())) for rule, captured in overlays)


def _rule_name(rule: Rule, overlays: Sequence[Match]) -> str:
    """The name of a whole-tensor rule, joined by those of the index rules after it with "+"."""
    return "+".join([rule.name, *(matched.name for matched, _ in overlays)]) if overlays else rule.name


def _assignment(
    rule: Rule, captured: Mapping[str, int], overlays: Sequence[Match], shape: Shape, dtype: str, layout: str | None
) -> Assignment:
    """The Assignment of `rule` (with the captures of the path it matched) and its index rules to `shape`."""
    chosen_layout = rule.layout or layout
    base = rule.initializer_for(captured, shape, chosen_layout)
    fan_in, fan_out = base.fans(shape, chosen_layout)
    initializer = _overlay(base, overlays, shape, chosen_layout)
    target_std = initializer.target_std(shape, chosen_layout)
    return Assignment(_rule_name(rule, overlays), initializer, shape, dtype, chosen_layout, fan_in, fan_out, target_std)
