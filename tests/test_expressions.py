"""Expressions: a whitelist of arithmetic over given names, parsed with ast, never eval'd."""

from __future__ import annotations

import math
import random

import pytest

import initreg
from initreg.errors import InvalidArgumentError
from initreg.expressions import FUNCTIONS, ExpressionError, compile_expression, compile_index, is_expression


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


def _balanced_product(leaf: str, leaves: int) -> str:
    """``(leaf*leaf)*(leaf*leaf)...`` with `leaves` leaves (a power of two), as a balanced tree."""
    return leaf if leaves == 1 else f"({_balanced_product(leaf, leaves // 2)})*({_balanced_product(leaf, leaves // 2)})"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("=" + "-" * 3000 + "1", "is 3,002 characters long; at most 2,000 are valid"),
        ("=" + _balanced_product("11", 8192), "is 57,340 characters long; at most 2,000 are valid"),
        ("=" + "+".join(["1"] * 600), "more than 1000 syntax nodes; at most 1000"),
        ("=" + "(" * 300 + "1" + ")" * 300, "not valid syntax"),
        ("=" + "*".join(["2**2048"] * 8), r"'\*' gives an integer of 4097 bits; at most 4096 are valid"),
        ("=" + _balanced_product("2**70", 64), r"'\*' gives an integer of 4481 bits; at most 4096 are valid"),
        ("=" + "1" * 1300 + " + 1", "the literal gives an integer of 4316 bits; at most 4096"),
        ("=round(1, -10**8)", "round\\(\\) to -100000000 digits; at most 1234 either way are valid"),
        ("=round(1, 10**8)", "round\\(\\) to 100000000 digits; at most 1234"),
        ("=shape * 10**8", r"'\*' takes numbers; got tuple \(4, 4\)"),
        ("=max(shape * 10**9)", r"'\*' takes numbers; got tuple"),
        ("=max(shape + shape)", r"'\+' takes numbers; got tuple"),
        ("=-shape", "unary '-' takes numbers; got tuple"),
        ("=big * big", "'\\*' gives an integer of 6001 bits"),
        ("=big2", "the value of 'big2' gives an integer of 5000 bits"),
    ],
)
def test_hostile_expressions_are_one_error_naming_the_operation_and_its_bound(text: str, message: str) -> None:
    values = {"shape": (4, 4), "big": 1 << 3000, "big2": 1 << 4999}
    with pytest.raises(ExpressionError, match=message) as raised:
        compile_expression(text).evaluate(values)
    assert "\n" not in str(raised.value) and len(str(raised.value)) < 2300


def test_the_bounds_leave_ordinary_large_values_alone() -> None:
    assert compile_expression("=round(123456, -3) + round(2.5, 1234)").evaluate({}) == 123000 + 2.5
    assert compile_expression("=(2**2047 * 2**2047) // (2**2046 * 2**2047)").evaluate({}) == 2
    assert compile_expression("=" + "+".join(["1"] * 300)).evaluate({}) == 300
    assert compile_index("[2**63 - 1 : -2**63]").evaluate({}) == (slice(2**63 - 1, -(2**63)),)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("[2**63]", "an index entry of 64 bits; valid: -2\\*\\*63 .. 2\\*\\*63 - 1"),
        ("[:10**1000 * 10**200]", "an index entry of 3987 bits"),
        ("[shape * 10**9]", "'\\*' takes numbers"),
        ("[" + "1" * 1300 + "]", "at most 4096"),
        ("[" + "1," * 1000 + "]", "index '\\[1,1,.*'... is 2,002 characters long; at most 2,000 are valid"),
    ],
)
def test_an_index_with_a_huge_integer_is_one_error(text: str, message: str) -> None:
    with pytest.raises(ExpressionError, match=message):
        compile_index(text).evaluate({"shape": (4, 4)})
    rules = {"all": {"match": "*", "init": "zeros"}, "part": {"match": "*", "init": "ones", "index": text}}
    with pytest.raises(InvalidArgumentError, match=message):
        initreg.plan({"w": (4, 4)}, rules)


def random_expression(rng: random.Random, depth: int) -> str:
    """A random expression over n, x, big, shape, the operators and the functions, bombs included."""
    if depth == 0 or rng.random() < 0.2:
        return rng.choice(
            ["n", "x", "big", "shape", "shape[0]", "shape[-1]", "shape[n]", str(rng.randint(-9, 9)),
             f"10**{rng.choice([2, 300, 1000, 10**8])}", rng.choice(["1e308", "1e-320", "0.5", "1e999", "2**4000"])]
        )  # fmt: skip
    a, b = random_expression(rng, depth - 1), random_expression(rng, depth - 1)
    form = rng.randrange(6)
    if form == 0:
        return f"({a}) {rng.choice(['+', '-', '*', '/', '//', '%', '**'])} ({b})"
    if form == 1:
        return f"{rng.choice(['-', '+'])}({a})"
    if form == 2:
        return f"({a}) {rng.choice(['<', '<=', '==', '!='])} ({b})"
    if form == 3:
        return f"({a}) if ({b}) else ({random_expression(rng, depth - 1)})"
    function = rng.choice(list(FUNCTIONS))
    return f"{function}({a}, {b})" if function in ("min", "max", "round", "log") and form == 4 else f"{function}({a})"


def test_random_expressions_give_a_number_or_an_expression_error() -> None:
    rng = random.Random(7)
    outcomes = {"value": 0, "error": 0}
    values = {"n": 3, "x": 0.25, "big": 1 << 4000, "shape": (4, 12)}
    for _ in range(400):
        text = random_expression(rng, rng.randint(1, 5))
        try:
            result = compile_expression("=" + text).evaluate(values)
            index = compile_index(f"[{text}:]").evaluate(values)
        except ExpressionError:
            outcomes["error"] += 1
            continue
        assert isinstance(result, (int, float)) and math.isfinite(result), text
        assert isinstance(index[0].start, int) and abs(index[0].start) < 2**63, text
        outcomes["value"] += 1
    assert outcomes["value"] > 40 and outcomes["error"] > 40, outcomes


@pytest.mark.parametrize("name", ["pi", "e", "sqrt"])
def test_variables_and_captures_cannot_hide_constants_or_functions(name):
    with pytest.raises(InvalidArgumentError, match=rf"variable name '{name}' is not valid"):
        initreg.plan({"w": (2, 2)}, {"a": {"match": "*", "init": "zeros"}}, variables={name: 0.01})
    with pytest.raises(InvalidArgumentError, match=rf"capture {{{name}}} in 'h.{{{name}}}.w' has the name"):
        initreg.plan({"h.0.w": (2, 2)}, {"a": {"match": f"h.{{{name}}}.w", "init": "zeros"}})
