"""Installs in fresh venvs: the built wheel on its own (configs/ and the Hydra plugin ship inside it),
and the README's two commands run in order.

The wheel is built from a copy of the sources (so the checkout gets no build/ folder) and installed
into a new venv that sees this environment's site-packages through a .pth file, so that numpy,
hydra and the rest are not downloaded again. The venv's own site-packages comes first on sys.path,
so `initreg` is imported from the wheel, which the test checks.

The README's main command (after <!-- main-command -->) and then the install part of its test command
(after <!-- test-command -->, up to the linters) run exactly as written, in one .venv of a fresh copy of
the tracked files: the first run must leave nothing in site-packages that pip did not install, so that
the editable install that follows replaces it cleanly.
"""

from __future__ import annotations

import csv
import os
import shutil
import subprocess
import sys
import sysconfig
import zipfile
from collections.abc import Mapping
from pathlib import Path

import pytest

import initreg

REPO = Path(__file__).resolve().parents[1]
SOURCES = ("pyproject.toml", "README.md", "initreg", "configs", "hydra_plugins")
NOT_INHERITED = ("PYTHONPATH", "HYDRA_FULL_ERROR", "VIRTUAL_ENV", "PYTHONDONTWRITEBYTECODE", "INITREG_CACHE_DIR")


def run(*command: str | Path, cwd: Path, timeout: float = 300, **environment: str) -> subprocess.CompletedProcess[str]:
    """Runs `command` in `cwd`, outside this test environment (plus `environment`); it must succeed."""
    env = {k: v for k, v in os.environ.items() if k not in NOT_INHERITED} | environment
    done = subprocess.run([str(c) for c in command], cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)
    assert done.returncode == 0, f"{command} failed:\n{done.stdout}\n{done.stderr}"
    return done


def build_wheel(workspace: Path, added: Mapping[str, str] | None = None) -> Path:
    """The wheel built from a copy of the sources, with the files `added` (path: text) written into the copy."""
    source = workspace / "source"
    for name in SOURCES:
        if (REPO / name).is_dir():
            shutil.copytree(REPO / name, source / name, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            source.mkdir(parents=True, exist_ok=True)
            shutil.copy2(REPO / name, source / name)
    for name, text in (added or {}).items():
        (source / name).parent.mkdir(parents=True, exist_ok=True)
        (source / name).write_text(text)
    dist = workspace / "dist"
    run(sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-w", dist, source, cwd=workspace)
    (wheel,) = dist.glob("initreg-*.whl")
    return wheel


def fresh_venv(folder: Path) -> Path:
    """A venv without pip whose sys.path ends with this environment's site-packages; returns its python."""
    run(sys.executable, "-m", "venv", "--without-pip", folder, cwd=folder.parent)
    python = folder / ("Scripts/python.exe" if os.name == "nt" else "bin/python")
    site = run(python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])", cwd=folder).stdout.strip()
    ours = {sysconfig.get_paths()["purelib"], sysconfig.get_paths()["platlib"]}
    (Path(site) / "initreg-test-dependencies.pth").write_text("\n".join(sorted(ours)) + "\n")
    return python


@pytest.mark.wheel
def test_the_wheel_runs_initreg_from_a_fresh_venv(tmp_path: Path) -> None:
    wheel = build_wheel(tmp_path)
    with zipfile.ZipFile(wheel) as archive:
        shipped = set(archive.namelist())
    expected = {f"initreg/{p.relative_to(REPO / 'initreg').as_posix()}" for p in (REPO / "initreg").rglob("*.py")}
    expected |= {
        f"initreg/configs/{p.relative_to(REPO / 'configs').as_posix()}" for p in (REPO / "configs").rglob("*.yaml")
    }
    expected |= {p.relative_to(REPO).as_posix() for p in (REPO / "hydra_plugins").rglob("*.py")}
    assert expected <= shipped, f"missing from the wheel: {sorted(expected - shipped)}"
    assert "hydra_plugins/__init__.py" not in shipped  # a namespace package, shared with other Hydra plugins

    python = fresh_venv(tmp_path / "venv")
    run(python, "-m", "pip", "install", "--no-deps", "--no-index", wheel, cwd=tmp_path)
    where = run(python, "-c", "import initreg.cli; print(initreg.cli.__file__)", cwd=tmp_path).stdout
    assert Path(where.strip()).is_relative_to(tmp_path / "venv")

    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    script = python.parent / ("initreg.exe" if os.name == "nt" else "initreg")
    done = run(script, "init=lecun_normal", "seed=3", cwd=elsewhere)
    assert "dense_0.kernel" in done.stdout
    assert [p.name for p in elsewhere.iterdir()] == ["mlp-lecun_normal-seed3.safetensors"]


def readme_command(marker: str) -> str:
    """The command line in the ```bash block right after `marker` in README.md."""
    lines = (REPO / "README.md").read_text().splitlines()
    start = lines.index(marker)
    assert lines[start + 1] == "```bash", f"no bash block after {marker}"
    return lines[start + 2]


def copy_tracked_files(target: Path) -> None:
    """The files git tracks in this checkout (as they are now), copied to `target`."""
    listed = subprocess.run(["git", "ls-files", "-z"], cwd=REPO, capture_output=True, text=True)
    if listed.returncode != 0:
        pytest.skip(f"not a git checkout: {listed.stderr.strip()}")
    for name in filter(None, listed.stdout.split("\0")):
        if (REPO / name).is_file():
            (target / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(REPO / name, target / name)


def unrecorded_files(site_packages: Path, distribution: str) -> list[str]:
    """Files under the distribution's package folder that its RECORD does not list (pip cannot remove them)."""
    (record,) = site_packages.glob(f"{distribution}-*.dist-info/RECORD")
    with record.open(newline="") as rows:
        recorded = {(site_packages / row[0]).resolve() for row in csv.reader(rows) if row}
    package = site_packages / distribution
    return sorted(str(p.relative_to(site_packages)) for p in package.rglob("*") if p.is_file() and p not in recorded)


@pytest.mark.wheel
def test_the_readmes_main_command_then_its_test_install_in_the_same_venv(tmp_path: Path) -> None:
    main_command = readme_command("<!-- main-command -->")
    test_install = readme_command("<!-- test-command -->").split(" && .venv/bin/ruff")[0]
    assert main_command.startswith("python3 -m venv .venv && ") and "pip install -e" in test_install
    clone = tmp_path / "clone"
    copy_tracked_files(clone)
    cache = str(tmp_path / "kernel-cache")  # kernels compiled for this copy stay out of the user's cache

    done = run("bash", "-c", main_command, cwd=clone, timeout=900, INITREG_CACHE_DIR=cache)
    assert "wrote mlp-lecun_normal-seed3.safetensors" in done.stdout
    assert (clone / "mlp-lecun_normal-seed3.safetensors").is_file()
    python = clone / ".venv" / "bin" / "python"
    site = Path(
        run(python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])", cwd=clone).stdout.strip()
    )
    assert (site / "initreg" / "cli.py").is_file()  # a regular install, which the run must not have written into
    assert unrecorded_files(site, "initreg") == []

    run("bash", "-c", test_install, cwd=clone, timeout=900)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    check = (
        "import initreg; from initreg import registry; "
        "print(initreg.__version__); print(initreg.__file__); "
        "print(registry.initializers.entry('delta_orthogonal').origin); print(registry.backends.entry('torch').origin)"
    )
    version, location, extra, torch = run(python, "-c", check, cwd=elsewhere).stdout.split()
    assert version == initreg.__version__
    assert Path(location) == clone / "initreg" / "__init__.py"  # the editable install, not a leftover
    assert (extra, torch) == ("initreg-extra", "initreg-torch")
    shutil.rmtree(clone / ".venv")  # gigabytes (torch, jax); pytest keeps the rest of a passing run's folder
