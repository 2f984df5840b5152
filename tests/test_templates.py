"""Expressions in rule arguments, evaluated per parameter in `plan` with captures, variables, fans and shape."""

from __future__ import annotations

import math

import numpy as np
import pytest

import initreg
from initreg.tree import parse_rules

SPEC = {"h": [{"proj": (16, 32)}, {"proj": (16, 32)}, {"proj": (16, 32)}], "out": (32, 64)}


def test_arguments_read_captures_variables_fans_and_shape() -> None:
    rules = {
        "all": {"match": "*", "init": {"name": "random_normal", "stddev": "=scale * fan_in ** -0.5 * shape[-1] / 64"}},
        "depth": {
            "match": "h.{layer}.proj",
            "init": {"name": "random_normal", "stddev": "=0.02 / sqrt(2 * (layer + 1))"},
        },
    }
    entries = {entry.path: entry for entry in initreg.plan(SPEC, rules, variables={"scale": 2.0})}
    for layer in range(3):
        assert entries[f"h.{layer}.proj"].initializer.stddev == 0.02 / math.sqrt(2 * (layer + 1))
        assert entries[f"h.{layer}.proj"].target_std == pytest.approx(0.02 / math.sqrt(2 * (layer + 1)))
    assert entries["out"].initializer.stddev == 2.0 * 32**-0.5 * 64 / 64
    values = initreg.init_tree(SPEC, rules, seed=1, variables={"scale": 2.0})
    assert values["out"].std() == pytest.approx(2.0 * 32**-0.5, rel=0.05)


def test_equal_arguments_share_one_initializer_and_the_plan_holds_concrete_ones() -> None:
    rules = {"all": {"match": "*", "init": {"name": "truncated_normal", "stddev": "=1 / sqrt(fan_in)", "cutoff": 3}}}
    entries = initreg.plan(SPEC, rules)
    assert entries[0].initializer is entries[1].initializer is entries[2].initializer
    assert type(entries[0].initializer) is initreg.TruncatedNormal and entries[0].initializer.cutoff == 3.0
    assert entries[3].initializer.stddev == 1 / math.sqrt(32)


def test_values_do_not_depend_on_how_the_argument_was_written() -> None:
    literal = {"all": {"match": "*", "init": {"name": "random_normal", "stddev": 0.25}}}
    computed = {"all": {"match": "*", "init": {"name": "random_normal", "stddev": "=1 / 4"}}}
    for name, array in initreg.init_tree(SPEC, literal, seed=2).items():
        if name != "h":
            np.testing.assert_array_equal(array, initreg.init_tree(SPEC, computed, seed=2)[name])


UNKNOWN = "unknown name 'n_layers'; valid: fan_in, fan_out, layer, n_layer"
NORMAL = "random_normal"


@pytest.mark.parametrize(
    ("init", "message"),
    [
        ({"name": NORMAL, "stddev": "=0.02 / sqrt(2 * n_layers)"}, f"rule 'bad': expression .* uses {UNKNOWN}"),
        ({"name": NORMAL, "stddev": "=0.02 / sqrt(2 * n_layer"}, "rule 'bad': expression .* is not valid syntax"),
        ({"name": NORMAL, "stddev": "=open('x')"}, "rule 'bad': expression .* uses a call of 'open'"),
        ({"name": "random_nrmal", "stddev": "=1"}, "rule 'bad': .*random_nrmal"),
    ],
)
def test_a_bad_expression_is_one_line_naming_the_rule(init: dict, message: str) -> None:
    with pytest.raises(initreg.InitregError, match=message) as raised:
        initreg.plan(
            SPEC,
            {"bad": {"match": "h.{layer}.proj", "init": init}},
            variables={"n_layer": 3},
            allow_unmatched_params=True,
        )
    assert "\n" not in str(raised.value)


@pytest.mark.parametrize(
    ("stddev", "message"),
    [
        ("=1 / layer", "parameter 'h.0.proj' \\(rule 'bad'\\): expression '=1 / layer' divides by zero"),
        ("=layer - 1", "parameter 'h.0.proj' \\(rule 'bad'\\): .*stddev.* must be >= 0"),
    ],
)
def test_an_expression_failing_for_one_parameter_names_it_and_the_rule(stddev: str, message: str) -> None:
    with pytest.raises(initreg.InitregError, match=message) as raised:
        initreg.plan(
            SPEC,
            {"bad": {"match": "h.{layer}.proj", "init": {"name": "random_normal", "stddev": stddev}}},
            allow_unmatched_params=True,
        )
    assert "\n" not in str(raised.value)


@pytest.mark.parametrize(
    ("variables", "message"),
    [
        ({"n": True}, "variable 'n' must be a finite number"),
        ({"n": "3"}, "variable 'n' must be a finite number"),
        ({"n": math.inf}, "variable 'n' must be a finite number"),
        ({"n": 2**4096}, "variable 'n' is an int of 4097 bits; at most 4096 are valid"),
        ({"n": -(10**5000)}, "variable 'n' is an int of 16610 bits; at most 4096 are valid"),
        ({"fan_in": 3}, "variable name 'fan_in' is not valid"),
        ({"2x": 3}, "variable name '2x' is not valid"),
        ([1], "variables must be a mapping"),
    ],
)
def test_bad_variables_are_errors(variables: object, message: str) -> None:
    with pytest.raises(initreg.InitregError, match=message):
        initreg.plan(SPEC, {"all": {"match": "*", "init": "zeros"}}, variables=variables)


def test_a_large_int_variable_within_the_bound_is_read_exactly() -> None:
    rules = {"all": {"match": "*", "init": {"name": "constant", "value": "=n // (10**400 // 3)"}}}
    (entry, *_) = initreg.plan(SPEC, rules, variables={"n": 10**400})
    assert entry.initializer.get_config()["value"] == 3


def test_a_capture_may_not_shadow_a_variable_and_parsed_rules_take_no_variables() -> None:
    with pytest.raises(initreg.InitregError, match=r"capture \{n\} in 'h.\{n\}.proj' has the name of a variable"):
        parse_rules({"r": {"match": "h.{n}.proj", "init": "zeros"}}, {"n": 1})
    with pytest.raises(initreg.InitregError, match=r"capture \{fan_in\}"):
        parse_rules({"r": {"match": "h.{fan_in}.proj", "init": "zeros"}})
    parsed = parse_rules({"r": {"match": "*", "init": {"name": "random_normal", "stddev": "=s"}}}, {"s": 0.5})
    assert initreg.plan(SPEC, parsed)[0].initializer.stddev == 0.5
    with pytest.raises(initreg.InitregError, match="variables go with a mapping of rules"):
        initreg.plan(SPEC, parsed, variables={"s": 1})


def test_an_optional_rule_may_match_nothing_and_must_be_a_bool() -> None:
    rules = {"all": {"match": "*", "init": "zeros"}, "biases": {"match": "*.bias", "init": "ones", "optional": True}}
    assert len(initreg.plan(SPEC, rules)) == 4
    with pytest.raises(initreg.InitregError, match="'optional' must be true or false; got 'yes'"):
        initreg.plan(SPEC, {"all": {"match": "*", "init": "zeros", "optional": "yes"}})
