"""A progress bar on stderr while a parameter tree is drawn and written: bytes, tensors, rate, time left.

It is drawn only where someone watches, and only for a write that lasts: not when `quiet` is set, not
when stderr (or the console given) is not a terminal, so that logs, pipes and captured output stay clean,
and not before SHOW_AFTER seconds have passed, so that a write done sooner shows no bar at all (and
imports nothing for one). rich is imported when a bar is made, never by ``import initreg``.
"""

from __future__ import annotations

import sys
import time
from types import TracebackType
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from rich.console import Console
    from rich.progress import Progress, TaskID

SHOW_AFTER = 0.5  # seconds into a write before its bar appears


class WriteProgress:
    """``with WriteProgress(total_bytes, tensors) as bar: bar.start(name); bar.advance(nbytes)``.

    The line reads ``tensor k/N name  ━━━━━━━╺━━━  1.2/6.2 GB  410 MB/s  0:00:12``: the tensor being
    made, bytes done of `total_bytes`, the rate and the time left. It appears at the first `start` or
    `advance` at least `show_after` seconds (SHOW_AFTER) after the write began, with what was done by then.
    """

    def __init__(
        self,
        total_bytes: int,
        tensors: int,
        *,
        quiet: bool = False,
        console: Console | None = None,
        show_after: float | None = None,
    ) -> None:
        self.total_bytes, self.tensors = total_bytes, tensors
        self.quiet, self.console = quiet, console
        self.show_after = SHOW_AFTER if show_after is None else show_after
        self.started, self.done, self.name = 0, 0, ""
        self._watched = False
        self._began = 0.0
        self._progress: Progress | None = None
        self._task: TaskID | None = None

    def __enter__(self) -> WriteProgress:
        if self.quiet:
            return self
        if self.console is None:
            self._watched = sys.stderr.isatty()
        else:
            self._watched = self.console.is_terminal
        self._began = time.monotonic()
        self._show_when_due()
        return self

    def _show_when_due(self) -> None:
        """Makes the bar, with what was done so far, once the write has lasted `show_after` seconds."""
        if not self._watched or self._progress is not None or time.monotonic() - self._began < self.show_after:
            return
        from rich.console import Console
        from rich.progress import (
            BarColumn,
            DownloadColumn,
            Progress,
            TextColumn,
            TimeRemainingColumn,
            TransferSpeedColumn,
        )

        self._progress = Progress(
            TextColumn("{task.description}", style="progress.description"),
            BarColumn(),
            DownloadColumn(),
            TransferSpeedColumn(),
            TimeRemainingColumn(),
            console=self.console or Console(stderr=True),
        )
        self._task = self._progress.add_task(self._description(), total=self.total_bytes, completed=self.done)
        self._progress.start()

    def _description(self) -> str:
        return f"tensor {self.started}/{self.tensors} {self.name}" if self.started else ""

    @property
    def shown(self) -> bool:
        """Whether a bar is drawn."""
        return self._progress is not None

    def start(self, name: str) -> None:
        """The next tensor, `name`, is being made."""
        self.started, self.name = self.started + 1, name
        self._show_when_due()
        if self._progress is not None and self._task is not None:
            self._progress.update(self._task, description=self._description())

    def advance(self, nbytes: int) -> None:
        """`nbytes` more bytes are done."""
        self.done += nbytes
        self._show_when_due()
        if self._progress is not None and self._task is not None:
            self._progress.update(self._task, completed=self.done)

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, traceback: TracebackType | None
    ) -> None:
        if self._progress is not None:
            self._progress.stop()
