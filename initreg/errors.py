"""The project's exceptions and warnings: every bad input raises a subclass of InitregError."""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager

SHOWN = 5  # names listed in an error message before "and N more"


class InitregError(Exception):
    """Base class of every error initreg raises on bad input."""


class InvalidArgumentError(InitregError, ValueError):
    """An argument has a value that is not valid; the message names it and what is valid."""


class UnknownNameError(InitregError, ValueError):
    """A name was looked up in a registry and is neither a name nor an alias there."""


class NameClashError(InitregError, ValueError):
    """A name or alias is registered twice without force=True."""


class BackendUnavailableError(InitregError, RuntimeError):
    """A backend is registered but cannot run on this machine (say, CuPy without a GPU)."""


class WriteError(InitregError, OSError):
    """A file cannot be written (no room, no permission, no such folder); the message names the target."""


class IgnoredSeedWarning(UserWarning):
    """A rule's initializer has its own seed, which a tree ignores: the tree's seed decides (with the path)."""


class OutOfMemoryError(InitregError, MemoryError):
    """A tensor would need more memory than is available; the message names both, before anything is allocated."""


def choices(valid: Iterable[object]) -> str:
    """Formats valid values for an error message: 'a', 'b', 'c'."""
    return ", ".join(repr(v) for v in valid)


def printable(text: str) -> str:
    """`text` with control and other unprintable characters escaped as repr does (``\\x1b``, ``\\n``)."""
    if text.isprintable():
        return text
    return "".join(c if c.isprintable() else repr(c)[1:-1] for c in text)


def listing(names: Sequence[str]) -> str:
    """The first SHOWN of `names` as `choices` writes them, then "and N more" for the rest."""
    shown = choices(names[:SHOWN])
    return shown + (f" and {len(names) - SHOWN} more" if len(names) > SHOWN else "")


def prefix_message(error: InitregError, subject: str) -> None:
    """Puts `subject` before the error's message (keeping its type)."""
    error.args = (f"{subject}: {error}",)


@contextmanager
def about(subject: str) -> Iterator[None]:
    """Prefixes the message of an InitregError raised inside with `subject`."""
    try:
        yield
    except InitregError as error:
        prefix_message(error, subject)
        raise
