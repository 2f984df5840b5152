"""Hostile overrides through the real `initreg` command, counted by what became of them.

    .venv/bin/python bench/fuzz_overrides.py [--count 600] [--seed 0]

A seeded generator (`hostile_overrides`) makes `--count` command lines, each a dry run of the mlp or
gpt2_small model plus one hostile override drawn from one category:

- deleted: ``~key`` for every top-level key, every key of the models and the default rules;
- wrong type: every such key set to a list, a mapping, a huge or negative integer, a float, a
  string, a boolean, null or an empty string;
- nesting: a list or mapping nested a few thousand levels deep;
- digits: an integer of 4,000 to 6,000 digits (Python's int/str limit is 4,300);
- group: a bad option of a group (``init=-1``, ``hydra/job_logging=-1``, ``model=[1]``, ...);
- unknown: an unknown key, with and without ``+``;
- package: a group's option put elsewhere by a package directive (``+init@model=he_normal``).

Each runs in this process through ``initreg.cli.main`` (``run_command``), from an empty temporary
folder. The outcome is "ok" (exit 0), "clean error" (exit 2 and exactly one ``initreg: error:`` line
on stderr) or "traceback" (anything else: an exception escaping, another exit code, more lines).
The table gives the counts per category; the first command line of each traceback is printed below it.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import os
import random
import signal
import sys
import tempfile
import traceback
import warnings
from collections.abc import Callable

from hydra.core.global_hydra import GlobalHydra

from initreg import cli

TOP_KEYS = (
    "seed", "dtype", "output", "dry_run", "allow_unmatched_params", "allow_unused_rules", "stream", "chunk_mb",
    "progress", "rules", "init", "model", "recipe", "backend",
)  # fmt: skip
MODEL_KEYS = ("layout", "params", "repeat", "variables", "ties", "path", "layers")
OTHER_KEYS = ("rules.weights", "rules.weights.match", "rules.weights.init", "rules.biases.init", "backend.name")
KEYS = TOP_KEYS + tuple(f"model.{key}" for key in MODEL_KEYS) + OTHER_KEYS
WRONG_VALUES = ("[1,2]", "{a:1}", "1" + "0" * 40, "-1", "-7", "2.5", "abc", "true", "null", "''", "[[]]", "{}")
GROUP_CHOICES = (
    "init=-1", "init=null", "init=[1]", "model=-1", "model=null", "model={a:1}", "backend=nope", "backend=-1",
    "recipe=1", "recipe=[x]", "hydra/job_logging=-1", "hydra/launcher=nope", "hydra/sweeper=-1", "init/x=y",
)  # fmt: skip
UNKNOWN = ("sed=3", "+sed=3", "model.foo=1", "+model.foo=1", "rules.nope.init=zeros", "backend.x=1", "+init.x=1")
PACKAGES = (
    "+init@model=he_normal", "+init@rules=zeros", "+init@_global_=he_normal", "+init@seed=zeros",
    "+backend@model=numpy", "+model@rules=mlp", "+init@rules.weights=zeros", "+model@init=mlp",
)  # fmt: skip
MODELS = ("mlp", "gpt2_small")


def _deleted(draw: random.Random) -> str:
    return "~" + draw.choice(KEYS)


def _wrong_type(draw: random.Random) -> str:
    key = draw.choice(KEYS)
    return f"{'++' if key.startswith('model.') else ''}{key}={draw.choice(WRONG_VALUES)}"


def _nesting(draw: random.Random) -> str:
    depth = draw.randint(1_000, 5_000)
    key = draw.choice(("seed", "+x", "model.params", "rules"))
    if draw.random() < 0.5:
        return f"{key}={'[' * depth}{']' * depth}"
    return f"{key}={'{a:' * depth}1{'}' * depth}"


def _digits(draw: random.Random) -> str:
    digits = "".join(draw.choice("123456789") for _ in range(draw.randint(4_000, 6_000)))
    return f"{draw.choice(('seed', 'chunk_mb', 'init.scale', 'model.layers', '+model.params.w'))}={digits}"


CATEGORIES: dict[str, Callable[[random.Random], str]] = {
    "deleted": _deleted,
    "wrong type": _wrong_type,
    "nesting": _nesting,
    "digits": _digits,
    "group": lambda draw: draw.choice(GROUP_CHOICES),
    "unknown": lambda draw: draw.choice(UNKNOWN),
    "package": lambda draw: draw.choice(PACKAGES),
}


def hostile_overrides(count: int, seed: int) -> list[tuple[str, list[str]]]:
    """`count` (category, command line) pairs: a dry run of a drawn model plus one hostile override."""
    draw = random.Random(seed)
    cases = []
    for _ in range(count):
        category = draw.choice(sorted(CATEGORIES))
        cases.append((category, [f"model={draw.choice(MODELS)}", "dry_run=true", CATEGORIES[category](draw)]))
    return cases


def run_command(arguments: list[str]) -> tuple[int | None, str]:
    """Runs `initreg arguments` in this process from an empty temporary folder: (exit code, stderr).

    The exit code is None when an exception escaped; stderr then ends in its traceback. The process's
    environment, arguments, folder, warning printer and signal handlers are restored afterwards.
    """
    saved = dict(os.environ), sys.argv, os.getcwd(), warnings.showwarning
    handlers = {signum: signal.getsignal(signum) for signum in (signal.SIGTERM, signal.SIGHUP)}
    errors = io.StringIO()
    code: int | None
    with tempfile.TemporaryDirectory() as folder:
        os.chdir(folder)
        sys.argv = ["initreg", *arguments]
        GlobalHydra.instance().clear()
        try:
            with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(errors):
                cli.main()
            code = 0
        except SystemExit as ended:
            code = ended.code if isinstance(ended.code, int) else (0 if ended.code is None else 1)
        except BaseException:  # counted as a traceback: what the fuzzer looks for
            errors.write(traceback.format_exc())
            code = None
        finally:
            os.chdir(saved[2])
            os.environ.clear()
            os.environ.update(saved[0])
            sys.argv, warnings.showwarning = saved[1], saved[3]
            for signum, handler in handlers.items():
                signal.signal(signum, handler)
            GlobalHydra.instance().clear()
    return code, errors.getvalue()


def outcome(code: int | None, stderr: str) -> str:
    """ "ok", "clean error" (exit 2, one ``initreg: error:`` line) or "traceback" (anything else)."""
    if code == 0 and "Traceback" not in stderr:
        return "ok"
    if code == cli.EXIT_BAD_INPUT and stderr.startswith("initreg: error: ") and stderr.count("\n") == 1:
        return "clean error"
    return "traceback"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--count", type=int, default=600)
    parser.add_argument("--seed", type=int, default=0)
    options = parser.parse_args()
    counts: dict[str, dict[str, int]] = {}
    failures: dict[str, list[str]] = {}
    for category, arguments in hostile_overrides(options.count, options.seed):
        code, stderr = run_command(arguments)
        result = outcome(code, stderr)
        counts.setdefault(category, {"ok": 0, "clean error": 0, "traceback": 0})[result] += 1
        if result == "traceback":
            failures.setdefault(category, []).append(" ".join(arguments)[:160] + " -> " + stderr.strip()[-160:])
    columns = ("ok", "clean error", "traceback")
    print(f"{'category':<12}" + "".join(f"{c:>13}" for c in columns) + f"{'total':>8}")
    for category in sorted(counts):
        row = counts[category]
        print(f"{category:<12}" + "".join(f"{row[c]:>13}" for c in columns) + f"{sum(row.values()):>8}")
    totals = {c: sum(row[c] for row in counts.values()) for c in columns}
    print(f"{'all':<12}" + "".join(f"{totals[c]:>13}" for c in columns) + f"{sum(totals.values()):>8}")
    for category, lines in sorted(failures.items()):
        print(f"\n{category}: {len(lines)} traceback(s); first: {lines[0]!r}")


if __name__ == "__main__":
    main()
