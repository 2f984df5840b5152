"""RuleSet: rules and their options as one immutable value that every entry point takes alike."""

from __future__ import annotations

import dataclasses
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from safetensors.numpy import load_file

import initreg
from initreg import recipes
from initreg.errors import IgnoredSeedWarning, InvalidArgumentError
from initreg.planning import PlanEntry, plan
from initreg.rules import RuleSet, parse_rules
from initreg.spec import flatten

SPEC = {"embed": (12, 8), "blocks": [{"kernel": (8, 6), "bias": (6,)}] * 3, "head": (12, 8), "scale": (6,)}
RULES = {
    "kernels": {"match": "*.kernel", "init": {"name": "random_normal", "stddev": "=1 / sqrt(n_layer * fan_in)"}},
    "embed": {"match": "embed", "init": "he_uniform"},  # fans follow the layout: (12, 8) keras or torch differ
    "biases": {"match": "*.bias", "init": {"name": "random_uniform", "minval": "=-1 / n_layer", "maxval": 0.5}},
    "unused": {"match": "*.gamma", "init": "ones"},
}
OPTIONS: dict[str, Any] = {
    "layout": "torch",
    "variables": {"n_layer": 3},
    "ties": {"head": "embed"},
    "allow_unmatched_params": True,  # "scale" matches no rule and is left out
    "allow_unused_rules": True,
}


def _described(entry: PlanEntry) -> tuple[Any, ...]:
    return (entry.path, entry.shape, entry.dtype, entry.rule, entry.layout, entry.fan_in, entry.fan_out, entry.aliases)


def _ruleset() -> RuleSet:
    return RuleSet.build(RULES, dtype="float64", **OPTIONS)


def test_a_ruleset_is_immutable_and_not_hashable() -> None:
    ruleset = _ruleset()
    with pytest.raises(dataclasses.FrozenInstanceError):
        ruleset.layout = "keras"  # type: ignore[misc]
    with pytest.raises(TypeError):
        ruleset.ties["other"] = "embed"  # type: ignore[index]
    with pytest.raises(TypeError, match="unhashable"):
        hash(ruleset)
    assert isinstance(ruleset.rules, tuple)
    assert RuleSet.build(ruleset) == ruleset != dataclasses.replace(ruleset, layout="keras")
    assert (ruleset.dtype, ruleset.layout, dict(ruleset.ties)) == ("float64", "torch", {"head": "embed"})
    assert ruleset.variables == {"n_layer": 3}
    assert initreg.RuleSet is RuleSet


def test_every_entry_point_gives_the_same_values_from_a_ruleset_as_from_the_options(tmp_path: Path) -> None:
    from initreg.interop import dask as initreg_dask

    ruleset = _ruleset()
    by_options = flatten(initreg.init_tree(SPEC, RULES, 5, "float64", **OPTIONS))
    by_ruleset = flatten(initreg.init_tree(SPEC, ruleset, 5))
    assert sorted(by_options) == sorted(path for path in flatten(SPEC) if path != "scale")
    assert all(value.dtype == np.float64 for value in by_options.values())
    assert by_options["head"] is by_options["embed"]  # the tie
    for path, value in by_options.items():
        np.testing.assert_array_equal(by_ruleset[path], value, err_msg=path)
    keras = flatten(initreg.init_tree(SPEC, RULES, 5, "float64", **{**OPTIONS, "layout": "keras"}))
    assert not np.array_equal(keras["embed"], by_options["embed"])  # the layout option is used
    assert [_described(entry) for entry in plan(SPEC, RULES, dtype="float64", **OPTIONS)] == [
        _described(entry) for entry in plan(SPEC, ruleset)
    ]

    initreg.save_tree(SPEC, ruleset, tmp_path / "a.safetensors", 5, quiet=True)
    initreg.save_tree(SPEC, RULES, tmp_path / "b.safetensors", 5, "float64", quiet=True, **OPTIONS)
    assert (tmp_path / "a.safetensors").read_bytes() == (tmp_path / "b.safetensors").read_bytes()
    written = load_file(tmp_path / "a.safetensors")
    assert sorted(written) == sorted(path for path in by_options if path != "head")  # a tie is written once

    lazy = flatten(initreg_dask.init_tree(SPEC, ruleset, 5, chunks=4))
    for path, value in by_options.items():
        np.testing.assert_array_equal(lazy[path].compute(scheduler="synchronous"), value, err_msg=path)


def test_torch_initialize_gives_the_same_values_from_a_ruleset_as_from_the_options() -> None:
    torch = pytest.importorskip("torch")
    from initreg.interop.torch import initialize

    rules = {
        "weights": {"match": "*weight", "init": {"name": "random_normal", "stddev": "=1 / sqrt(n_layer * fan_in)"}},
        "biases": {"match": "*bias", "init": "he_uniform"},
        "unused": {"match": "*.gamma", "init": "ones"},
    }
    options: dict[str, Any] = {"variables": {"n_layer": 2}, "allow_unused_rules": True}

    def made(rules: Any, **given: Any) -> dict[str, np.ndarray]:
        torch.manual_seed(0)
        module = torch.nn.Sequential(torch.nn.Linear(5, 7), torch.nn.Linear(7, 3))
        initialize(module, rules, 3, **given)
        return {name: p.detach().numpy().copy() for name, p in module.named_parameters()}

    by_options, by_ruleset = made(rules, **options), made(RuleSet.build(rules, **options))
    assert sorted(by_options) == ["0.bias", "0.weight", "1.bias", "1.weight"]
    for name, value in by_options.items():
        np.testing.assert_array_equal(by_ruleset[name], value, err_msg=name)
    np.testing.assert_allclose(by_options["0.weight"].std(), 1 / np.sqrt(2 * 5), rtol=0.35)  # n_layer read
    keras = made(RuleSet.build(rules, layout="keras", **options))  # a rule set's layout wins over "torch"
    assert not np.array_equal(keras["0.weight"], by_options["0.weight"])


def test_a_recipe_its_rules_and_its_ruleset_give_the_same_tree() -> None:
    recipe = recipes.load("hf_gpt2", initializer_range=0.02, n_layer=2)
    spec = {"h.0.attn.c_proj.weight": (8, 8), "h.1.attn.c_proj.weight": (8, 8), "wte.weight": (20, 8)}
    trees = [
        flatten(initreg.init_tree(spec, rules, 1, allow_unused_rules=True))
        for rules in (recipe, recipe.rules, recipe.ruleset)
    ]
    for path in spec:
        np.testing.assert_array_equal(trees[0][path], trees[1][path])
        np.testing.assert_array_equal(trees[0][path], trees[2][path])


@pytest.mark.parametrize(
    ("held", "given", "named"),
    [
        ({"layout": "torch"}, {"layout": "keras"}, "layout='keras' is given, but the rule set has layout='torch'"),
        ({"dtype": "float16"}, {"dtype": "float64"}, "dtype='float64' is given, but the rule set has dtype='float16'"),
        ({"ties": {"head": "embed"}}, {"ties": {"head": "scale"}}, "ties={'head': 'scale'} is given, but the rule"),
        ({"allow_unused_rules": True}, {"allow_unused_rules": False}, "allow_unused_rules=False is given, but"),
        (
            {"initializer_seeds": "refuse"},
            {"initializer_seeds": "warn"},
            "initializer_seeds='warn' is given, but the rule set has initializer_seeds='refuse'",
        ),
    ],
)
def test_an_option_set_both_ways_to_different_values_is_refused_naming_both(
    held: dict[str, Any], given: dict[str, Any], named: str
) -> None:
    ruleset = RuleSet.build(RULES, variables={"n_layer": 3}, **held)
    with pytest.raises(InvalidArgumentError, match=named.replace("(", r"\(").replace("[", r"\[")):
        initreg.init_tree(SPEC, ruleset, **given)
    same = RuleSet.build(ruleset, **held)  # the same value given again is no conflict
    assert same == ruleset


def test_a_keyword_sets_an_option_the_ruleset_leaves_at_its_default() -> None:
    ruleset = RuleSet.build(RULES, variables={"n_layer": 3})
    assert RuleSet.build(ruleset, layout="torch", dtype="bfloat16").layout == "torch"
    assert RuleSet.build(ruleset, dtype="bfloat16").dtype == "bfloat16"
    with pytest.raises(InvalidArgumentError, match="variables go with a mapping of rules"):
        RuleSet.build(ruleset, variables={"n_layer": 4})
    with pytest.raises(InvalidArgumentError, match="unknown initializer_seeds 'ignore'; valid: 'warn', 'refuse'"):
        RuleSet.build(ruleset, initializer_seeds="ignore")
    with pytest.raises(InvalidArgumentError, match="allow_unused_rules must be True or False; got 'yes'"):
        RuleSet(tuple(parse_rules({"all": {"match": "*", "init": "ones"}})), allow_unused_rules="yes")  # type: ignore[arg-type]


SEEDED = {
    "weights": {"match": "*weight", "init": {"name": "he_normal", "seed": 7}},
    "biases": {"match": "*bias", "init": {"class_name": "RandomUniform", "config": {"seed": 3}}},  # a Keras dict
    "first": {"match": "0.weight", "init": initreg.RandomNormal(stddev=0.1, seed=11)},
    "plain": {"match": "1.*", "init": "zeros"},
}


def _seed_warnings(record: list[warnings.WarningMessage]) -> list[str]:
    return sorted(str(item.message) for item in record if issubclass(item.category, IgnoredSeedWarning))


def test_an_initializers_own_seed_warns_once_per_rule_in_the_library() -> None:
    spec = {"0.weight": (4, 3), "0.bias": (4,), "1.weight": (2, 4), "1.bias": (2,)}
    with warnings.catch_warnings(record=True) as record:
        warnings.simplefilter("always")
        seeded = flatten(initreg.init_tree(spec, SEEDED, 2))
    found = _seed_warnings(record)
    assert len(found) == 3, found
    for rule, seed in (("weights", 7), ("biases", 3), ("first", 11)):
        assert sum(f"rule {rule!r}: init seed={seed} is not used" in message for message in found) == 1
    assert all("the tree's seed decides" in message for message in found)
    unseeded = {name: {**rule, "init": "zeros"} if name == "plain" else rule for name, rule in SEEDED.items()}
    other = {**unseeded, "weights": {"match": "*weight", "init": {"name": "he_normal", "seed": 8}}}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", IgnoredSeedWarning)
        np.testing.assert_array_equal(flatten(initreg.init_tree(spec, other, 2))["1.weight"], seeded["1.weight"])


def test_torch_initialize_and_dask_warn_once_per_seeded_rule() -> None:
    torch = pytest.importorskip("torch")
    from initreg.interop import dask as initreg_dask
    from initreg.interop.torch import initialize

    module = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.Linear(4, 2))
    with warnings.catch_warnings(record=True) as record:
        warnings.simplefilter("always")
        initialize(module, SEEDED)
    assert len(_seed_warnings(record)) == 3
    with warnings.catch_warnings(record=True) as record:
        warnings.simplefilter("always")
        initreg_dask.init_tree({"0.weight": (4, 3)}, {"w": SEEDED["weights"]})
    assert [message.split(":")[0] for message in _seed_warnings(record)] == ["rule 'w'"]


def test_initializer_seeds_refuse_raises_naming_the_rule_before_anything_is_drawn(tmp_path: Path) -> None:
    ruleset = RuleSet.build(SEEDED, initializer_seeds="refuse")
    target = tmp_path / "never.safetensors"
    with pytest.raises(InvalidArgumentError, match=r"rule 'weights': init seed=7 is not used.*set seed=7 instead"):
        initreg.save_tree({"0.weight": (4, 3), "0.bias": (4,), "1.weight": (2, 4)}, ruleset, target)
    assert not target.exists()
