"""Recipes: the initialization schemes of real model codebases, as rule sets with their variables.

A recipe is configs/public/recipe/<name>.yaml (recipe/ in the package initreg.configs.public): a comment and
a `reference` naming the code it reproduces, `variables` (defaults of the model-config values its
expressions read, such as n_layer) and `rules`::

    recipe = initreg.recipes.load("hf_gpt2", n_layer=24)   # variables override the recipe's defaults
    initreg.init_tree(spec, recipe, seed=0)                # or recipe.rules, or recipe.ruleset
    initreg.interop.torch.initialize(model, recipe)

The command reads the same files as the config group `recipe` (``initreg recipe=hf_gpt2``).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from importlib.resources import files
from typing import Any

from initreg.errors import InvalidArgumentError, about, choices
from initreg.rules import Rule, RuleSet, parse_rules

PUBLIC_CONFIGS = "initreg.configs.public"
RECIPE_KEYS = ("reference", "variables", "rules")


@dataclass(frozen=True)
class Recipe:
    """A parsed recipe: its rules hold `variables` (the recipe's defaults with the overrides applied)."""

    name: str
    reference: str
    variables: dict[str, Any]
    rules: list[Rule]

    @property
    def ruleset(self) -> RuleSet:
        """Its rules as a RuleSet with no option set: what every entry point takes a recipe as."""
        return RuleSet(tuple(self.rules))


def names() -> list[str]:
    """The names of the shipped recipes, sorted."""
    folder = files(PUBLIC_CONFIGS) / "recipe"
    return sorted(item.name.removesuffix(".yaml") for item in folder.iterdir() if item.name.endswith(".yaml"))


def load(name: str, **variables: Any) -> Recipe:
    """The shipped recipe `name` with `variables` overriding its defaults; an unknown variable raises."""
    config = read(name)
    defaults = config.get("variables") or {}
    unknown = [key for key in variables if key not in defaults]
    if unknown:
        raise InvalidArgumentError(
            f"recipe {name!r} has no variable {unknown[0]!r}; valid: {choices(defaults) or '(none)'}"
        )
    return from_config(name, config, variables)


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


def from_config(name: str, config: Mapping[str, Any], variables: Mapping[str, Any] | None = None) -> Recipe:
    """A Recipe from a recipe's content, its variables updated with `variables` (extra names are kept)."""
    unknown = [key for key in config if key not in RECIPE_KEYS]
    if unknown:
        raise InvalidArgumentError(f"recipe {name!r} has unknown key {unknown[0]!r}; valid: {choices(RECIPE_KEYS)}")
    if not isinstance(config.get("rules"), Mapping) or not isinstance(config.get("variables") or {}, Mapping):
        raise InvalidArgumentError(f"recipe {name!r} needs 'rules' and 'variables' mappings")
    merged = {**(config.get("variables") or {}), **(variables or {})}
    with about(f"recipe {name!r}"):
        rules = parse_rules(config["rules"], merged)
    return Recipe(name, str(config.get("reference", "")), merged, rules)
