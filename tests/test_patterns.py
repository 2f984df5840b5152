"""Path patterns: plain globs behave exactly as fnmatch.fnmatchcase; {name} captures digits as ints."""

from __future__ import annotations

import itertools
import random
from fnmatch import fnmatchcase

import pytest

import initreg
from initreg.patterns import compile_pattern

PATHS = [
    "h.0.attn.c_proj.weight", "h.11.mlp.c_proj.weight", "wte.weight", "dense_0.kernel", "a.b", "a[1].b",
    "layers.3.attention.wo.weight", "x.y.z", "h.01.attn", "abc", "a.b.c.d.e", "", ".", "a*b", "a?b", "[x]",
]  # fmt: skip
GLOBS = [
    "*", "*.weight", "h.*.attn.*", "?", "a.?", "[ab]*", "[!a]*", "[]]*", "[!]]*", "a[.]b", "a[", "*[0-9]*",
    "*c_proj.weight", "h.[0-9].*", "a*b", "a\\*b", "[^a]*", "[a-c]*", "[[]x]", "*.*.*", "",
]  # fmt: skip


@pytest.mark.parametrize("glob", GLOBS)
def test_a_plain_glob_matches_as_fnmatchcase(glob: str) -> None:
    pattern = compile_pattern(glob)
    for path in PATHS:
        assert (pattern.match(path) is not None) == fnmatchcase(path, glob), (glob, path)


def test_random_globs_match_as_fnmatchcase() -> None:
    rng = random.Random(0)
    alphabet = ["a", "b", ".", "*", "?", "[", "]", "!", "-", "0", "^"]
    paths = ["".join(p) for n in range(4) for p in itertools.product("ab.0-^]", repeat=n)]
    for _ in range(400):
        glob = "".join(rng.choice(alphabet) for _ in range(rng.randint(0, 6)))
        try:
            pattern = compile_pattern(glob)
        except initreg.InitregError:
            continue  # a range such as [b-a], which fnmatch turns into "matches nothing"
        for path in paths:
            assert (pattern.match(path) is not None) == fnmatchcase(path, glob), (glob, path)


def test_a_capture_binds_a_run_of_digits_as_an_int() -> None:
    pattern = compile_pattern("h.{layer}.attn.c_proj.weight")
    assert pattern.match("h.11.attn.c_proj.weight") == {"layer": 11}
    assert pattern.match("h.07.attn.c_proj.weight") == {"layer": 7}
    assert pattern.match("h.x.attn.c_proj.weight") is None
    assert pattern.match("h..attn.c_proj.weight") is None
    assert pattern.match("h.1.2.attn.c_proj.weight") is None
    assert compile_pattern("wte.weight").match("wte.weight") == {}


def test_captures_mix_with_globs_and_sit_inside_a_component() -> None:
    pattern = compile_pattern("*layers.{i}.*.w[23].weight")
    assert pattern.match("model.layers.4.feed_forward.w2.weight") == {"i": 4}
    assert pattern.match("layers.12.feed_forward.w3.weight") == {"i": 12}
    assert pattern.match("layers.12.feed_forward.w1.weight") is None
    assert compile_pattern("block{b}_{k}.kernel").match("block3_10.kernel") == {"b": 3, "k": 10}


def test_other_braces_are_literal_and_a_repeated_capture_is_an_error() -> None:
    assert compile_pattern("a{}.{1x}").match("a{}.{1x}") == {}
    with pytest.raises(initreg.InitregError, match=r"captures \{i\} twice"):
        compile_pattern("{i}.{i}")
