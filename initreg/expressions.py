"""Arithmetic expressions in rule arguments: ``"=0.02 / sqrt(2 * n_layer)"``.

A string that starts with ``=`` is an expression; the rest is parsed with Python's `ast` and only
these forms are accepted (anything else, attribute access and keywords included, is an error):

- int and float literals, and names (given by the caller: captures, variables, fans, the shape);
- ``+ - * / // % **``, unary ``-`` and ``+``;
- comparisons ``< <= > >= == !=`` (chains included) and ``a if condition else b``;
- ``shape[i]``: an entry of a sequence name by an int (negative counts from the end);
- calls of the functions in FUNCTIONS with positional arguments.

Evaluation works on Python ints and floats: ``//`` and ``%`` of ints stay ints (for indices), ``/`` is
true division. Division by zero, a math domain error, an overflow and a non-finite result are errors.

Every cost is bounded before it is paid, each bound an ExpressionError naming it: the text has at most
MAX_LENGTH characters and its tree at most MAX_NODES nodes (evaluation visits each node at most once,
so this is also its step budget); every int, read or computed, has at most MAX_INT_BITS bits (an
``int ** int`` that would exceed it is computed in floats); ``round``'s digits are at most
MAX_ROUND_DIGITS either way; arithmetic takes numbers only (never a sequence such as shape); an index
entry fits in 64 bits.
"""

from __future__ import annotations

import ast
import math
import operator
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from initreg.errors import InvalidArgumentError

PREFIX = "="
Number = int | float
FUNCTIONS: dict[str, Callable[..., Number]] = {
    "sqrt": math.sqrt,
    "log": math.log,
    "log2": math.log2,
    "exp": math.exp,
    "abs": abs,
    "min": min,
    "max": max,
    "floor": math.floor,
    "ceil": math.ceil,
    "round": round,
}
CONSTANTS: dict[str, float] = {"pi": math.pi, "e": math.e}
_BINARY: dict[type[ast.operator], tuple[str, Callable[[Any, Any], Any]]] = {
    ast.Add: ("+", operator.add),
    ast.Sub: ("-", operator.sub),
    ast.Mult: ("*", operator.mul),
    ast.Div: ("/", operator.truediv),
    ast.FloorDiv: ("//", operator.floordiv),
    ast.Mod: ("%", operator.mod),
    ast.Pow: ("**", operator.pow),
}  # operator: (its symbol, what it does)
_UNARY: dict[type[ast.unaryop], Callable[[Any], Any]] = {ast.USub: operator.neg, ast.UAdd: operator.pos}
_COMPARE: dict[type[ast.cmpop], Callable[[Any, Any], bool]] = {
    ast.Lt: operator.lt,
    ast.LtE: operator.le,
    ast.Gt: operator.gt,
    ast.GtE: operator.ge,
    ast.Eq: operator.eq,
    ast.NotEq: operator.ne,
}
MAX_LENGTH = 2000  # characters of an expression's text
MAX_NODES = 1000  # nodes of its syntax tree
MAX_INT_BITS = 4096  # bits of any int it reads or computes; an int ** int beyond this is computed in floats
MAX_ROUND_DIGITS = 1234  # round's ndigits, either sign: the decimal digits of the largest int
MAX_INDEX_BITS = 63  # an index entry is in [-2**63, 2**63)


class ExpressionError(InvalidArgumentError):
    """An expression that does not parse, uses a form or name that is not allowed, or fails to evaluate."""


def is_expression(value: Any) -> bool:
    """Whether `value` is an expression string (starts with '=')."""
    return isinstance(value, str) and value.startswith(PREFIX)


@dataclass(frozen=True)
class _Checked:
    """Parsed, checked text: `names` are the free names it reads (functions and constants excluded)."""

    text: str
    tree: ast.expr
    names: frozenset[str]
    kind = "expression"

    @contextmanager
    def _failures_named(self) -> Iterator[None]:
        """Turns an evaluation failure inside the block into an ExpressionError naming this text."""
        try:
            yield
        except ZeroDivisionError:
            raise ExpressionError(f"{self.kind} {self.text!r} divides by zero") from None
        except KeyError as error:
            raise ExpressionError(f"{self.kind} {self.text!r} uses unknown name {error}") from None
        except (ValueError, OverflowError, TypeError) as error:
            raise ExpressionError(f"{self.kind} {self.text!r} cannot be evaluated: {error}") from None
        except RecursionError:
            raise ExpressionError(f"{self.kind} {self.text!r} is nested too deeply") from None

    def check_names(self, known: Sequence[str]) -> None:
        """Raises for a name that is not in `known`, listing the valid ones."""
        unknown = sorted(self.names - set(known))
        if unknown:
            raise ExpressionError(
                f"{self.kind} {self.text!r} uses unknown name {unknown[0]!r}; valid: "
                f"{', '.join(sorted(set(known)))}, and the functions {', '.join(FUNCTIONS)}"
            )


class Expression(_Checked):
    """A checked expression such as ``"=0.02 / sqrt(2 * n_layer)"``."""

    def evaluate(self, values: Mapping[str, Any]) -> Number:
        """Its value with `values` for its names; a failure raises an ExpressionError naming the expression."""
        with self._failures_named():
            result = _evaluate(self.tree, values)
        if isinstance(result, bool) or not isinstance(result, (int, float)):
            raise ExpressionError(f"expression {self.text!r} gives {result!r}; it must give a number")
        if isinstance(result, float) and not math.isfinite(result):
            raise ExpressionError(f"expression {self.text!r} gives {result}; it must be finite")
        return result


class IndexExpression(_Checked):
    """A checked index such as ``"[:, 0:d_model]"``: NumPy basic indexing whose entries are int expressions."""

    kind = "index"

    def evaluate(self, values: Mapping[str, Any]) -> tuple[Any, ...]:
        """The index with `values` for its names: a tuple of slices, ints and Ellipsis."""
        parts = self.tree.elts if isinstance(self.tree, ast.Tuple) else [self.tree]
        with self._failures_named():
            return tuple(_index_part(part, values) for part in parts)


@lru_cache(maxsize=1024)
def compile_expression(text: str) -> Expression:
    """The Expression of ``"=<python arithmetic>"``; a syntax error or a form not allowed raises."""
    if not is_expression(text):
        raise ExpressionError(f"an expression starts with {PREFIX!r}; got {text!r}")
    _check_length(text, "expression")
    tree = _parse(text, text[len(PREFIX) :])
    return Expression(text, tree, _checked_names(text, tree))


@lru_cache(maxsize=1024)
def compile_index(text: str) -> IndexExpression:
    """The IndexExpression of a string such as ``"[0]"`` or ``"[:, 0:d_model]"``."""
    stripped = text.strip() if isinstance(text, str) else ""
    if not (stripped.startswith("[") and stripped.endswith("]")):
        raise ExpressionError(f"an index is written in brackets, such as '[0]' or '[:, 0:d_model]'; got {text!r}")
    _check_length(text, "index")
    tree = _parse(text, "_" + stripped)
    if not isinstance(tree, ast.Subscript) or not isinstance(tree.value, ast.Name) or tree.value.id != "_":
        raise ExpressionError(f"index {text!r} is not one bracketed index such as '[0]' or '[:, 0:d_model]'")
    return IndexExpression(text, tree.slice, _checked_names(text, tree.slice))


def _check_length(text: str, kind: str) -> None:
    """Raises for a text of more than MAX_LENGTH characters (showing its start only)."""
    if len(text) > MAX_LENGTH:
        raise ExpressionError(
            f"{kind} {text[:40]!r}... is {len(text):,} characters long; at most {MAX_LENGTH:,} are valid"
        )


def _parse(text: str, source: str) -> ast.expr:
    try:
        return ast.parse(source.strip(), mode="eval").body
    except SyntaxError as error:
        raise ExpressionError(f"expression {text!r} is not valid syntax: {error.msg}") from None
    except (RecursionError, MemoryError):
        raise ExpressionError(f"expression {text!r} is nested too deeply") from None


def _checked_names(text: str, tree: ast.expr) -> frozenset[str]:
    """The free names of `tree`; a node that is not allowed raises."""
    names: set[str] = set()
    for count, node in enumerate(ast.walk(tree), 1):
        if count > MAX_NODES:
            raise ExpressionError(f"expression {text!r} has more than {MAX_NODES} syntax nodes; at most {MAX_NODES}")
        problem = _forbidden(node)
        if problem:
            raise ExpressionError(f"expression {text!r} uses {problem}, which is not allowed")
        if isinstance(node, ast.Name) and node.id not in FUNCTIONS and node.id not in CONSTANTS:
            names.add(node.id)
    return frozenset(names)


_ALLOWED = (
    ast.Constant, ast.Name, ast.Load, ast.BinOp, ast.UnaryOp, ast.Compare, ast.IfExp, ast.Call,
    ast.Subscript, ast.Slice, ast.Tuple, *_BINARY, *_UNARY, *_COMPARE,
)  # fmt: skip


def _forbidden(node: ast.AST) -> str | None:
    """What is wrong with one node, or None if it is allowed."""
    if not isinstance(node, _ALLOWED):
        return f"{type(node).__name__!r}"
    if isinstance(node, ast.Constant) and (
        isinstance(node.value, bool) or (not isinstance(node.value, (int, float)) and node.value is not Ellipsis)
    ):
        return f"the literal {node.value!r} (only numbers are)"
    if isinstance(node, ast.Call):
        if not isinstance(node.func, ast.Name) or node.func.id not in FUNCTIONS:
            return f"a call of {ast.unparse(node.func)!r} (valid: {', '.join(FUNCTIONS)})"
        if node.keywords or any(isinstance(argument, ast.Starred) for argument in node.args):
            return "keyword or starred arguments"
    if isinstance(node, ast.Subscript) and not isinstance(node.value, ast.Name):
        return f"the subscript {ast.unparse(node)!r} (only a name such as shape[0] is)"
    return None


def _evaluate(node: ast.expr, values: Mapping[str, Any]) -> Any:
    """The value of `node`; an int beyond MAX_INT_BITS raises, naming the operation that made it."""
    return _bounded(_value(node, values), node)


def _bounded(value: Any, node: ast.expr) -> Any:
    if isinstance(value, int) and value.bit_length() > MAX_INT_BITS:
        raise OverflowError(
            f"{_operation(node)} gives an integer of {value.bit_length()} bits; at most {MAX_INT_BITS} are valid"
        )
    return value


def _operation(node: ast.expr) -> str:
    """How an error names the operation of `node`: its operator, function or name."""
    if isinstance(node, ast.BinOp):
        return repr(_BINARY[type(node.op)][0])
    if isinstance(node, ast.Call) and isinstance(node.func, ast.Name):
        return f"{node.func.id}()"
    if isinstance(node, ast.Name):
        return f"the value of {node.id!r}"
    return "the literal" if isinstance(node, ast.Constant) else type(node).__name__


def _value(node: ast.expr, values: Mapping[str, Any]) -> Any:
    if isinstance(node, ast.Constant):
        return node.value
    if isinstance(node, ast.Name):
        return CONSTANTS[node.id] if node.id in CONSTANTS else values[node.id]
    if isinstance(node, ast.BinOp):
        left, right = _evaluate(node.left, values), _evaluate(node.right, values)
        _numbers_only(_operation(node), left, right)
        if isinstance(node.op, ast.Pow):
            return _power(left, right)
        return _BINARY[type(node.op)][1](left, right)
    if isinstance(node, ast.UnaryOp):
        operand = _evaluate(node.operand, values)
        _numbers_only(f"unary {'-' if isinstance(node.op, ast.USub) else '+'!r}", operand)
        return _UNARY[type(node.op)](operand)
    if isinstance(node, ast.Compare):
        left = _evaluate(node.left, values)
        for op, comparator in zip(node.ops, node.comparators, strict=True):
            right = _evaluate(comparator, values)
            if not _COMPARE[type(op)](left, right):
                return False
            left = right
        return True
    if isinstance(node, ast.IfExp):
        return _evaluate(node.body if _evaluate(node.test, values) else node.orelse, values)
    if isinstance(node, ast.Call):
        assert isinstance(node.func, ast.Name)
        arguments = [_evaluate(argument, values) for argument in node.args]
        if node.func.id == "round" and len(arguments) == 2:
            _check_round_digits(arguments[1])
        return FUNCTIONS[node.func.id](*arguments)
    if isinstance(node, ast.Subscript):
        sequence, position = _evaluate(node.value, values), _evaluate(node.slice, values)
        if not isinstance(sequence, (tuple, list)) or isinstance(position, bool) or not isinstance(position, int):
            raise TypeError(f"{ast.unparse(node)}: only a sequence such as shape takes an int index")
        if not -len(sequence) <= position < len(sequence):
            raise ValueError(f"{ast.unparse(node)}: index {position} is out of range for {sequence!r}")
        return sequence[position]
    raise TypeError(f"{ast.unparse(node)!r} is not a number")


def _numbers_only(operation: str, *operands: Any) -> None:
    """Raises for an operand that is not a number (a sequence such as shape would be repeated or joined)."""
    for operand in operands:
        if not isinstance(operand, (int, float)):
            raise TypeError(f"{operation} takes numbers; got {type(operand).__name__} {operand!r}")


def _check_round_digits(digits: Any) -> None:
    """Raises for round's ndigits beyond MAX_ROUND_DIGITS (round(1, -10**8) would build 10**(10**8))."""
    if isinstance(digits, int) and abs(digits) > MAX_ROUND_DIGITS:
        raise OverflowError(f"round() to {digits} digits; at most {MAX_ROUND_DIGITS} either way are valid")


def _power(base: Any, exponent: Any) -> Any:
    """base ** exponent; in floats unless both are ints and the result stays within MAX_INT_BITS."""
    small = isinstance(base, int) and isinstance(exponent, int) and exponent >= 0
    if small and abs(base).bit_length() * exponent <= MAX_INT_BITS:
        return base**exponent
    return math.pow(base, exponent)


def _index_part(node: ast.expr, values: Mapping[str, Any]) -> Any:
    if isinstance(node, ast.Slice):
        bounds = (
            None if bound is None else _int(_evaluate(bound, values)) for bound in (node.lower, node.upper, node.step)
        )
        return slice(*bounds)
    if isinstance(node, ast.Constant) and node.value is Ellipsis:
        return Ellipsis
    return _int(_evaluate(node, values))


def _int(value: Any) -> int:
    """`value` if it is an int of at most MAX_INDEX_BITS bits and a sign."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"an index must be an int; got {value!r}")
    if not -(1 << MAX_INDEX_BITS) <= value < 1 << MAX_INDEX_BITS:
        raise OverflowError(
            f"an index entry of {value.bit_length()} bits; valid: -2**{MAX_INDEX_BITS} .. 2**{MAX_INDEX_BITS} - 1"
        )
    return value
