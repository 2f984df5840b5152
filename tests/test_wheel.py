"""The built wheel works on its own: configs/ and the Hydra plugin ship inside it and `initreg` runs from a fresh venv.

The wheel is built from a copy of the sources (so the checkout gets no build/ folder) and installed
into a new venv that sees this environment's site-packages through a .pth file, so that numpy,
hydra and the rest are not downloaded again. The venv's own site-packages comes first on sys.path,
so `initreg` is imported from the wheel, which the test checks.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import sysconfig
import zipfile
from collections.abc import Mapping
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SOURCES = ("pyproject.toml", "README.md", "initreg", "configs", "hydra_plugins")


def run(*command: str | Path, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "HYDRA_FULL_ERROR")}
    done = subprocess.run([str(c) for c in command], cwd=cwd, env=env, capture_output=True, text=True, timeout=300)
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
