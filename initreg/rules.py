"""Rules: ``{name: {match, init, dtype?, layout?, index?, optional?, wins_ties?}}`` parsed into `Rule`s.

`match` is a shell-style glob over the whole dotted path, case-sensitive, in which ``*`` also crosses
dots and ``{name}`` captures a run of digits as an int (see initreg.patterns). init arguments may be
expressions, ``stddev: "=0.02 / sqrt(2 * n_layer)"`` (initreg.expressions), over the captures, the
rule set's `variables` and the parameter's fans and shape (PARAMETER_NAMES); an expression reading
any other name is refused when the rules are parsed. A rule with ``index: "[0]"`` (NumPy basic
indexing, entries may be int expressions) sets only that region of a tensor (see initreg.planning).
``wins_ties: true`` makes the rule win on a tied tensor whose names other rules give another initializer
(see initreg.planning).
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, fields, replace
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, Protocol, TypedDict

from initreg.dtypes import standardize_dtype
from initreg.errors import IgnoredSeedWarning, InvalidArgumentError, about, choices
from initreg.expressions import compile_index
from initreg.initializers.base import Initializer, Shape
from initreg.initializers.lookup import get
from initreg.initializers.variance_scaling import LAYOUTS
from initreg.patterns import PathPattern, compile_pattern
from initreg.plain import plain
from initreg.slicing import forward_slices, normalize_index
from initreg.templates import (
    PARAMETER_NAMES,
    RESERVED_NAMES,
    InitTemplate,
    check_variables,
    has_expressions,
    parameter_values,
)

if TYPE_CHECKING:
    from typing_extensions import Unpack

RULE_KEYS = ("match", "init", "dtype", "layout", "index", "optional", "wins_ties")
INITIALIZER_SEEDS = ("warn", "refuse")  # what a rule set does with an initializer's own seed


@dataclass(frozen=True)
class Rule:
    """Parameters whose dotted path matches the pattern `match` get `init`, in `dtype`/`layout` if set.

    `init` is an Initializer, or an InitTemplate whose expressions read `variables`, the captures and
    the parameter (see `initializer_for`). With `index`, the rule sets only that region of a tensor.
    An `optional` rule matching nothing is not an error. A rule that `wins_ties` wins on a tied tensor
    over the rules its other names match.
    """

    name: str
    match: str
    init: Initializer | InitTemplate
    dtype: str | None = None
    layout: str | None = None
    index: str | None = None
    optional: bool = False  # may match no parameter (a recipe's rule for tensors some models lack)
    wins_ties: bool = False  # wins on a tied tensor whose other names' rules give another initializer
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


def check_layout(value: Any) -> str | None:
    """`value` if it is None or one of LAYOUTS (as a str); any other value raises."""
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
    optional, wins_ties = value.get("optional", False), value.get("wins_ties", False)
    for key, flag in (("optional", optional), ("wins_ties", wins_ties)):
        if not isinstance(flag, bool):
            raise InvalidArgumentError(f"{key!r} must be true or false; got {flag!r}")
    if wins_ties and index is not None:
        raise InvalidArgumentError("a rule with an 'index' sets part of a tensor and cannot set 'wins_ties'")
    rule = Rule(
        name=name,
        match=match,
        init=_init_or_template(value["init"]),
        dtype=None if dtype is None else standardize_dtype(dtype),
        layout=check_layout(value.get("layout")),
        index=index,
        optional=optional,
        wins_ties=wins_ties,
        variables=variables,
    )
    _check_names(rule)
    return rule


def parse_rules(
    rules: Mapping[str, Mapping[str, Any] | Rule | None], variables: Mapping[str, Any] | None = None
) -> list[Rule]:
    """Rules in order from ``{name: {match, init, dtype?, layout?, index?, optional?, wins_ties?}}``; None drops one.

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
        with about(f"rule {name!r}"):
            if isinstance(value, Rule):
                parsed.append(replace(value, name=str(name)))
            elif isinstance(value, Mapping):
                parsed.append(_rule(str(name), value, checked))
            else:
                raise InvalidArgumentError(
                    f"expected {{match, init, dtype?, layout?, index?, optional?, wins_ties?}}; got {value!r}"
                )
    return parsed


class RuleOptions(TypedDict, total=False):
    """The options every entry point takes with its rules (see RuleSet); dtype, where it has one, is a parameter."""

    layout: str | None
    variables: Mapping[str, Any] | None
    ties: Mapping[str, str] | None
    allow_unmatched_params: bool | None
    allow_unused_rules: bool | None
    initializer_seeds: str | None


@dataclass(frozen=True)
class RuleSet:
    """Rules with the options that go with them: one immutable value every entry point takes.

    rules: parsed Rules in order (each holds the `variables` its expressions read). ties: {alias:
    parameter}, other names of a parameter. layout: "keras" or "torch" for rules without their own
    (None: the entry point's default, "keras", or "torch" for torch modules). dtype: that of shape leaves
    without a rule dtype. allow_unmatched_params / allow_unused_rules relax coverage. initializer_seeds:
    what an initializer's own seed in a rule, which the tree's seed overrides, gives: "warn" (an
    IgnoredSeedWarning per rule) or "refuse" (an InvalidArgumentError). Build one with `RuleSet.build`.
    It equals a rule set of the same Rules and options; it is not hashable (it holds mappings).
    """

    rules: tuple[Rule, ...]
    ties: Mapping[str, str] = field(default_factory=lambda: MappingProxyType({}))
    layout: str | None = None
    dtype: str = "float32"
    allow_unmatched_params: bool = False
    allow_unused_rules: bool = False
    initializer_seeds: str = "warn"

    __hash__ = None  # type: ignore[assignment]

    def __post_init__(self) -> None:
        if not isinstance(self.rules, Sequence) or not all(isinstance(rule, Rule) for rule in self.rules):
            raise InvalidArgumentError(f"RuleSet.rules must be a sequence of Rules; got {self.rules!r}")
        if self.ties and not isinstance(self.ties, Mapping):
            raise InvalidArgumentError(f"ties must be a mapping of alias paths to parameter paths; got {self.ties!r}")
        for name in ("allow_unmatched_params", "allow_unused_rules"):
            if not isinstance(getattr(self, name), bool):
                raise InvalidArgumentError(f"{name} must be True or False; got {getattr(self, name)!r}")
        if self.initializer_seeds not in INITIALIZER_SEEDS:
            raise InvalidArgumentError(
                f"unknown initializer_seeds {self.initializer_seeds!r}; valid: {choices(INITIALIZER_SEEDS)}"
            )
        object.__setattr__(self, "rules", tuple(self.rules))
        object.__setattr__(self, "ties", MappingProxyType(dict(self.ties or {})))
        object.__setattr__(self, "layout", check_layout(self.layout))
        object.__setattr__(self, "dtype", standardize_dtype(self.dtype))

    @classmethod
    def build(cls, rules: Rules, *, dtype: Any = None, **options: Unpack[RuleOptions]) -> RuleSet:
        """A RuleSet from a mapping of rules (parsed with `variables`), a sequence of Rules, a RuleSet, or
        anything with a `.ruleset` (a Recipe), with the options given (None: not given) set on it.

        An option the given rule set already sets to another value than the default raises, naming both;
        so do `variables` with rules already parsed (they hold their own).
        """
        variables = options.pop("variables", None)
        held = getattr(rules, "ruleset", rules)
        if variables is not None and (isinstance(held, RuleSet) or not isinstance(rules, Mapping)):
            raise InvalidArgumentError(
                "variables go with a mapping of rules; parsed Rules and rule sets hold their own"
            )
        if isinstance(held, RuleSet):
            base = held
        elif isinstance(rules, Mapping):
            base = cls(tuple(parse_rules(rules, variables)))
        elif isinstance(rules, Sequence) and not isinstance(rules, str) and all(isinstance(r, Rule) for r in rules):
            base = cls(tuple(rules))
        else:
            raise InvalidArgumentError(f"rules must be a mapping of rule names to {{match, init}}; got {rules!r}")
        return base._with({"dtype": dtype, **options})

    def _with(self, options: Mapping[str, Any]) -> RuleSet:
        """This rule set with each given option (not None) set; one it sets otherwise than the default raises."""
        defaults = {item.name: item.default for item in fields(self) if item.name != "rules"}
        defaults["ties"] = {}
        chosen = self
        for name, given in options.items():
            if given is None:
                continue
            held, wanted = getattr(self, name), getattr(replace(self, **{name: given}), name)
            if held != wanted and held != defaults[name]:
                raise InvalidArgumentError(
                    f"{name}={given!r} is given, but the rule set has {name}={_shown(held)}; give it once"
                )
            chosen = replace(chosen, **{name: wanted})
        return chosen

    @property
    def variables(self) -> dict[str, Any]:
        """The variables its rules' expressions read (those of every rule, the later rules' winning)."""
        return {name: value for rule in self.rules for name, value in rule.variables.items()}

    def check_initializer_seeds(self) -> None:
        """Warns (IgnoredSeedWarning) once per rule whose initializer has its own seed, or raises for the first
        with initializer_seeds="refuse": the tree's seed decides every parameter's values, with its path."""
        for rule in self.rules:
            seed = _own_seed(rule.init)
            if seed is None:
                continue
            message = (
                f"rule {rule.name!r}: init seed={seed} is not used, since the tree's seed decides every "
                "parameter's values (with its path)"
            )
            if self.initializer_seeds == "refuse":
                raise InvalidArgumentError(f"{message}; set seed={seed} instead")
            warnings.warn(message, IgnoredSeedWarning, stacklevel=3)


class HasRuleSet(Protocol):
    """Something that carries a rule set, such as a Recipe."""

    @property
    def ruleset(self) -> RuleSet:
        """Its rules and options."""
        ...


Rules = Mapping[str, Any] | Sequence[Rule] | RuleSet | HasRuleSet  # what every entry point takes as its rules


def _shown(value: Any) -> str:
    return repr(dict(value)) if isinstance(value, MappingProxyType) else repr(value)


def _own_seed(init: Initializer | InitTemplate) -> Any:
    """The seed an initializer (or a template's config) was given, or None."""
    if isinstance(init, InitTemplate):
        seed = init.config.get("seed")
        return getattr(seed, "text", seed)
    return init.get_config().get("seed")
