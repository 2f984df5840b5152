"""Path patterns: plain globs behave exactly as fnmatch.fnmatchcase; {name} captures digits as ints."""

from __future__ import annotations

import itertools
import random
import re
from fnmatch import fnmatchcase

import pytest

import initreg
from initreg.patterns import MAX_CAPTURE_DIGITS, PathPattern, PatternIndex, compile_pattern

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


def _reference_regex(text: str) -> re.Pattern[str]:
    """The backtracking regular expression patterns were once compiled to: the oracle for captures."""
    parts, position = [], 0
    for found in re.finditer(r"\{([A-Za-z_][A-Za-z0-9_]*)\}", text):
        parts += [_reference_glob(text[position : found.start()]), f"(?P<{found.group(1)}>[0-9]+)"]
        position = found.end()
    return re.compile("".join([*parts, _reference_glob(text[position:])]), re.DOTALL)


def _reference_glob(glob: str) -> str:
    """The regular expression of a glob without captures, with fnmatch's rules for *, ? and [...]."""
    out: list[str] = []
    i, n = 0, len(glob)
    while i < n:
        char = glob[i]
        i += 1
        if char == "*":
            out.append(".*")
        elif char == "?":
            out.append(".")
        elif char == "[":
            end = i + 1 if i < n and glob[i] == "!" else i
            end = end + 1 if end < n and glob[end] == "]" else end
            end = glob.find("]", end)
            if end < 0:
                out.append(re.escape(char))
                continue
            members = re.sub(r"([&~|])", r"\\\1", glob[i:end].replace("\\", "\\\\"))
            i = end + 1
            if members.startswith("!"):
                members = "^" + members[1:]
            elif members.startswith(("^", "[")):
                members = "\\" + members
            out.append(f"[{members}]")
        else:
            out.append(re.escape(char))
    return "".join(out)


def test_captures_are_the_greedy_leftmost_ones_a_backtracking_regex_gives() -> None:
    rng = random.Random(1)
    pieces = ["*", "*", "?", "1", "2", ".", "a", "{i}", "{j}", "{k}", "[0-9]", "[!.]"]
    paths = ["".join(p) for n in range(6) for p in itertools.product("12.a", repeat=n)]
    compared = matched = 0
    for _ in range(150):
        chosen = [rng.choice(pieces) for _ in range(rng.randint(1, 6))]
        text = "".join(piece for n, piece in enumerate(chosen) if piece not in chosen[:n] or "{" not in piece)
        pattern, reference = compile_pattern(text), _reference_regex(text)
        for path in paths:
            found = reference.fullmatch(path)
            expected = None if found is None else {name: int(value) for name, value in found.groupdict().items()}
            assert pattern.match(path) == expected, (text, path)
            compared += 1
            matched += found is not None
    assert matched > compared // 20  # the oracle agrees on matches, not only on misses


def test_adversarial_globs_match_as_fnmatchcase() -> None:
    cases = [
        ("*" * 50 + "x", "a" * 2000), ("*a" * 30 + "b", "a" * 2000), ("*a*" * 40, "a" * 39),
        ("*a?*" * 20 + "c", "ab" * 1000), ("[!x]*" * 25 + "*y", "z" * 3000 + "y"), ("*.*.*.*.*.*.*z", "a." * 2000),
        ("?" * 200 + "*", "a" * 199), ("?" * 200 + "*", "a" * 200), ("*ab*ab*ab*ab*ab", "ab" * 500 + "a"),
    ]  # fmt: skip
    for glob, path in cases:
        assert compile_pattern(glob).matches(path) == fnmatchcase(path, glob), (glob[:20], len(path))


def test_random_adversarial_globs_on_long_paths_match_as_fnmatchcase() -> None:
    rng = random.Random(3)
    matched = 0
    for _ in range(300):
        glob = "".join(
            rng.choice(["*", "*", "*", "a", "ab", "?", "[ab]", "[!b]", "b"]) for _ in range(rng.randint(5, 40))
        )
        path = "".join(rng.choice("aab") for _ in range(rng.randint(0, 1500)))
        found = compile_pattern(glob).matches(path)
        assert found == fnmatchcase(path, glob), (glob, len(path))
        matched += found
    assert 30 < matched < 270


@pytest.mark.parametrize(
    ("text", "path", "expected"),
    [
        ("*" * 50 + "x", "a" * 8000, None),
        ("*" * 50 + "a", "a" * 8000, {}),
        ("*h.*.*.c_*.weight", "h." + "1." * 4000 + "c_attn.weight", {}),
        ("*h.*.*.c_*.weight", "h." * 4000 + "c_", None),
        ("*.{i}.*.{j}.*.{k}.*", "1." * 4000, {"i": 1, "j": 1, "k": 1}),
        ("*.{i}.*.{j}.*.{k}.*x", "1." * 4000, None),
        ("*{a}*{b}*{c}*{d}*x", "9" * 600 + "x", {"a": 9, "b": 9, "c": 9, "d": 9}),
        ("{a}{b}{c}{d}x", "9" * 600 + "x", {"a": int("9" * 597), "b": 9, "c": 9, "d": 9}),
        ("*[0-9]*[!a]*?*{n}", "0" * 8000 + "a", None),
        ("*layers.{i}.feed_forward.w[23].weight", "layers." * 1000 + "1.feed_forward.w3.weight", {"i": 1}),
    ],
)
def test_matching_work_is_linear_in_path_times_pattern(text: str, path: str, expected: dict[str, int] | None) -> None:
    pattern = compile_pattern(text)
    found, work = pattern.match_counting(path)
    assert found == expected
    assert work <= 4 * (len(path) + 1) * (len(pattern.text) + 1), (text[:20], len(path), work)


def test_a_capture_longer_than_the_limit_is_an_error_naming_the_parameter() -> None:
    pattern = compile_pattern("*blocks.{layer_id}.attn_out.weight")
    longest = "blocks." + "7" * MAX_CAPTURE_DIGITS + ".attn_out.weight"
    assert pattern.match(longest) == {"layer_id": int("7" * MAX_CAPTURE_DIGITS)}
    with pytest.raises(initreg.InitregError, match=r"parameter 'blocks\.777.*captures \{layer_id\} as a run of 5000"):
        pattern.match("blocks." + "7" * 5000 + ".attn_out.weight")
    assert pattern.matches("blocks." + "7" * 5000 + ".attn_out.weight")


def test_the_index_keeps_every_pattern_that_matches_and_drops_those_whose_literals_do_not_fit() -> None:
    rng = random.Random(2)
    pieces = ["*", "?", "{i}", "a", "b", ".", "1", "[ab]"]
    texts = ["".join(rng.choice(pieces) for _ in range(rng.randint(0, 5))) for _ in range(300)]
    patterns = [compile_pattern(text) for text in texts if text.count("{i}") <= 1]
    index = PatternIndex(patterns)
    paths = ["".join(p) for n in range(6) for p in itertools.product("ab.1", repeat=n)]
    matched = 0
    for path in paths:
        candidates = index.candidates(path)
        fitting = [n for n, pattern in enumerate(patterns) if _literals_fit(pattern, path)]
        matching = [n for n, pattern in enumerate(patterns) if pattern.matches(path)]
        assert candidates == fitting, path
        assert set(matching) <= set(candidates), path
        matched += len(matching)
    assert matched > 0


def _literals_fit(pattern: PathPattern, path: str) -> bool:
    return (
        len(path) >= len(pattern.prefix) + len(pattern.suffix)
        and path.startswith(pattern.prefix)
        and path.endswith(pattern.suffix)
    )


@pytest.mark.parametrize("glob", ["*", "", "abc", "a*", "*b", "a*b", "ab*ba", "a[*", "h.*.weight", "a[", "a\\*b"])
def test_a_pattern_decided_by_its_ends_agrees_with_the_full_matcher(glob: str) -> None:
    pattern = compile_pattern(glob)
    assert pattern.by_ends
    for path in [*PATHS, "aba", "ab", "abba", "a[x", "h..weight", "h.weight", "a\\xb"]:
        expected = fnmatchcase(path, glob)
        assert (pattern.match_counting(path)[0] is not None) == expected, (glob, path)
        assert pattern.matches(path) == expected and pattern.match(path) == ({} if expected else None), (glob, path)


@pytest.mark.parametrize("glob", ["a*b*c", "?", "[ab]*", "h.{i}.*", "*x{i}"])
def test_other_patterns_go_through_the_full_matcher(glob: str) -> None:
    assert not compile_pattern(glob).by_ends
