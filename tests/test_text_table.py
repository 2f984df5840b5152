"""The commands' tables (initreg.text_table): one line per row off a terminal, fitted to a width on one,
words never cut, numbers right-justified, colour only when asked."""

from __future__ import annotations

import io
import re

import pytest

from initreg.text_table import Column, TextTable, print_table, text_width

DESCRIPTION = "variance_scaling(scale=2.0, mode='fan_avg', distribution='truncated_normal')"


def a_table() -> TextTable:
    table = TextTable([Column("path"), Column("initializer", wrap=True), Column("std", right=True)], "plan")
    table.add_row("dense_0.kernel", DESCRIPTION, "0.06202")
    table.add_row("b", "zeros()", "0", colour="red")
    return table


def cells(line: str) -> list[str]:
    return [cell.strip() for cell in re.split("[│┃]", line)[1:-1]]


def test_without_a_width_each_row_is_one_line_between_a_title_and_a_box() -> None:
    lines = a_table().render().splitlines()
    assert lines[0].strip() == "plan"
    assert lines[1].startswith("┏") and lines[3].startswith("┡") and lines[-1].startswith("└")
    assert cells(lines[2]) == ["path", "initializer", "std"]
    assert [cells(line) for line in lines[4:-1]] == [["dense_0.kernel", DESCRIPTION, "0.06202"], ["b", "zeros()", "0"]]
    assert len({text_width(line) for line in lines[1:]}) == 1  # every line of the box as wide


def first_row(lines: list[str]) -> list[list[str]]:
    """The cells of the first row's lines (after the title, the header and its rule)."""
    body = lines[lines.index(next(line for line in lines if line.startswith("┡"))) + 1 :]
    return [cells(line) for line in body[: body.index(next(line for line in body if "│ b " in line))]]


@pytest.mark.parametrize("width", [80, 70, 63])
def test_a_width_narrows_the_wrappable_column_between_words_while_its_longest_word_fits(width: int) -> None:
    lines = a_table().render(width).splitlines()[1:]
    assert max(map(text_width, lines)) == width  # 63: the path, the longest word (32), the std and the borders
    row = first_row(lines)
    assert row[0][0] == "dense_0.kernel" and row[0][2] == "0.06202"
    assert " ".join(line[1] for line in row) == DESCRIPTION and len(row) > 1  # wrapped between words


@pytest.mark.parametrize("width", [62, 50, 39])
def test_a_narrower_width_cuts_the_wrappable_columns_words_but_keeps_every_character(width: int) -> None:
    lines = a_table().render(width).splitlines()[1:]
    assert max(map(text_width, lines)) == max(width, 14 + 8 + 7 + 10)  # the wrappable column down to NARROWEST
    row = first_row(lines)
    assert "".join(line[1] for line in row).replace(" ", "") == DESCRIPTION.replace(" ", "")
    assert row[0][0] == "dense_0.kernel"  # a column that does not wrap stays whole


def test_headers_wrap_between_words_to_let_a_table_fit() -> None:
    table = TextTable([Column("measured std", right=True), Column("path")])
    table.add_row("0.5", "a.b")
    lines = table.render(16).splitlines()
    assert [cells(line) for line in lines[1:3]] == [["measured", "path"], ["std", ""]]
    assert max(map(text_width, lines)) == 8 + 4 + 7


def test_numbers_are_right_justified_and_text_left() -> None:
    row = a_table().render().splitlines()[5]
    assert row.endswith("│       0 │") and row.startswith("│ b      ")


def test_colour_only_when_asked() -> None:
    plain, coloured = a_table().render(), a_table().render(colour=True)
    assert "\x1b[" not in plain
    assert "\x1b[31mb" in coloured and coloured.count("\x1b[0m") == 3  # the red row's three cells
    assert re.sub(r"\x1b\[\d+m", "", coloured) == plain


def test_print_table_off_a_terminal_keeps_rows_whole_unless_columns_is_set(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("COLUMNS", raising=False)
    stream = io.StringIO()
    print_table(a_table(), stream)
    assert stream.getvalue() == a_table().render() + "\n"
    monkeypatch.setenv("COLUMNS", "50")
    stream = io.StringIO()
    print_table(a_table(), stream)
    assert stream.getvalue() == a_table().render(50) + "\n" and a_table().render(50) != a_table().render()


def test_wide_characters_take_two_columns() -> None:
    assert text_width("层.weight") == 9 and text_width("abc") == 3
    table = TextTable([Column("path"), Column("n", right=True)])
    table.add_row("层.weight", "1")
    assert len({text_width(line) for line in table.render().splitlines()}) == 1


def test_a_row_of_the_wrong_length_or_colour_is_refused() -> None:
    table = TextTable([Column("a")])
    with pytest.raises(ValueError, match="a row of 2 cells in a table of 1 columns"):
        table.add_row("x", "y")
    with pytest.raises(ValueError, match="colour 'blue'; valid: red, yellow"):
        table.add_row("x", colour="blue")
