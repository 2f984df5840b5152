"""The tables the commands print: cells in a box of Unicode lines, fitted to the terminal's width.

On a terminal (or with COLUMNS set) the columns are narrowed, the widest first, until the table fits:
headers and the columns of text that may wrap (an initializer's description, a shape) wrap between words
onto more lines, and only if that is not enough are the wrappable columns' words cut. The other columns
(paths, names, numbers) keep their cells whole, so a table of long paths may still be wider than the
terminal. Anywhere else (a pipe, a log) every row stays on one line.
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
NARROWEST = 8  # a wrappable column narrower than its longest word is cut to no fewer characters


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
    """Each column's width: its widest cell, narrowed (the widest column first, one character at a time)
    until the table fits in `width`: first down to its longest word (a header wraps between words, the cells
    of a wrappable column too), then, the wrappable columns only, down to NARROWEST, cutting words."""
    texts = [[column.header, *(cells[i] for cells, _ in table.rows)] for i, column in enumerate(table.columns)]
    widths = [max(map(text_width, column_texts)) for column_texts in texts]
    if width is None:
        return widths
    whole = [
        max(_longest_word(column.header), *(map(_longest_word if column.wrap else text_width, column_texts[1:])))
        for column, column_texts in zip(table.columns, texts, strict=True)
    ]
    cut = [min(least, NARROWEST) if column.wrap else least for column, least in zip(table.columns, whole, strict=True)]
    excess = sum(widths) + 3 * len(widths) + 1 - width
    for least in (whole, cut):
        while excess > 0:
            narrower = [i for i, current in enumerate(widths) if current > least[i]]
            if not narrower:
                break
            widths[max(narrower, key=lambda i: widths[i])] -= 1
            excess -= 1
    return widths


def _longest_word(text: str) -> int:
    return max((text_width(word) for word in text.split()), default=0)


def _rule(left: str, line: str, between: str, right: str, widths: Sequence[int]) -> str:
    return left + between.join(line * (width + 2) for width in widths) + right


def _cell_lines(
    cells: Sequence[str], columns: Sequence[Column], widths: Sequence[int], bar: str, colour: str | None
) -> list[str]:
    """One row's lines (`bar` "┃" for the header, whose cells all wrap between words): each cell wrapped to
    its column's width, if it wraps, and justified."""
    wrapped = [
        (textwrap.wrap(cell, width, break_on_hyphens=False) or [""]) if column.wrap or bar == "┃" else [cell]
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
