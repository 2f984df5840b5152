"""``initreg list``: every initializer with its aliases and every backend with its availability.

Each row names the distribution the entry came from ("initreg" for built-ins). Listing loads every
plugin, but no optional array library: a backend reports whether it can run without importing one. A
plugin whose import takes longer than WAIT_NOTICE_SECONDS is named on stderr while it is awaited.
"""

from __future__ import annotations

import sys
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import TYPE_CHECKING, TextIO

from initreg import registry

if TYPE_CHECKING:
    from initreg.backends.base import Backend
    from initreg.registry import Entry

WAIT_NOTICE_SECONDS = 2.0


@contextmanager
def _waiting_notice(name: str, distribution: str) -> Iterator[None]:
    """Prints "initreg: waiting for plugin 'x' (distribution 'y') to import..." on stderr if the block
    (the plugin's load) is still running after WAIT_NOTICE_SECONDS."""
    notice = f"initreg: waiting for plugin {name!r} (distribution {distribution!r}) to import..."
    timer = threading.Timer(WAIT_NOTICE_SECONDS, lambda: print(notice, file=sys.stderr, flush=True))
    timer.daemon = True  # a plugin import that never ends must not also keep the program alive
    timer.start()
    try:
        yield
    finally:
        timer.cancel()


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
    initializer_rows = [
        (e.name, e.origin, ", ".join(e.aliases)) for e in registry.initializers.entries(while_loading=_waiting_notice)
    ]
    backend_rows = [
        (e.name, e.origin, availability(e)) for e in registry.backends.entries(while_loading=_waiting_notice)
    ]
    _print_table("Initializers", ("name", "from", "aliases"), initializer_rows, out)
    print(file=out)
    _print_table("Backends", ("name", "from", "status"), backend_rows, out)
