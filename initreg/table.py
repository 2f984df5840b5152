"""The command's table: one row per planned parameter, with the measured std once it is drawn."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING

from initreg import moments, registry
from initreg.errors import InvalidArgumentError, printable
from initreg.initializers.overlay import Overlay, region_text
from initreg.text_table import Column, TextTable, print_table

if TYPE_CHECKING:
    from initreg.initializers.base import Initializer
    from initreg.planning import PlanEntry

TABLE_EDGE_ROWS = 1_000  # table=summary: a longer table shows this many first and last rows


def _describe(initializer: Initializer, names: Mapping[type, str]) -> str:
    """The initializer's registered name and its set (non-None) config values, seed aside; for an
    Overlay, its base's, then each part's region and initializer."""
    if isinstance(initializer, Overlay):
        parts = (f"{region_text(part.region)} {_describe(part.initializer, names)}" for part in initializer.parts)
        return " with ".join((_describe(initializer.base, names), *parts))
    config = {k: v for k, v in initializer.get_config().items() if v is not None and k != "seed"}
    name = names.get(type(initializer), type(initializer).__name__)
    return name + "(" + ", ".join(f"{k}={v!r}" for k, v in config.items()) + ")"


def _number(value: float) -> str:
    return "-" if math.isnan(value) else f"{value:.4g}"


def _row(entry: PlanEntry, measured: Mapping[str, float] | None, names: Mapping[type, str]) -> list[str]:
    """The table's cells for one parameter: fans for a plan, the measured std once drawn."""
    row = [entry.path, str(list(entry.shape)), entry.dtype, entry.rule, _describe(entry.initializer, names)]
    if measured is None:
        return [*row, str(entry.fan_in), str(entry.fan_out), _number(entry.target_std)]
    return [*row, _number(entry.target_std), _number(measured[entry.path])]


def _omitted_row(omitted: Sequence[PlanEntry], columns: int) -> list[str]:
    """The one row that stands for the tensors a summarized table leaves out: their count and size."""
    size = sum(entry.size for entry in omitted)
    note = f"{len(omitted):,} more tensors, {size:,} parameters (table=full)"
    return ["...", "", "", "", note] + [""] * (columns - 5)


def plan_table(entries: Sequence[PlanEntry], measured: Mapping[str, float] | None, *, full: bool) -> TextTable:
    """One row per parameter; fans for a plan, the measured std once drawn. Unless `full`, a plan of more
    than 2 * TABLE_EDGE_ROWS tensors shows its first and last TABLE_EDGE_ROWS and one row for the rest."""
    names = {entry.value: entry.name for entry in registry.initializers.entries(load_plugins=False)}
    extra = ("fan_in", "fan_out", "target std") if measured is None else ("target std", "measured std")
    columns = [Column("path"), Column("shape", wrap=True), Column("dtype"), Column("rule")]
    columns.append(Column("initializer", wrap=True))
    title = "plan (dry run)" if measured is None else None
    made = TextTable([*columns, *(Column(name, right=True) for name in extra)], title)
    summarized = not full and len(entries) > 2 * TABLE_EDGE_ROWS
    head, tail = (entries[:TABLE_EDGE_ROWS], entries[-TABLE_EDGE_ROWS:]) if summarized else (entries, [])
    rows = [_row(entry, measured, names) for entry in head]
    if summarized:
        rows.append(_omitted_row(entries[TABLE_EDGE_ROWS:-TABLE_EDGE_ROWS], len(made.columns)))
    rows += [_row(entry, measured, names) for entry in tail]
    for row in rows:
        made.add_row(*(printable(cell) for cell in row))
    return made


def show(*items: TextTable | str) -> None:
    """Prints tables (initreg.text_table.print_table) and lines, a line's control characters escaped."""
    for item in items:
        if isinstance(item, str):
            print(printable(item))
        else:
            print_table(item)


class Moments(moments.Moments):
    """The moments of one parameter's values seen piece by piece (see initreg.moments). A piece holding inf
    or NaN (an initializer whose arguments overflow the dtype, such as scale=1e300 in float32) raises,
    before it is written: the float64 mean is then not finite.
    """

    def __init__(self, entry: PlanEntry) -> None:
        super().__init__()
        self.entry = entry

    def merge(self, count: int, mean: float, m2: float) -> None:
        """Takes in the moments (count, mean, m2) of a piece's values (see initreg.moments)."""
        super().merge(count, mean, m2)
        if not math.isfinite(self.mean):
            entry = self.entry
            raise InvalidArgumentError(
                f"parameter {entry.path!r} (rule {entry.rule!r}) would hold inf or NaN: "
                f"{entry.initializer!r} overflows {entry.dtype}; valid: arguments whose values fit the dtype"
            )
