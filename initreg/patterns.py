"""Path patterns: shell-style globs over dotted parameter paths, with integer captures.

A pattern matches the whole path, case-sensitive. ``*`` matches any run of characters, dots included;
``?`` matches one character; ``[seq]`` and ``[!seq]`` match one character in or not in seq (an
unclosed ``[`` is literal), exactly as ``fnmatch.fnmatchcase``. ``{name}`` (name an identifier)
matches a non-empty run of decimal digits and binds name to it as an int:
``h.{layer}.attn.c_proj.weight`` matches ``h.11.attn.c_proj.weight`` with layer = 11, and
``*layers.{i}.*`` mixes globs and captures. A name may be captured once per pattern; any other
brace is literal. Where a path can be split several ways, each ``*`` and capture takes the longest
run that lets the rest match, the leftmost first (as a greedy regular expression would). A capture
holds at most MAX_CAPTURE_DIGITS digits; a path giving it more is an error naming the path.

Matching takes time linear in len(path) * len(pattern) whatever the two are (no backtracking): the
set of path positions from which each suffix of the pattern matches is computed right to left, one
bitset over the path per pattern token, then the captures are read off left to right.
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import lru_cache

from initreg.errors import InvalidArgumentError

MAX_CAPTURE_DIGITS = 640  # Python's smallest int_max_str_digits: int() of a capture never refuses it
_CAPTURE = re.compile(r"\{([A-Za-z_][A-Za-z0-9_]*)\}")
_DIGIT_RUN = re.compile("[0-9]*")
_DIGIT = re.compile("(?=[0-9])")
_SHOWN_PATH = 80  # characters of a path an error message shows


@dataclass(frozen=True)
class _Token:
    """One step of a pattern: a run of literal characters, ``?``, a class, ``*`` or a capture.

    kind is "literal" (text is the run), "any", "class" (text is the class's regex members), "star" or
    "capture" (text is the capture's name). `finder` of a run or a class is a lookahead that matches
    at each position where the token can start.
    """

    kind: str
    text: str = ""
    finder: re.Pattern[str] | None = None

    @property
    def width(self) -> int:
        """The characters of the pattern it stands for, at least 1: its share of the work bound."""
        return len(self.text) if self.kind == "literal" else 1


class _Subject:
    """A path as bitsets: bit r stands for the path's position len(path) - r (bit 0 for its end)."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.width = len(text)
        self.full = (1 << (self.width + 1)) - 1
        self._starts: dict[str, int] = {}

    def starts(self, finder: re.Pattern[str]) -> int:
        """The bits of the positions where the lookahead `finder` matches (cached per finder)."""
        mask = self._starts.get(finder.pattern)
        if mask is None:
            digits = bytearray(b"0" * (self.width + 1))  # position j is digit j, bit width - j
            for found in finder.finditer(self.text):
                digits[found.start()] = ord("1")
            mask = self._starts[finder.pattern] = int(digits, 2)
        return mask


@lru_cache(maxsize=4096)
def _subject(text: str) -> _Subject:
    return _Subject(text)


@dataclass(frozen=True)
class PathPattern:
    """A compiled pattern: `match` gives the captures of a matching path, None for another path.

    `prefix` and `suffix` are the literal text every matching path starts and ends with (`prefix`
    is the whole pattern when it has no wildcard, and `suffix` is then empty). `fits_by_ends`: the
    pattern is ``prefix*suffix`` (one ``*``, no other wildcard), so a path matches it exactly when
    its ends fit, without overlapping: every path `PatternIndex.candidates` lists it for.
    """

    text: str
    tokens: tuple[_Token, ...] = field(repr=False)
    captures: tuple[str, ...]
    prefix: str
    suffix: str
    capture_end: int = field(default=0, repr=False)  # tokens up to the last capture: those read for captures
    by_ends: bool = field(default=False, repr=False)  # a literal, or literal * literal: its ends decide
    fits_by_ends: bool = field(default=False, repr=False)  # literal * literal

    def matches(self, path: str) -> bool:
        """Whether the whole path matches (captures are not read)."""
        if self.by_ends:
            return self._fits_ends(path)
        return self._reach(_subject(path))[0][0] >> len(path) & 1 == 1

    def match(self, path: str) -> dict[str, int] | None:
        """{capture: int} if the whole path matches (empty without captures), else None."""
        if self.by_ends:
            return {} if self._fits_ends(path) else None
        return self.match_counting(path)[0]

    def _fits_ends(self, path: str) -> bool:
        """For a `by_ends` pattern: the path is its text, or starts with its prefix and ends with its suffix."""
        if self.prefix == self.text:
            return path == self.text
        ends = len(self.prefix) + len(self.suffix)
        return len(path) >= ends and path.startswith(self.prefix) and path.endswith(self.suffix)

    def match_counting(self, path: str) -> tuple[dict[str, int] | None, int]:
        """`match` of `path`, and the bit operations it took: at most 4 * (len(path)+1) * (len(pattern)+1).

        Each step of the matcher is a constant number of operations on integers of len(path)+1 bits
        (or a scan of at most len(path) characters); a run of k literal characters counts k steps (its
        occurrences are found in k * len(path) comparisons at most). The count is steps * (len(path)+1).
        """
        subject = _subject(path)
        reach, steps = self._reach(subject)
        if not reach[0] >> subject.width & 1:
            return None, steps * (subject.width + 1)
        if not self.capture_end:
            return {}, steps * (subject.width + 1)
        captured, walked = self._read_captures(subject, reach)
        return captured, (steps + walked) * (subject.width + 1)

    def _reach(self, subject: _Subject) -> tuple[list[int], int]:
        """reach[i]: the positions from which tokens[i:] match the rest of the path; and the steps taken."""
        reach = [0] * len(self.tokens) + [1]  # bit 0: the end of the path, where no tokens match
        steps = 1
        for i in range(len(self.tokens) - 1, -1, -1):
            reach[i] = _step(self.tokens[i], reach[i + 1], subject)
            steps += 2 * self.tokens[i].width  # the step, and the mask it may build
            if not reach[i]:
                break  # nothing before can match either
        return reach, steps

    def _read_captures(self, subject: _Subject, reach: list[int]) -> tuple[dict[str, int], int]:
        """The captures of a matching path, each ``*`` and capture taking the longest run the rest allows."""
        captured: dict[str, int] = {}
        position, steps, width = 0, 0, subject.width
        for i, token in enumerate(self.tokens[: self.capture_end]):
            steps += 1
            if token.kind == "star":
                position = width - _lowest_bit(reach[i + 1])
            elif token.kind == "capture":
                run = _DIGIT_RUN.match(subject.text, position)
                assert run is not None  # [0-9]* matches everywhere
                run_end = run.end()
                end = run_end - _lowest_bit(reach[i + 1] >> (width - run_end))
                captured[token.text] = self._capture_value(subject.text, token.text, position, end)
                position = end
            else:
                position += token.width
        return captured, steps

    def _capture_value(self, path: str, name: str, start: int, end: int) -> int:
        """The int of path[start:end]; more than MAX_CAPTURE_DIGITS digits raises, naming the path."""
        if end - start > MAX_CAPTURE_DIGITS:
            shown = (
                repr(path) if len(path) <= _SHOWN_PATH else f"{path[:_SHOWN_PATH] + '...'!r} ({len(path)} characters)"
            )
            raise InvalidArgumentError(
                f"parameter {shown}: pattern {self.text!r} captures {{{name}}} as a run of {end - start} "
                f"digits; a capture holds at most {MAX_CAPTURE_DIGITS}"
            )
        return int(path[start:end])


def _lowest_bit(bits: int) -> int:
    """The index of the lowest set bit of a positive int."""
    return (bits & -bits).bit_length() - 1


def _step(token: _Token, after: int, subject: _Subject) -> int:
    """The positions from which `token` then the tokens whose positions are `after` match the path.

    A run of k characters: (after << k) & its starts. ``*``: every position up to the last of `after`.
    A capture: the positions of a digit run that ends just before one of `after`, found with one
    addition that carries a start up through its run of digits.
    """
    if not after:
        return 0
    if token.kind == "star":
        return subject.full & ~((after & -after) - 1)
    if token.kind == "capture":
        digits = subject.starts(_DIGIT)
        starts = (after << 1) & digits
        return (((digits + starts) ^ digits) | starts) & digits
    if token.kind == "any":
        return (after << 1) & (subject.full - 1)
    assert token.finder is not None
    return (after << token.width) & subject.starts(token.finder)


@lru_cache(maxsize=4096)
def compile_pattern(text: str) -> PathPattern:
    """The PathPattern of `text`; a capture named twice or a bad character range raises."""
    tokens: list[_Token] = []
    captures: dict[str, None] = {}  # in order
    position = 0
    for found in _CAPTURE.finditer(text):
        name = found.group(1)
        if name in captures:
            raise InvalidArgumentError(f"pattern {text!r} captures {{{name}}} twice; each name may appear once")
        tokens.extend(_glob_tokens(text, text[position : found.start()]))
        tokens.append(_Token("capture", name))
        captures[name] = None
        position = found.end()
    tokens.extend(_glob_tokens(text, text[position:]))
    merged = _merged_runs(tokens)
    prefix = merged[0].text if merged and merged[0].kind == "literal" else ""
    suffix = merged[-1].text if len(merged) > 1 and merged[-1].kind == "literal" else ""
    capture_end = max((i + 1 for i, token in enumerate(merged) if token.kind == "capture"), default=0)
    kinds = [token.kind for token in merged]
    by_ends = set(kinds) <= {"literal", "star"} and kinds.count("star") <= 1  # then literal? star? literal?
    fits_by_ends = by_ends and "star" in kinds
    return PathPattern(text, tuple(merged), tuple(captures), prefix, suffix, capture_end, by_ends, fits_by_ends)


def _merged_runs(tokens: Sequence[_Token]) -> list[_Token]:
    """`tokens` with each run of consecutive literal characters made one literal token."""
    merged: list[_Token] = []
    for literal, group in itertools.groupby(tokens, key=lambda token: token.kind == "literal"):
        if literal:
            run = "".join(token.text for token in group)
            merged.append(_Token("literal", run, re.compile(f"(?={re.escape(run)})", re.DOTALL)))
        else:
            merged.extend(group)
    return merged


def _glob_tokens(pattern: str, glob: str) -> list[_Token]:
    """The tokens of a glob without captures, with fnmatch's rules for *, ? and [...]."""
    out: list[_Token] = []
    i, n = 0, len(glob)
    while i < n:
        char = glob[i]
        i += 1
        if char == "*":
            out.append(_Token("star"))
        elif char == "?":
            out.append(_Token("any"))
        elif char == "[":
            end = i + 1 if i < n and glob[i] == "!" else i
            end = end + 1 if end < n and glob[end] == "]" else end
            end = glob.find("]", end)
            if end < 0:
                out.append(_Token("literal", char))
                continue
            out.append(_class_token(pattern, glob[i:end]))
            i = end + 1
        else:
            out.append(_Token("literal", char))
    return out


def _class_token(pattern: str, members: str) -> _Token:
    """The token of ``[members]`` (``[!members]`` negated), its finder a one-character lookahead."""
    members = re.sub(r"([&~|])", r"\\\1", members.replace("\\", "\\\\"))
    if members.startswith("!"):
        members = "^" + members[1:]
    elif members.startswith(("^", "[")):
        members = "\\" + members
    try:
        finder = re.compile(f"(?=[{members}])", re.DOTALL)
    except re.error as error:  # a character range such as [z-a]
        raise InvalidArgumentError(f"pattern {pattern!r} is not a valid glob: {error}") from error
    return _Token("class", members, finder)


class PatternIndex:
    """The patterns that may match a path, found by their literal prefix and suffix.

    `candidates(path)` lists, in ascending order, the positions of the patterns whose prefix and
    suffix fit the path without overlapping; a pattern left out cannot match it, and one that
    `fits_by_ends` matches it.
    """

    def __init__(self, patterns: Sequence[PathPattern]) -> None:
        self._groups: dict[str, dict[str, list[int]]] = {}
        self._everywhere: list[int] = []  # those without literal ends (such as "*"): candidates for every path
        for position, pattern in enumerate(patterns):
            if not pattern.prefix and not pattern.suffix:
                self._everywhere.append(position)
            else:
                self._groups.setdefault(pattern.prefix, {}).setdefault(pattern.suffix, []).append(position)
        self._prefix_lengths = sorted({len(prefix) for prefix in self._groups})
        self._suffix_lengths = {prefix: sorted({len(s) for s in group}) for prefix, group in self._groups.items()}

    def candidates(self, path: str) -> list[int]:
        """The positions of the patterns whose literal prefix and suffix fit `path`, ascending."""
        found = self._everywhere.copy()
        if not self._groups:
            return found
        for length in self._prefix_lengths:
            if length > len(path):
                break
            prefix = path[:length]
            group = self._groups.get(prefix)
            if group is None:
                continue
            for suffix_length in self._suffix_lengths[prefix]:
                if length + suffix_length > len(path):
                    break
                found.extend(group.get(path[len(path) - suffix_length :], ()))
        found.sort()
        return found
