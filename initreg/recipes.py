"""Recipes: the initialization schemes of real model codebases, as rule sets with their variables.

A recipe is configs/public/recipe/<name>.yaml (recipe/ in the package initreg.configs.public): a comment and
a `reference` naming the code it reproduces, the transformers `families` (``model_type``) it serves, if any,
`variables` (what its expressions read, each declared as read from the model or as a hyper-parameter's
default; see initreg.recipe_variables), `rules`, and, for a codebase whose parameter names changed between
versions, `namings`: {upstream version: {rules: [...], variables: [...]}}, the rules and variables that
only the names of that version have. The model's names choose the version (exactly one must fit: each of
its rules matches a parameter); the other versions' rules and variables are left out. Without a model
every rule is kept, a version's own rules optional (their patterns match only that version's names)::

    recipe = initreg.recipes.load("hf_gpt2", model)        # n_layer, initializer_range read from the model
    recipe = initreg.recipes.for_model(model)               # the recipe of the model's transformers family
    recipe = initreg.recipes.load("hf_gpt2", spec, initializer_range=0.02)   # a parameter spec, no config
    print(recipe.describe())          # recipe 'hf_gpt2': n_layer=24 (model.config.n_layer), ...
    initreg.init_tree(spec, recipe, seed=0)                # or recipe.rules, or recipe.ruleset
    initreg.interop.torch.initialize(model, recipe)

A structural variable (depth, width, padding index) is read from the model and never defaulted: one given by
hand that contradicts the model, or one neither read nor given, is an error. The command reads the same
files as the config group `recipe` (``initreg recipe=hf_gpt2``).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from importlib.resources import files
from typing import Any

from initreg.errors import InvalidArgumentError, about, choices
from initreg.patterns import compile_pattern
from initreg.recipe_variables import declarations, resolve, tree_shapes
from initreg.rules import Rule, RuleSet, parse_rules

PUBLIC_CONFIGS = "initreg.configs.public"
RECIPE_KEYS = ("reference", "families", "namings", "variables", "rules")
NAMING_KEYS = ("rules", "variables")


@dataclass(frozen=True)
class Recipe:
    """A parsed recipe: its rules hold `variables`, each of which came from `sources[name]`; `naming` is
    the upstream version whose parameter names the model has ("" without namings or without a model)."""

    name: str
    reference: str
    variables: dict[str, Any]
    rules: list[Rule]
    sources: dict[str, str] = field(default_factory=dict)
    families: tuple[str, ...] = ()
    naming: str = ""

    def describe(self) -> str:
        """One line: the recipe, each of its variables' value with where it came from, and its naming."""
        shown = ", ".join(f"{name}={self.variables[name]!r} ({source})" for name, source in self.sources.items())
        naming = f"; names of {self.naming}" if self.naming else ""
        return f"recipe {self.name!r}: {shown or 'no variables'}{naming}"

    @property
    def ruleset(self) -> RuleSet:
        """Its rules as a RuleSet with no option set: what every entry point takes a recipe as."""
        return RuleSet(tuple(self.rules))


def names() -> list[str]:
    """The names of the shipped recipes, sorted."""
    folder = files(PUBLIC_CONFIGS) / "recipe"
    return sorted(item.name.removesuffix(".yaml") for item in folder.iterdir() if item.name.endswith(".yaml"))


def load(name: str, model: Any = None, *, config: Any = None, **variables: Any) -> Recipe:
    """The shipped recipe `name` for `model` (a torch module or a parameter spec), its variables read from the
    model's tree and config (`config`, else ``model.config``) and checked against `variables`.
    """
    content = read(name)
    declared = content.get("variables") or {}
    unknown = [key for key in variables if key not in declared]
    if unknown:
        raise InvalidArgumentError(
            f"recipe {name!r} has no variable {unknown[0]!r}; valid: {choices(declared) or '(none)'}"
        )
    return from_config(name, content, variables, model=model, config=config)


def families() -> dict[str, str]:
    """{transformers model_type: the shipped recipe that serves it}."""
    served: dict[str, str] = {}
    for name in names():
        for family in read(name).get("families") or ():
            served[str(family)] = name
    return served


def for_model(model: Any, *, config: Any = None, **variables: Any) -> Recipe:
    """The shipped recipe of a transformers model's family (``model.config.model_type``), loaded for it."""
    model_type = _model_type(config if config is not None else getattr(model, "config", None))
    served = families()
    if model_type is None:
        raise InvalidArgumentError(
            "for_model needs a transformers model (model.config.model_type) or config=; for another model, "
            f"name its recipe: load(name, model) with name one of {choices(names())}"
        )
    if model_type not in served:
        raise InvalidArgumentError(
            f"no recipe serves transformers model type {model_type!r}; valid: {choices(sorted(served))}"
        )
    return load(served[model_type], model, config=config, **variables)


def read(name: str) -> dict[str, Any]:
    """The recipe file's content as plain data (read with OmegaConf; Hydra is not imported)."""
    from omegaconf import OmegaConf

    if not isinstance(name, str) or name not in names():
        raise InvalidArgumentError(f"unknown recipe {name!r}; valid: {choices(names())}")
    loaded = OmegaConf.to_container(
        OmegaConf.load(str(files(PUBLIC_CONFIGS) / "recipe" / f"{name}.yaml")), resolve=True
    )
    if not isinstance(loaded, dict):
        raise InvalidArgumentError(f"recipe {name!r} is not a mapping of {choices(RECIPE_KEYS)}")
    return {str(key): value for key, value in loaded.items()}


def from_config(
    name: str,
    content: Mapping[str, Any],
    variables: Mapping[str, Any] | None = None,
    *,
    model: Any = None,
    config: Any = None,
) -> Recipe:
    """A Recipe from a recipe's content for `model`, with `variables` given (extra names are kept)."""
    unknown = [key for key in content if key not in RECIPE_KEYS]
    if unknown:
        raise InvalidArgumentError(f"recipe {name!r} has unknown key {unknown[0]!r}; valid: {choices(RECIPE_KEYS)}")
    if not isinstance(content.get("rules"), Mapping) or not isinstance(content.get("variables") or {}, Mapping):
        raise InvalidArgumentError(f"recipe {name!r} needs 'rules' and 'variables' mappings")
    config = config if config is not None else getattr(model, "config", None)
    served = tuple(str(family) for family in content.get("families") or ())
    _check_family(name, served, config)
    given = dict(variables or {})
    tree = tree_shapes(model) if model is not None else None
    namings = _namings(name, content)
    naming = _choose_naming(name, namings, content["rules"], tree) if namings and tree is not None else ""
    own = {kind: {item for served in namings.values() for item in served[kind]} for kind in NAMING_KEYS}
    left_out = {kind: own[kind] - set(namings[naming][kind]) if naming else set() for kind in NAMING_KEYS}
    kept_rules = {key: value for key, value in content["rules"].items() if key not in left_out["rules"]}
    declared = content.get("variables") or {}
    kept_variables = {key: value for key, value in declared.items() if key not in left_out["variables"]}
    misplaced = [key for key in given if key in left_out["variables"]]
    if misplaced:
        raise InvalidArgumentError(
            f"recipe {name!r}: {misplaced[0]}={given[misplaced[0]]!r} was given but is a variable of names this "
            f"model does not have; its names are those of {naming}"
        )
    values, sources = resolve(name, declarations(name, kept_variables), given, config=config, tree=tree)
    merged = {**values, **{key: value for key, value in given.items() if key not in values}}
    with about(f"recipe {name!r}"):
        rules = parse_rules(kept_rules, merged)
    if tree is not None:
        _check_fits(name, rules, tree)
    else:
        rules = [replace(rule, optional=True) if rule.name in own["rules"] else rule for rule in rules]
    return Recipe(name, str(content.get("reference", "")), merged, rules, sources, served, naming)


def _namings(name: str, content: Mapping[str, Any]) -> dict[str, dict[str, list[str]]]:
    """{upstream version: {"rules": [...], "variables": [...]}} of the recipe's `namings`, each name checked."""
    namings = content.get("namings") or {}
    if not isinstance(namings, Mapping):
        raise InvalidArgumentError(f"recipe {name!r}: namings must map a version to {{rules: [...], variables: [...]}}")
    found: dict[str, dict[str, list[str]]] = {}
    for label, value in namings.items():
        where = f"recipe {name!r}: naming {label!r}"
        if not isinstance(value, Mapping) or any(key not in NAMING_KEYS for key in value):
            raise InvalidArgumentError(f"{where} must be a mapping of {choices(NAMING_KEYS)}; got {value!r}")
        found[str(label)] = own = {kind: [str(item) for item in value.get(kind) or ()] for kind in NAMING_KEYS}
        for kind, declared in (("rules", content["rules"]), ("variables", content.get("variables") or {})):
            unknown = [item for item in own[kind] if item not in declared]
            if unknown:
                raise InvalidArgumentError(f"{where} names {kind[:-1]} {unknown[0]!r}; valid: {choices(declared)}")
    return found


def _choose_naming(
    name: str, namings: Mapping[str, Mapping[str, list[str]]], rules: Mapping[str, Any], tree: Mapping[str, Any]
) -> str:
    """The one version whose own rules all match a parameter of `tree`; none or several is an error naming them."""
    missing: dict[str, list[str]] = {}
    for label, own in namings.items():
        patterns = [
            (rule, rules[rule]["match"])
            for rule in own["rules"]
            if isinstance(rules[rule], Mapping)
            and isinstance(rules[rule].get("match"), str)
            and not rules[rule].get("optional")
        ]
        missing[label] = [
            f"{rule!r} ({match!r})"
            for rule, match in patterns
            if not any(compile_pattern(str(match)).matches(path) for path in tree)
        ]
    fitting = [label for label, unmatched in missing.items() if not unmatched]
    if len(fitting) == 1:
        return fitting[0]
    if fitting:
        raise InvalidArgumentError(
            f"recipe {name!r} does not fit this model: it has the names of more than one version the recipe "
            f"serves ({'; '.join(fitting)}), so which init its tensors get is ambiguous"
        )
    shown = "; ".join(f"{label} (rule {', '.join(unmatched)} matches nothing)" for label, unmatched in missing.items())
    raise InvalidArgumentError(
        f"recipe {name!r} does not fit this model: its names are those of none of the versions it serves: {shown}"
    )


def _check_fits(name: str, rules: list[Rule], tree: Mapping[str, Any]) -> None:
    """Refuses a model that lacks what a rule of the recipe is for (its tensors would get another rule's values)."""
    unused = [rule for rule in rules if not rule.optional and not any(rule.matches(path) for path in tree)]
    if unused:
        named = ", ".join(f"{rule.name!r} ({rule.match!r})" for rule in unused)
        raise InvalidArgumentError(
            f"recipe {name!r} does not fit this model: rule(s) {named} match none of its parameters, so the "
            "tensors they are for would get another rule's values; use the recipe of the model's family "
            "(recipes.for_model) or drop the rule by name (rules: {name: null})"
        )


def _model_type(config: Any) -> str | None:
    if config is None:
        return None
    value = config.get("model_type") if isinstance(config, Mapping) else getattr(config, "model_type", None)
    return str(value) if value else None


def _check_family(name: str, served: tuple[str, ...], config: Any) -> None:
    """Refuses a transformers model whose model_type the recipe does not serve, naming the one that does."""
    model_type = _model_type(config)
    if not served or model_type is None or model_type in served:
        return
    other = families().get(model_type)
    hint = f"; recipe {other!r} serves it" if other else "; no shipped recipe serves it"
    raise InvalidArgumentError(
        f"recipe {name!r} serves transformers model types {choices(served)}, not {model_type!r}{hint}"
    )
