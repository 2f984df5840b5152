"""Random expressions, bombs included: every one gives a number or one ExpressionError, never another exception.

    .venv/bin/python bench/fuzz_expressions.py [--count 20000] [--depth 8] [--seed 0]

Each expression comes from the generator of tests/test_expressions.py (numbers, n, x, a 4000-bit int,
shape and shape[i], powers of ten up to 10**(10**8), 1e308, 1e999 and 2**4000, under the operators,
comparisons, conditionals and functions), at a depth drawn in 1..--depth. It is compiled and evaluated as
``=<text>`` and as the index ``[<text>:]``; the table counts the outcomes of both by kind (the
ExpressionError kinds by the words that name them) with the slowest single compile-and-evaluate. Any
other exception is listed and the script exits 1.
"""

from __future__ import annotations

import argparse
import random
import re
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

from machine import cpu_model

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
from test_expressions import random_expression

from initreg.expressions import ExpressionError, compile_expression, compile_index

VALUES = {"n": 3, "x": 0.25, "big": 1 << 4000, "shape": (4, 12)}
KINDS = [  # (kind, a regular expression its message matches), the first match wins
    ("bound: text length", r"characters long; at most"),
    ("bound: syntax nodes", r"syntax nodes; at most"),
    ("bound: integer bits", r"gives an integer of \d+ bits"),
    ("bound: round digits", r"round\(\) to -?\d+ digits"),
    ("bound: numbers only", r"takes numbers; got"),
    ("bound: index bits", r"an index entry of \d+ bits"),
    ("divides by zero", r"divides by zero"),
    ("overflow or range", r"math range error|too large|overflow|infinity"),
    ("math domain", r"math domain error|NaN"),
    ("not finite", r"it must be finite"),
    ("not a number", r"must give a number|must be an int"),
    ("wrong type", r"not supported|not iterable|must be real|__round__|cannot be interpreted|takes an int|bad operand"),
    ("wrong arguments", r"argument"),
    ("index out of range", r"out of range"),
]


def outcome(compile_and_evaluate: Any, text: str) -> str:
    """'value', the ExpressionError kind of its message, or 'OTHER <exception>'."""
    try:
        compile_and_evaluate(text).evaluate(VALUES)
    except ExpressionError as error:
        message = str(error)
        unnamed = "ExpressionError: " + re.sub(r"\d+", "N", message.split("cannot be evaluated: ")[-1])[:60]
        return next((kind for kind, words in KINDS if re.search(words, message)), unnamed)
    except Exception as error:  # the very failure this script looks for
        return f"OTHER {type(error).__name__}: {error}"
    return "value"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--count", type=int, default=20000)
    parser.add_argument("--depth", type=int, default=8)
    parser.add_argument("--seed", type=int, default=0)
    arguments = parser.parse_args()
    rng = random.Random(arguments.seed)
    counts: dict[str, Counter[str]] = {"expression": Counter(), "index": Counter()}
    slowest, slowest_text, start = 0.0, "", time.perf_counter()
    for _ in range(arguments.count):
        text = random_expression(rng, rng.randint(1, arguments.depth))
        for form, compiler, written in (
            ("expression", compile_expression, f"={text}"),
            ("index", compile_index, f"[{text}:]"),
        ):
            began = time.perf_counter()
            counts[form][outcome(compiler, written)] += 1
            if time.perf_counter() - began > slowest:
                slowest, slowest_text = time.perf_counter() - began, written
    total = time.perf_counter() - start
    print(f"{cpu_model()}, Python {sys.version.split()[0]}")
    print(
        f"{arguments.count:,} random expressions (seed {arguments.seed}, depth 1..{arguments.depth}) in {total:.1f} s"
    )
    print(f"slowest compile-and-evaluate: {slowest * 1e3:.2f} ms ({slowest_text[:60]!r}, {len(slowest_text)} chars)\n")
    kinds = sorted(set(counts["expression"]) | set(counts["index"]), key=lambda kind: -counts["expression"][kind])
    print("| outcome | as =expression | as [index:] |")
    print("|---|---:|---:|")
    for kind in kinds:
        print(f"| {kind} | {counts['expression'][kind]:,} | {counts['index'][kind]:,} |")
    if any(kind.startswith("OTHER") for kind in kinds):
        sys.exit(1)


if __name__ == "__main__":
    main()
