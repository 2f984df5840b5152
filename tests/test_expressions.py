"""Expressions: a whitelist of arithmetic over given names, parsed with ast, never eval'd."""

from __future__ import annotations

import math

import pytest

import initreg
from initreg.errors import InvalidArgumentError
from initreg.expressions import ExpressionError, compile_expression, compile_index, is_expression


@pytest.mark.parametrize(
    ("text", "values", "expected"),
    [
        ("=0.02 / sqrt(2 * n_layer)", {"n_layer": 12}, 0.02 / math.sqrt(24)),
        ("=fan_in ** -0.5", {"fan_in": 256}, 0.0625),
        ("=2 ** 10", {}, 1024),
        ("=7 // 2 + 7 % 2", {}, 4),
        ("=-x + +x", {"x": 3}, 0),
        ("=shape[-1] // 3", {"shape": (4, 12)}, 4),
        ("=0.02 / sqrt(2 * (layer + 1)) if depth else 0.01", {"layer": 1, "depth": 1}, 0.01),
        ("=1 if 0 < x <= 2 else 2", {"x": 2}, 1),
        ("=max(1, min(a, 3)) + abs(-2) + floor(2.5) + ceil(2.5) + round(2.4)", {"a": 5}, 3 + 2 + 2 + 3 + 2),
        ("=exp(log(2)) + log2(8) + pi - pi + e - e", {}, 5.0),
    ],
)
def test_expressions_evaluate(text: str, values: dict[str, object], expected: float) -> None:
    assert compile_expression(text).evaluate(values) == pytest.approx(expected, rel=1e-15)


def test_integer_arithmetic_stays_integer() -> None:
    assert isinstance(compile_expression("=d // 2").evaluate({"d": 7}), int)
    assert isinstance(compile_expression("=d / 2").evaluate({"d": 8}), float)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("=__import__('os')", "call of '__import__'"),
        ("=x.real", "'Attribute'"),
        ("=(lambda: 1)()", "call of"),
        ("='a' * 3", "literal 'a'"),
        ("=True + 1", "literal True"),
        ("=[1, 2]", "'List'"),
        ("=sqrt(x=1)", "keyword"),
        ("=sqrt(*a)", "keyword or starred"),
        ("=(1).bit_length()", "call of"),
        ("=f(1)[0]", "the subscript"),
        ("=x if", "not valid syntax"),
        ("=", "not valid syntax"),
        ("=a; b", "not valid syntax"),
        ("0.02", "starts with '='"),
    ],
)
def test_forbidden_forms_are_errors_naming_the_expression(text: str, message: str) -> None:
    with pytest.raises(ExpressionError, match=message) as raised:
        compile_expression(text)
    assert isinstance(raised.value, InvalidArgumentError)
    assert "\n" not in str(raised.value)


@pytest.mark.parametrize(
    ("text", "values", "message"),
    [
        ("=1 / (n - 2)", {"n": 2}, "divides by zero"),
        ("=sqrt(-n)", {"n": 1}, "cannot be evaluated: math domain error"),
        ("=exp(n)", {"n": 1000}, "cannot be evaluated"),
        ("=10.0 ** n", {"n": 400}, "cannot be evaluated"),
        ("=2 ** n", {"n": 10**6}, "cannot be evaluated"),
        ("=shape[5]", {"shape": (1, 2)}, "out of range"),
        ("=n[0]", {"n": 3}, "only a sequence"),
        ("=shape", {"shape": (1, 2)}, "must give a number"),
        ("=1 < 2", {}, "must give a number"),
        ("=missing + 1", {}, "unknown name 'missing'"),
    ],
)
def test_evaluation_failures_are_one_line_errors(text: str, values: dict[str, object], message: str) -> None:
    with pytest.raises(ExpressionError, match=message) as raised:
        compile_expression(text).evaluate(values)
    assert text in str(raised.value) and "\n" not in str(raised.value)


def test_names_are_the_free_names_and_unknown_ones_are_listed_with_the_valid() -> None:
    expression = compile_expression("=initializer_range / sqrt(2 * n_layer) * pi")
    assert expression.names == {"initializer_range", "n_layer"}
    expression.check_names(["initializer_range", "n_layer"])
    with pytest.raises(ExpressionError, match="unknown name 'n_layer'; valid: fan_in, initializer_range"):
        expression.check_names(["initializer_range", "fan_in"])


def test_is_expression() -> None:
    assert is_expression("=1") and not is_expression("1") and not is_expression(1) and not is_expression(None)


@pytest.mark.parametrize(
    ("text", "values", "expected"),
    [
        ("[0]", {}, (0,)),
        ("[pad]", {"pad": 3}, (3,)),
        ("[:, 0:d_model]", {"d_model": 8}, (slice(None), slice(0, 8))),
        ("[..., ::2]", {}, (Ellipsis, slice(None, None, 2))),
        ("[p : p + 1]", {"p": -1}, (slice(-1, 0),)),
        ("[:, 0 : shape[1] // 3]", {"shape": (4, 12)}, (slice(None), slice(0, 4))),
    ],
)
def test_an_index_is_numpy_basic_indexing_with_int_expressions(text: str, values: dict, expected: tuple) -> None:
    assert compile_index(text).evaluate(values) == expected


@pytest.mark.parametrize(
    ("text", "values", "message"),
    [
        ("0", {}, "written in brackets"),
        ("[0][1]", {}, "one bracketed index"),
        ("[d / 2]", {"d": 4}, "must be an int"),
        ("[[0, 1]]", {}, "'List'"),
        ("[x]", {}, "unknown name 'x'"),
        ("[1 // n]", {"n": 0}, "divides by zero"),
    ],
)
def test_a_bad_index_is_an_error(text: str, values: dict, message: str) -> None:
    with pytest.raises(ExpressionError, match=message):
        compile_index(text).evaluate(values)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("=" + "-" * 3000 + "1", "nested too deeply"),
        ("=" + "+".join(["1"] * 3000), "nested too deeply"),
        ("=" + "*".join(["2**2048"] * 8), "gives an integer of 16385 bits; at most 4096"),
    ],
)
def test_hostile_expressions_are_one_error(text, message):
    with pytest.raises(ExpressionError, match=message):
        compile_expression(text).evaluate({})


@pytest.mark.parametrize("name", ["pi", "e", "sqrt"])
def test_variables_and_captures_cannot_hide_constants_or_functions(name):
    with pytest.raises(InvalidArgumentError, match=rf"variable name '{name}' is not valid"):
        initreg.plan({"w": (2, 2)}, {"a": {"match": "*", "init": "zeros"}}, variables={name: 0.01})
    with pytest.raises(InvalidArgumentError, match=rf"capture {{{name}}} in 'h.{{{name}}}.w' has the name"):
        initreg.plan({"h.0.w": (2, 2)}, {"a": {"match": f"h.{{{name}}}.w", "init": "zeros"}})
