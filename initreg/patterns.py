"""Path patterns: shell-style globs over dotted parameter paths, with integer captures.

A pattern matches the whole path, case-sensitive. ``*`` matches any run of characters, dots included;
``?`` matches one character; ``[seq]`` and ``[!seq]`` match one character in or not in seq (an
unclosed ``[`` is literal), exactly as ``fnmatch.fnmatchcase``. ``{name}`` (name an identifier)
matches a non-empty run of decimal digits and binds name to it as an int:
``h.{layer}.attn.c_proj.weight`` matches ``h.11.attn.c_proj.weight`` with layer = 11, and
``*layers.{i}.*`` mixes globs and captures. A name may be captured once per pattern; any other
brace is literal.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache

from initreg.errors import InvalidArgumentError

_CAPTURE = re.compile(r"\{([A-Za-z_][A-Za-z0-9_]*)\}")


@dataclass(frozen=True)
class PathPattern:
    """A compiled pattern: `match` gives the captures of a matching path, None for another path."""

    text: str
    regex: re.Pattern[str]
    captures: tuple[str, ...]

    def match(self, path: str) -> dict[str, int] | None:
        """{capture: int} if the whole path matches (empty without captures), else None."""
        found = self.regex.fullmatch(path)
        if found is None:
            return None
        return {name: int(found.group(name)) for name in self.captures}


@lru_cache(maxsize=4096)
def compile_pattern(text: str) -> PathPattern:
    """The PathPattern of `text`; a capture named twice raises."""
    parts: list[str] = []
    captures: list[str] = []
    position = 0
    for found in _CAPTURE.finditer(text):
        name = found.group(1)
        if name in captures:
            raise InvalidArgumentError(f"pattern {text!r} captures {{{name}}} twice; each name may appear once")
        parts.append(_glob_regex(text[position : found.start()]))
        parts.append(f"(?P<{name}>[0-9]+)")
        captures.append(name)
        position = found.end()
    parts.append(_glob_regex(text[position:]))
    try:
        regex = re.compile("".join(parts), re.DOTALL)
    except re.error as error:  # a character range such as [z-a]
        raise InvalidArgumentError(f"pattern {text!r} is not a valid glob: {error}") from error
    return PathPattern(text, regex, tuple(captures))


def _glob_regex(glob: str) -> str:
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
