"""Signals sent to a real `initreg` process while a plugin imports and while a file is written.

A fake distribution's plugin stalls (creates the file named by INITREG_TEST_STARTED, then sleeps) when it
is imported, or when it is asked for values, which happens while the output's temporary file is open.
Each of SIGTERM, SIGHUP, SIGINT and SIGQUIT must end the run with a non-zero status and leave neither
the output nor a temporary file. Also: a run of built-in names imports no plugin, and `initreg list`
names the plugin it waits for.
"""

from __future__ import annotations

import functools
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest

INITIALIZERS = "initreg.initializers"
STALL_SECONDS = 60  # far longer than any test waits: a plugin that returned early would fail the test
STALL = f"""
import os
import time


def stall():
    open(os.environ["INITREG_TEST_STARTED"], "w").close()
    time.sleep({STALL_SECONDS})
"""
STALLS_ON_IMPORT = STALL + "\nstall()\nfrom initreg.initializers import RandomNormal as Stalled\n"
STALLS_WHILE_WRITING = (
    STALL
    + '''
from initreg.initializers import RandomNormal


class Stalled(RandomNormal):
    """N(0, 0.05), made only after a stall."""

    def generate(self, *arguments, **keywords):
        stall()
        return super().generate(*arguments, **keywords)

    def generate_slice(self, *arguments, **keywords):
        stall()
        return super().generate_slice(*arguments, **keywords)
'''
)
SIGNALS = [getattr(signal, name) for name in ("SIGTERM", "SIGHUP", "SIGINT", "SIGQUIT")]


def _install(tmp_path: Path, source: str, write_distribution: Callable[..., None]) -> tuple[Path, Path]:
    """A fake distribution with plugin 'stalled' in tmp_path/site; returns it and an empty working folder."""
    site, work = tmp_path / "site", tmp_path / "work"
    site.mkdir()
    work.mkdir()
    write_distribution(
        site,
        "initreg-fake-stalls",
        {INITIALIZERS: {"stalled": "initreg_fake_stalls:Stalled"}},
        {"initreg_fake_stalls": source},
    )
    return site, work


# The child starts with SIGINT's default disposition, as a shell starts a command, whatever the test process's
# own (a library in it may have left SIGINT ignored at the C level, which a child would inherit).
DEFAULT_SIGINT = functools.partial(signal.signal, signal.SIGINT, signal.SIG_DFL)


def _start_initreg(site: Path, work: Path, *arguments: str) -> subprocess.Popen[str]:
    env = {**os.environ, "PYTHONPATH": str(site), "INITREG_TEST_STARTED": str(work.parent / "started")}
    env.pop("HYDRA_FULL_ERROR", None)
    command = [sys.executable, "-c", "from initreg.cli import main; main()", *arguments]
    return subprocess.Popen(
        command, cwd=work, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        preexec_fn=DEFAULT_SIGINT,
    )  # fmt: skip


def _signal_once_stalled(process: subprocess.Popen[str], started: Path, signum: int) -> str:
    """Sends `signum` once the plugin has begun to stall; returns stderr once the process has ended."""
    try:
        deadline = time.monotonic() + 60
        while not started.exists() and process.poll() is None and time.monotonic() < deadline:
            time.sleep(0.05)
        assert started.exists(), "the plugin never began to stall: " + process.communicate(timeout=30)[1]
        process.send_signal(signum)
        return process.communicate(timeout=30)[1]
    finally:
        process.kill()
        process.wait()


def _stopped_by(signum: int) -> set[int]:
    """The exit statuses that say `signum` stopped the run: io.exit_on_signal's 128 + signum, or, for
    an uncaught KeyboardInterrupt, the signal itself (how Python exits then)."""
    return {-signal.SIGINT} if signum == signal.SIGINT else {128 + signum}


@pytest.mark.parametrize("signum", SIGNALS, ids=lambda signum: signal.Signals(signum).name)
@pytest.mark.parametrize(
    ("phase", "source"), [("import", STALLS_ON_IMPORT), ("write", STALLS_WHILE_WRITING)], ids=["import", "write"]
)
def test_a_signal_while_a_plugin_imports_or_a_file_is_written_stops_the_run_and_leaves_nothing(
    tmp_path: Path, signum: int, phase: str, source: str, write_distribution: Callable[..., None]
) -> None:
    site, work = _install(tmp_path, source, write_distribution)
    process = _start_initreg(site, work, "init=stalled", "output=params.safetensors")
    stderr = _signal_once_stalled(process, tmp_path / "started", signum)
    assert process.returncode in _stopped_by(signum), stderr
    assert "PluginWarning" not in stderr  # the signal is not taken for a broken plugin
    assert list(work.iterdir()) == []  # no output, no temporary file, no folder


def test_a_run_of_built_in_names_imports_no_plugin(tmp_path: Path, write_distribution: Callable[..., None]) -> None:
    site, work = _install(tmp_path, STALLS_ON_IMPORT, write_distribution)
    process = _start_initreg(site, work, "init=lecun_normal", "output=params.safetensors")
    try:
        stdout, stderr = process.communicate(timeout=STALL_SECONDS / 2)  # importing the plugin would time out
    finally:
        process.kill()
        process.wait()
    assert process.returncode == 0, stderr
    assert not (tmp_path / "started").exists()
    assert "wrote params.safetensors" in stdout
    assert [path.name for path in work.iterdir()] == ["params.safetensors"]


def test_list_names_the_plugin_it_waits_for(tmp_path: Path, write_distribution: Callable[..., None]) -> None:
    site, work = _install(tmp_path, STALLS_ON_IMPORT, write_distribution)
    process = _start_initreg(site, work, "list")
    try:
        assert process.stderr is not None
        line = process.stderr.readline()  # printed after WAIT_NOTICE_SECONDS, while the import still stalls
    finally:
        process.kill()
        process.wait()
    assert line == "initreg: waiting for plugin 'stalled' (distribution 'initreg-fake-stalls') to import...\n"
    assert (tmp_path / "started").exists()
