"""The tables the commands print: cells in a box of Unicode lines, fitted to the terminal's width.

On a terminal (or with COLUMNS set) the columns of text that may wrap (an initializer's description) are
narrowed, the widest first, until the table fits, and their cells wrap between words onto more lines;
words are never cut, and the other columns (paths, shapes, numbers) keep their cells whole, so a table
that cannot fit is wider than the terminal. Anywhere else (a pipe, a log) every row stays on one line.
Rows may have a colour, shown only on a terminal and unless NO_COLOR is set.
"""

from __future__ import annotations

import os
import shutil
import sys
import textwrap
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TextIO

COLOURS = {"red": "\x1b[31m", "yellow": "\x1b[33m"}  # ANSI SGR codes of the colours rows may have
RESET = "\x1b[0m"


@dataclass(frozen=True)
class Column:
    """A column's header; `right`: cells are right-justified (numbers); `wrap`: cells may wrap between words."""

    header: str
    right: bool = False
    wrap: bool = False


@dataclass
class TextTable:
    """``table.add_row(*cells, colour=None)`` then ``table.render(width)``; `title` goes above the box."""

    columns: Sequence[Column]
    title: str | None = None
    rows: list[tuple[Sequence[str], str | None]] = field(default_factory=list)

    def add_row(self, *cells: str, colour: str | None = None) -> None:
        """One row, a cell per column; `colour`, if given, is one of COLOURS."""
        if len(cells) != len(self.columns):
            raise ValueError(f"a row of {len(cells)} cells in a table of {len(self.columns)} columns")
        if colour is not None and colour not in COLOURS:
            raise ValueError(f"colour {colour!r}; valid: {', '.join(COLOURS)}")
        self.rows.append((cells, colour))

    def render(self, width: int | None = None, *, colour: bool = False) -> str:
        """The table as lines of text, at most `width` characters wide where its wrappable columns allow
        (None: as wide as its widest cells); rows in their colours if `colour`."""
        widths = _fitted_widths(self, width)
        lines = [] if self.title is None else [self.title.center(sum(widths) + 3 * len(widths) + 1).rstrip()]
        lines.append(_rule("┏", "━", "┳", "┓", widths))
        lines += _cell_lines([column.header for column in self.columns], self.columns, widths, "┃", None)
        lines.append(_rule("┡", "━", "╇", "┩", widths))
        for cells, row_colour in self.rows:
            lines += _cell_lines(cells, self.columns, widths, "│", row_colour if colour else None)
        lines.append(_rule("└", "─", "┴", "┘", widths))
        return "\n".join(lines)


def text_width(text: str) -> int:
    """How many terminal columns `text` takes: two for a wide (East Asian) character, one for any other."""
    if text.isascii():
        return len(text)
    return sum(2 if unicodedata.east_asian_width(character) in "WF" else 1 for character in text)


def _fitted_widths(table: TextTable, width: int | None) -> list[int]:
    """Each column's width: its widest cell, the wrappable ones narrowed (the widest first, one character
    at a time) until the table fits in `width`, none below its longest word."""
    texts = [[column.header, *(cells[i] for cells, _ in table.rows)] for i, column in enumerate(table.columns)]
    widths = [max(map(text_width, column_texts)) for column_texts in texts]
    if width is None:
        return widths
    least = [
        max(text_width(word) for text in column_texts for word in [*text.split(), ""]) if column.wrap else natural
        for column, column_texts, natural in zip(table.columns, texts, widths, strict=True)
    ]
    excess = sum(widths) + 3 * len(widths) + 1 - width
    while excess > 0:
        narrower = [i for i, current in enumerate(widths) if current > least[i]]
        if not narrower:
            break
        widths[max(narrower, key=lambda i: widths[i])] -= 1
        excess -= 1
    return widths


def _rule(left: str, line: str, between: str, right: str, widths: Sequence[int]) -> str:
    return left + between.join(line * (width + 2) for width in widths) + right


def _cell_lines(
    cells: Sequence[str], columns: Sequence[Column], widths: Sequence[int], bar: str, colour: str | None
) -> list[str]:
    """One row's lines: each cell wrapped to its column's width (if it wraps) and justified."""
    wrapped = [
        (textwrap.wrap(cell, width, break_long_words=False, break_on_hyphens=False) or [""]) if column.wrap else [cell]
        for cell, column, width in zip(cells, columns, widths, strict=True)
    ]
    lines = []
    for index in range(max(len(parts) for parts in wrapped)):
        texts = []
        for parts, column, width in zip(wrapped, columns, widths, strict=True):
            text = parts[index] if index < len(parts) else ""
            padding = " " * max(0, width - text_width(text))
            text = padding + text if column.right else text + padding
            texts.append(f"{COLOURS[colour]}{text}{RESET}" if colour is not None else text)
        lines.append(bar + bar.join(f" {text} " for text in texts) + bar)
    return lines


def print_table(table: TextTable, stream: TextIO | None = None) -> None:
    """Prints `table` to `stream` (stdout): fitted to COLUMNS or the terminal's width, coloured on a
    terminal unless NO_COLOR is set; in a pipe or a file, each row on one line."""
    stream = stream if stream is not None else sys.stdout
    terminal = stream.isatty()
    width = shutil.get_terminal_size().columns if terminal or "COLUMNS" in os.environ else None
    print(table.render(width, colour=terminal and not os.environ.get("NO_COLOR")), file=stream)
