"""``initreg list``: every initializer with its aliases and every backend with its availability.

Each row names the distribution the entry came from ("initreg" for built-ins). Listing loads every
plugin, but no optional array library: a backend reports whether it can run without importing one.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from typing import TYPE_CHECKING, TextIO

from initreg import registry

if TYPE_CHECKING:
    from initreg.backends.base import Backend
    from initreg.registry import Entry


def availability(entry: Entry[Backend]) -> str:
    """'available', or 'unavailable: <why>' as the backend itself explains it (registry.unavailable_reason)."""
    reason = registry.unavailable_reason(entry)
    return "available" if reason is None else f"unavailable: {reason}"


def _print_table(title: str, header: Sequence[str], rows: Sequence[Sequence[str]], out: TextIO) -> None:
    print(f"{title}:", file=out)
    widths = [max(len(row[column]) for row in (header, *rows)) for column in range(len(header))]
    for row in (header, *rows):
        print("  " + "  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip(), file=out)


def print_listing(file: TextIO | None = None) -> None:
    """Prints the initializers (name, distribution, aliases) and backends (name, distribution, status)."""
    out = sys.stdout if file is None else file
    initializer_rows = [(e.name, e.origin, ", ".join(e.aliases)) for e in registry.initializers.entries()]
    backend_rows = [(e.name, e.origin, availability(e)) for e in registry.backends.entries()]
    _print_table("Initializers", ("name", "from", "aliases"), initializer_rows, out)
    print(file=out)
    _print_table("Backends", ("name", "from", "status"), backend_rows, out)
