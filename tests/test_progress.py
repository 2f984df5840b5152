"""The progress bar: drawn on a terminal once a write has lasted SHOW_AFTER seconds, silent when asked,
when stderr is not a terminal or when the write is done sooner.

In process through rich consoles (a forced terminal into a buffer); end to end through a pseudo
terminal as stderr, for the library and for the `initreg` command, and through a pipe.
"""

from __future__ import annotations

import io
import os
import pty
import subprocess
import sys
from pathlib import Path

import pytest
from rich.console import Console

from initreg.progress import WriteProgress

BAR = "━"  # rich's bar segments


def terminal_console() -> tuple[Console, io.StringIO]:
    buffer = io.StringIO()
    return Console(file=buffer, force_terminal=True, width=120, color_system=None), buffer


def test_the_bar_renders_on_a_terminal() -> None:
    console, buffer = terminal_console()
    with WriteProgress(3_000_000, 2, console=console, show_after=0) as progress:
        assert progress.shown
        progress.start("dense.kernel")
        progress.advance(1_000_000)
        progress.start("dense.bias")
        progress.advance(2_000_000)
    shown = buffer.getvalue()
    assert "tensor 2/2 dense.bias" in shown
    assert BAR in shown
    assert "3.0/3.0 MB" in shown  # bytes done of the total, at the end


@pytest.mark.parametrize("quiet", [True, False])
def test_the_bar_is_silent_when_asked_or_off_a_terminal(quiet: bool) -> None:
    if quiet:
        console, buffer = terminal_console()
    else:
        buffer = io.StringIO()
        console = Console(file=buffer)  # not a terminal
    with WriteProgress(100, 1, quiet=quiet, console=console, show_after=0) as progress:
        progress.start("w")
        progress.advance(100)
        assert not progress.shown
    assert buffer.getvalue() == ""


def test_the_bar_appears_once_the_write_has_lasted_show_after_with_what_was_done(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import initreg.progress

    clock = [100.0]
    monkeypatch.setattr(initreg.progress.time, "monotonic", lambda: clock[0])
    console, buffer = terminal_console()
    with WriteProgress(3_000_000, 2, console=console, show_after=0.5) as progress:
        progress.start("dense.kernel")
        progress.advance(1_000_000)
        clock[0] += 0.49
        progress.advance(1_000_000)
        assert not progress.shown and buffer.getvalue() == ""
        clock[0] += 0.01
        progress.start("dense.bias")
        assert progress.shown
        progress.advance(1_000_000)
    shown = buffer.getvalue()
    assert "tensor 2/2 dense.bias" in shown and "3.0/3.0 MB" in shown and "dense.kernel" not in shown


SHOWN_AT_ONCE = "import initreg.progress; initreg.progress.SHOW_AFTER = 0\n"
SAVE_TREE = """
import sys
from initreg import tree
spec = {f"layer{i}": {"kernel": (64, 64), "bias": (64,)} for i in range(4)}
rules = {"k": {"match": "*.kernel", "init": "lecun_normal"}, "b": {"match": "*.bias", "init": "zeros"}}
tree.save_tree(spec, rules, sys.argv[1], chunk_bytes=4096, quiet=sys.argv[2] == "quiet")
"""


def stderr_on_a_terminal(command: list[str], cwd: Path) -> str:
    """What `command` writes to stderr when stderr is a pseudo terminal (stdout is a pipe)."""
    controller, terminal = pty.openpty()
    environment = {**os.environ, "TERM": "xterm", "COLUMNS": "120"}
    environment.pop("HYDRA_FULL_ERROR", None)
    try:
        done = subprocess.run(command, cwd=cwd, env=environment, stdout=subprocess.PIPE, stderr=terminal, timeout=120)
    finally:
        os.close(terminal)
    assert done.returncode == 0
    output = b""
    while True:
        try:
            data = os.read(controller, 65536)
        except OSError:  # EIO: the terminal's other end is closed and everything has been read
            break
        if not data:
            break
        output += data
    os.close(controller)
    return output.decode(errors="replace")


@pytest.mark.parametrize("quiet", [False, True])
def test_save_tree_draws_the_bar_on_a_terminal_unless_quiet(tmp_path: Path, quiet: bool) -> None:
    script = SHOWN_AT_ONCE + SAVE_TREE
    command = [sys.executable, "-c", script, str(tmp_path / "t.safetensors"), "quiet" if quiet else "shown"]
    shown = stderr_on_a_terminal(command, tmp_path)
    if quiet:
        assert shown == ""
    else:
        assert "tensor 8/8 layer3.bias" in shown and BAR in shown


def test_save_tree_is_silent_when_stderr_is_a_pipe(tmp_path: Path) -> None:
    command = [sys.executable, "-c", SAVE_TREE, str(tmp_path / "t.safetensors"), "shown"]
    done = subprocess.run(command, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0
    assert done.stderr == ""


@pytest.mark.parametrize("setting", ["progress=true", "progress=false"])
def test_the_command_draws_the_bar_on_a_terminal_unless_turned_off(tmp_path: Path, setting: str) -> None:
    script = SHOWN_AT_ONCE + "from initreg.cli import console; console()"  # the console script's code
    shown = stderr_on_a_terminal([sys.executable, "-c", script, setting, "chunk_mb=0.01"], tmp_path)
    if setting == "progress=false":
        assert shown == ""
    else:
        assert "tensor 6/6 dense_2.bias" in shown and BAR in shown
