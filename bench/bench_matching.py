"""Rule matching: adversarial patterns and names under a time bound, and planning over rules x parameters.

    .venv/bin/python bench/bench_matching.py [--bound 0.05] [--sizes 100,1000,10000] [--baseline-params 1000]

Section 1, adversarial matching: each row is one pattern against one name (best of 3 calls of
``PathPattern.match``, the name's bitsets rebuilt in each call), next to ``fnmatch.fnmatchcase`` where the
pattern has no capture; "work" is the matcher's bit-operation count and "n x m" the product of the
name's and the pattern's lengths it is bounded by (4 (n+1)(m+1)). A row over --bound seconds is marked
OVER and the script exits 1.

Section 2, planning: ``initreg.plan`` of P parameters ``blocks.<i>.<kind>.weight|bias`` (i < P/4) under R
rules: a catch-all ``*`` first, then ``*.bias``, then R-2 rules ``blocks.<j>.<kind>.*`` over the same
blocks (some parameters are claimed by a late rule, some by an early one, some only by the catch-all).
"plan s" is one call with parsed rules (the index built inside it); "baseline s" is last-match-wins by
``fnmatchcase`` over every rule in reverse for each parameter, measured on the first --baseline-params
parameters and scaled by P over that count (marked ~) where P is larger; both give the same winners on
the measured parameters (checked).
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable
from fnmatch import fnmatchcase
from typing import Any

from machine import cpu_model

import initreg
from initreg import patterns, tree
from initreg.patterns import PathPattern, compile_pattern

ADVERSARIAL = [
    ("*" * 50 + "x", "a" * 8000),
    ("*" * 50 + "a", "a" * 8000),
    ("*a" * 30 + "b", "a" * 8000),
    ("*ab*ab*ab*ab*ab*ab*ab*ab", "ab" * 4000 + "a"),
    ("*h.*.*.c_*.weight", "h." + "1." * 4000 + "attn.c_attn.weight"),
    ("*h.*.*.c_*.weight", "h." * 4000 + "c_"),
    ("*.{i}.*.{j}.*.{k}.*x", "1." * 4000),
    ("*{a}*{b}*{c}*{d}*x", "9" * 8000 + "y"),
    ("{a}{b}{c}{d}x", "9" * 600 + "x"),
    ("*blocks.{layer_id}.attn_out.weight", "blocks." * 1100 + "1.attn_out.weight"),
    ("*layers.{i}.feed_forward.w[23].weight", "layers.1" * 1000 + ".feed_forward.w3.weight"),
    ("[!x]*" * 25 + "*y", "z" * 8000),
    ("x" + "*a" * 30, "a" * 8000),
    ("*a" * 30 + "*b", "a" * 8000 + "b"),
    ("?" * 100 + "*" + "?" * 100, "a" * 8000),
    ("{n}" + "*0" * 40, "0" * 600),
    ("*{n}" + "*0" * 40 + "1", "0" * 8000),
]
KINDS = ("attn.weight", "attn.bias", "mlp.weight", "mlp.bias")


def best_of(calls: int, work: Callable[[], Any]) -> float:
    best = float("inf")
    for _ in range(calls):
        start = time.perf_counter()
        work()
        best = min(best, time.perf_counter() - start)
    return best


def adversarial_section(bound: float) -> bool:
    """Prints section 1; whether every row stayed within `bound` seconds."""
    print("| pattern | name length | match s | fnmatchcase s | work | 4 (n+1)(m+1) | matched |")
    print("|---|---:|---:|---:|---:|---:|---|")
    within = True
    for text, path in ADVERSARIAL:
        pattern = compile_pattern(text)

        def match(pattern: PathPattern = pattern, path: str = path) -> None:
            patterns._subject.cache_clear()  # the name's bitsets are built in every call
            pattern.match(path)

        def plain_match(text: str = text, path: str = path) -> None:
            fnmatchcase(path, text)

        seconds = best_of(3, match)
        found, work = pattern.match_counting(path)
        fn_seconds = f"{best_of(3, plain_match):.5f}" if "{" not in text else "n/a (captures)"
        bound_work = 4 * (len(path) + 1) * (len(pattern.text) + 1)
        mark = "" if seconds <= bound else " OVER"
        within = within and seconds <= bound and work <= bound_work
        shown = text if len(text) <= 40 else f"{text[:37]}..."
        print(
            f"| `{shown}` | {len(path):,} | {seconds:.5f}{mark} | {fn_seconds} | {work:,} | {bound_work:,} | "
            f"{found is not None} |"
        )
    return within


def spec_of(params: int) -> dict[str, tuple[int, ...]]:
    return {f"blocks.{i // len(KINDS)}.{KINDS[i % len(KINDS)]}": (4, 4) for i in range(params)}


def rules_of(count: int, blocks: int) -> dict[str, dict[str, Any]]:
    rules: dict[str, dict[str, Any]] = {
        "all": {"match": "*", "init": "zeros"},
        "bias": {"match": "*.bias", "init": "zeros"},
    }
    for n in range(count - 2):
        block, kind = (n * 7919) % max(2 * blocks, 1), ("attn", "mlp")[n % 2]
        rules[f"r{n}"] = {"match": f"blocks.{block}.{kind}.*", "init": "ones", "optional": True}
    return rules


def baseline_winners(paths: list[str], rules: dict[str, dict[str, Any]]) -> dict[str, str]:
    """Last match wins by fnmatchcase over every rule, in reverse."""
    ordered = list(rules.items())[::-1]
    return {path: next(name for name, rule in ordered if fnmatchcase(path, rule["match"])) for path in paths}


def planning_section(sizes: list[int], baseline_params: int) -> None:
    initreg.plan(spec_of(8), rules_of(4, 2), allow_unused_rules=True)  # imports and registry lookups
    print("| rules | params | plan s | us per param | baseline s | baseline / plan |")
    print("|---:|---:|---:|---:|---:|---:|")
    for rule_count in sizes:
        for params in sizes:
            spec = spec_of(params)
            rules = rules_of(rule_count, params // len(KINDS))
            parsed = tree.parse_rules(rules)
            start = time.perf_counter()
            entries = initreg.plan(spec, parsed, allow_unused_rules=True)
            seconds = time.perf_counter() - start
            measured = list(spec)[:baseline_params]
            start = time.perf_counter()
            expected = baseline_winners(measured, rules)
            baseline = (time.perf_counter() - start) * params / len(measured)
            assert {entry.path: entry.rule for entry in entries[: len(measured)]} == expected
            scaled = "~" if len(measured) < params else ""
            print(
                f"| {rule_count:,} | {params:,} | {seconds:.3f} | {seconds / params * 1e6:.1f} | "
                f"{scaled}{baseline:.3f} | {scaled}{baseline / seconds:.1f}x |"
            )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--bound", type=float, default=0.05, help="seconds one adversarial match may take")
    parser.add_argument("--sizes", default="100,1000,10000", help="rule and parameter counts of the grid")
    parser.add_argument("--baseline-params", type=int, default=1000, help="parameters the baseline is timed on")
    arguments = parser.parse_args()
    print(f"{cpu_model()}, Python {sys.version.split()[0]}\n")
    within = adversarial_section(arguments.bound)
    print()
    planning_section([int(size) for size in arguments.sizes.split(",")], arguments.baseline_params)
    if not within:
        sys.exit(1)


if __name__ == "__main__":
    main()
