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

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import lru_cache

from initreg.errors import InvalidArgumentError

MAX_CAPTURE_DIGITS = 640  # Python's smallest int_max_str_digits: int() of a capture never refuses it
_CAPTURE = re.compile(r"\{([A-Za-z_][A-Za-z0-9_]*)\}")
_DIGIT_RUN = re.compile("[0-9]*")
_DIGITS = "0123456789"
_SHOWN_PATH = 80  # characters of a path an error message shows


@dataclass(frozen=True)
class _Token:
    """One step of a pattern: a literal character, ``?``, a class, ``*`` or a capture.

    kind is "literal" (text is the character), "any", "class" (matcher tests one character),
    "star" or "capture" (text is the capture's name).
    """

    kind: str
    text: str = ""
    matcher: re.Pattern[str] | None = None


class _Subject:
    """A path as bitsets: bit r stands for the path's position len(path) - r (bit 0 for its end)."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.width = len(text)
        self.full = (1 << (self.width + 1)) - 1
        self._zeros = dict.fromkeys(map(ord, set(text)), "0")
        self._masks: dict[str, int] = {}

    def positions(self, chars: str) -> int:
        """The bits of the positions whose character is in `chars`."""
        mask = self._masks.get(chars)
        if mask is None:
            table = {**self._zeros, **dict.fromkeys(map(ord, chars), "1")}
            mask = self._masks[chars] = int(self.text.translate(table) + "0", 2)
        return mask

    def members(self, matcher: re.Pattern[str]) -> str:
        """The distinct characters of the path that the one-character class `matcher` accepts."""
        return "".join(sorted(chr(code) for code in self._zeros if matcher.fullmatch(chr(code))))


@lru_cache(maxsize=4096)
def _subject(text: str) -> _Subject:
    return _Subject(text)


@dataclass(frozen=True)
class PathPattern:
    """A compiled pattern: `match` gives the captures of a matching path, None for another path.

    `prefix` and `suffix` are the literal text every matching path starts and ends with (`prefix`
    is the whole pattern when it has no wildcard, and `suffix` is then empty).
    """

    text: str
    tokens: tuple[_Token, ...] = field(repr=False)
    captures: tuple[str, ...]
    prefix: str
    suffix: str

    def matches(self, path: str) -> bool:
        """Whether the whole path matches (captures are not read)."""
        return self._reach(_subject(path))[0][0] >> len(path) & 1 == 1

    def match(self, path: str) -> dict[str, int] | None:
        """{capture: int} if the whole path matches (empty without captures), else None."""
        return self.match_counting(path)[0]

    def match_counting(self, path: str) -> tuple[dict[str, int] | None, int]:
        """`match` of `path`, and the bit operations it took: at most 4 * (len(path)+1) * (len(pattern)+1).

        Each step of the matcher is a constant number of operations on integers of len(path)+1 bits
        (or a scan of at most len(path) characters); the count is steps * (len(path)+1).
        """
        subject = _subject(path)
        reach, steps = self._reach(subject)
        if not reach[0] >> subject.width & 1:
            return None, steps * (subject.width + 1)
        captured, walked = self._read_captures(subject, reach)
        return captured, (steps + walked) * (subject.width + 1)

    def _reach(self, subject: _Subject) -> tuple[list[int], int]:
        """reach[i]: the positions from which tokens[i:] match the rest of the path; and the steps taken."""
        reach = [0] * len(self.tokens) + [1]  # bit 0: the end of the path, where no tokens match
        steps = 1
        for i in range(len(self.tokens) - 1, -1, -1):
            reach[i] = _step(self.tokens[i], reach[i + 1], subject)
            steps += 2  # the step, and the mask it may build
            if not reach[i]:
                break  # nothing before can match either
        return reach, steps

    def _read_captures(self, subject: _Subject, reach: list[int]) -> tuple[dict[str, int], int]:
        """The captures of a matching path, each ``*`` and capture taking the longest run the rest allows."""
        captured: dict[str, int] = {}
        position, steps, width = 0, 0, subject.width
        last = max((i for i, token in enumerate(self.tokens) if token.kind == "capture"), default=-1)
        for i, token in enumerate(self.tokens[: last + 1]):
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
                position += 1
        return captured, steps

    def _capture_value(self, path: str, name: str, start: int, end: int) -> int:
        """The int of path[start:end]; more than MAX_CAPTURE_DIGITS digits raises, naming the path."""
        if end - start > MAX_CAPTURE_DIGITS:
            shown = path if len(path) <= _SHOWN_PATH else f"{path[:_SHOWN_PATH]}... ({len(path)} characters)"
            raise InvalidArgumentError(
                f"parameter {shown!r}: pattern {self.text!r} captures {{{name}}} as a run of {end - start} "
                f"digits; a capture holds at most {MAX_CAPTURE_DIGITS}"
            )
        return int(path[start:end])


def _lowest_bit(bits: int) -> int:
    """The index of the lowest set bit of a positive int."""
    return (bits & -bits).bit_length() - 1


def _step(token: _Token, after: int, subject: _Subject) -> int:
    """The positions from which `token` then the tokens whose positions are `after` match the path.

    One character: (after << 1) & positions of the characters it accepts. ``*``: every position up
    to the last of `after`. Capture: the positions of a digit run that ends just before one of
    `after`, found with one addition that carries a start up through its run of digits.
    """
    if not after:
        return 0
    if token.kind == "star":
        return subject.full & ~((after & -after) - 1)
    if token.kind == "capture":
        digits = subject.positions(_DIGITS)
        starts = (after << 1) & digits
        return (((digits + starts) ^ digits) | starts) & digits
    if token.kind == "literal":
        accepted = subject.positions(token.text)
    elif token.kind == "any":
        accepted = subject.full - 1
    else:
        assert token.matcher is not None
        accepted = subject.positions(subject.members(token.matcher))
    return (after << 1) & accepted


@lru_cache(maxsize=4096)
def compile_pattern(text: str) -> PathPattern:
    """The PathPattern of `text`; a capture named twice or a bad character range raises."""
    tokens: list[_Token] = []
    captures: list[str] = []
    position = 0
    for found in _CAPTURE.finditer(text):
        name = found.group(1)
        if name in captures:
            raise InvalidArgumentError(f"pattern {text!r} captures {{{name}}} twice; each name may appear once")
        tokens.extend(_glob_tokens(text, text[position : found.start()]))
        tokens.append(_Token("capture", name))
        captures.append(name)
        position = found.end()
    tokens.extend(_glob_tokens(text, text[position:]))
    prefix = _literal_run(tokens)
    suffix = "" if len(prefix) == len(tokens) else _literal_run(tokens[::-1])[::-1]
    return PathPattern(text, tuple(tokens), tuple(captures), prefix, suffix)


def _literal_run(tokens: Sequence[_Token]) -> str:
    """The characters of the literal tokens `tokens` starts with."""
    run = []
    for token in tokens:
        if token.kind != "literal":
            break
        run.append(token.text)
    return "".join(run)


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
    """The token of ``[members]`` (``[!members]`` negated), a one-character regular expression."""
    members = re.sub(r"([&~|])", r"\\\1", members.replace("\\", "\\\\"))
    if members.startswith("!"):
        members = "^" + members[1:]
    elif members.startswith(("^", "[")):
        members = "\\" + members
    try:
        matcher = re.compile(f"[{members}]", re.DOTALL)
    except re.error as error:  # a character range such as [z-a]
        raise InvalidArgumentError(f"pattern {pattern!r} is not a valid glob: {error}") from error
    return _Token("class", members, matcher)


class PatternIndex:
    """The patterns that may match a path, found by their literal prefix and suffix.

    `candidates(path)` lists, in ascending order, the positions of the patterns whose prefix and
    suffix fit the path without overlapping; a pattern left out cannot match it.
    """

    def __init__(self, patterns: Sequence[PathPattern]) -> None:
        self._groups: dict[str, dict[str, list[int]]] = {}
        for position, pattern in enumerate(patterns):
            self._groups.setdefault(pattern.prefix, {}).setdefault(pattern.suffix, []).append(position)
        self._prefix_lengths = sorted({len(prefix) for prefix in self._groups})
        self._suffix_lengths = {prefix: sorted({len(s) for s in group}) for prefix, group in self._groups.items()}

    def candidates(self, path: str) -> list[int]:
        """The positions of the patterns whose literal prefix and suffix fit `path`, ascending."""
        found: list[int] = []
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
