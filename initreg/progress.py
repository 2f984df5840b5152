"""A progress bar on stderr while a parameter tree is drawn and written: bytes, tensors, rate, time left.

It is drawn only where someone watches: not when `quiet` is set, and not when stderr (or the console
given) is not a terminal, so that logs, pipes and captured output stay clean. rich is imported when a
bar is made, never by ``import initreg``.
"""

from __future__ import annotations

import sys
from types import TracebackType
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from rich.console import Console
    from rich.progress import Progress, TaskID


class WriteProgress:
    """``with WriteProgress(total_bytes, tensors) as bar: bar.start(name); bar.advance(nbytes)``.

    The line reads ``tensor k/N name  ━━━━━━━╺━━━  1.2/6.2 GB  410 MB/s  0:00:12``: the tensor being
    made, bytes done of `total_bytes`, the rate and the time left.
    """

    def __init__(self, total_bytes: int, tensors: int, *, quiet: bool = False, console: Console | None = None) -> None:
        self.total_bytes, self.tensors = total_bytes, tensors
        self.quiet, self.console = quiet, console
        self.started = 0
        self._progress: Progress | None = None
        self._task: TaskID | None = None

    def __enter__(self) -> WriteProgress:
        if self.quiet or (self.console is None and not sys.stderr.isatty()):
            return self
        from rich.console import Console
        from rich.progress import (
            BarColumn,
            DownloadColumn,
            Progress,
            TextColumn,
            TimeRemainingColumn,
            TransferSpeedColumn,
        )

        console = self.console or Console(stderr=True)
        if not console.is_terminal:
            return self
        self._progress = Progress(
            TextColumn("{task.description}", style="progress.description"),
            BarColumn(),
            DownloadColumn(),
            TransferSpeedColumn(),
            TimeRemainingColumn(),
            console=console,
        )
        self._task = self._progress.add_task("", total=self.total_bytes)
        self._progress.start()
        return self

    @property
    def shown(self) -> bool:
        """Whether a bar is drawn."""
        return self._progress is not None

    def start(self, name: str) -> None:
        """The next tensor, `name`, is being made."""
        self.started += 1
        if self._progress is not None and self._task is not None:
            self._progress.update(self._task, description=f"tensor {self.started}/{self.tensors} {name}")

    def advance(self, nbytes: int) -> None:
        """`nbytes` more bytes are done."""
        if self._progress is not None and self._task is not None:
            self._progress.advance(self._task, nbytes)

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, traceback: TracebackType | None
    ) -> None:
        if self._progress is not None:
            self._progress.stop()
