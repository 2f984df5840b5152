"""Compiled kernels are cached in the user's cache folder, never inside the installed package.

In-process tests use a small numba function of this file; the real kernels are drawn in fresh
processes (the first compiles them into an empty cache folder, the second must load them from it).
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numba
import pytest
from numba.core.caching import IndexDataCacheFile, NullCache

import initreg
from initreg.backends import kernel_cache
from initreg.backends.kernel_cache import CACHE_DIR_VARIABLE, cache_root, cached, kernel_folder

PACKAGE = Path(initreg.__file__).resolve().parent


def add_one(values: int) -> int:
    """A small function to compile."""
    return values + 1


def package_files() -> dict[str, int]:
    """Every file under the initreg package folder, with its modification time (ns)."""
    return {str(path.relative_to(PACKAGE)): path.stat().st_mtime_ns for path in PACKAGE.rglob("*") if path.is_file()}


def test_the_cache_folder_follows_initreg_cache_dir_then_xdg_then_home(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.delenv(CACHE_DIR_VARIABLE, raising=False)
    monkeypatch.delenv("XDG_CACHE_HOME", raising=False)
    assert cache_root() == tmp_path / "home" / ".cache" / "initreg"
    monkeypatch.setenv("XDG_CACHE_HOME", "relative/cache")  # the XDG spec says to ignore a relative path
    assert cache_root() == tmp_path / "home" / ".cache" / "initreg"
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert cache_root() == tmp_path / "xdg" / "initreg"
    monkeypatch.setenv(CACHE_DIR_VARIABLE, str(tmp_path / "chosen"))
    assert cache_root() == tmp_path / "chosen"
    folder = kernel_folder(kernel_cache.__file__)
    assert folder.parent == tmp_path / "chosen" / initreg.__version__ / f"numba-{numba.__version__}"
    assert folder.name.startswith("backends-")
    assert kernel_folder(__file__).name.startswith("tests-") and kernel_folder(__file__).parent == folder.parent


def test_a_cached_function_is_saved_in_the_user_folder_and_loaded_from_it(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv(CACHE_DIR_VARIABLE, str(tmp_path))
    first = cached(numba.njit(add_one))
    assert first(41) == 42
    folder = kernel_folder(__file__)
    assert first.stats.cache_path == str(folder)
    assert sorted(p.suffix for p in folder.iterdir()) == [".nbc", ".nbi"]
    assert all(p.name.startswith("test_kernel_cache.add_one-") for p in folder.iterdir())
    second = cached(numba.njit(add_one))  # a new dispatcher, as in a new process
    assert second(1) == 2
    assert sum(second.stats.cache_hits.values()) == 1 and not second.stats.cache_misses


@pytest.mark.filterwarnings("ignore::numba.NumbaPerformanceWarning")  # add_one has no loop to parallelize
def test_two_builds_of_one_function_are_cached_under_their_own_names(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv(CACHE_DIR_VARIABLE, str(tmp_path))
    kernel = kernel_cache.Kernel(add_one)
    assert kernel(1, 1) == 2 and kernel(kernel_cache.PARALLEL_FROM, 2) == 3
    names = sorted(p.name.split("-")[0] for p in kernel_folder(__file__).iterdir() if p.suffix == ".nbi")
    assert names == ["test_kernel_cache.add_one", "test_kernel_cache.add_one.serial"]
    again = kernel_cache.Kernel(add_one)  # as in a new process: each build loads its own file
    assert again(1, 5) == 6 and again(kernel_cache.PARALLEL_FROM, 6) == 7
    assert sum(again.serial.stats.cache_hits.values()) == sum(again.parallel.stats.cache_hits.values()) == 1


def test_an_unusable_cache_folder_means_no_caching_and_no_error(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    monkeypatch.setenv(CACHE_DIR_VARIABLE, str(blocker / "cache"))  # cannot be made: its parent is a file
    function = cached(numba.njit(add_one))
    assert isinstance(function._cache, NullCache)
    assert function(1) == 2
    assert sorted(tmp_path.iterdir()) == [blocker]


def test_a_cache_file_that_cannot_be_written_or_read_is_a_miss(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv(CACHE_DIR_VARIABLE, str(tmp_path))

    def refuse(self: object, *args: object) -> None:
        raise PermissionError("the disk refuses")

    monkeypatch.setattr(IndexDataCacheFile, "_open_for_write", refuse)
    assert cached(numba.njit(add_one))(1) == 2  # compiled; saving failed quietly
    monkeypatch.setattr(IndexDataCacheFile, "_load_index", refuse)
    loading = cached(numba.njit(add_one))
    assert loading(1) == 2
    assert sum(loading.stats.cache_misses.values()) == 1


USER_MODULE = """
import numba


@numba.njit(cache=True)
def add(a, b):
    return a + b
"""

DRAW = """
import sys

import numba

import initreg
from initreg.backends import fused_cpu
from initreg.backends import numpy as numpy_backend

numpy_backend.REFERENCE_WORK = 0  # the kernels from the first draw, however small
values = initreg.LecunNormal(seed=0)((16, 16))
stats = fused_cpu._fill32.serial.stats  # 256 elements: the serial build
print("cache path:", stats.cache_path)
print("hits:", sum(stats.cache_hits.values()), "misses:", sum(stats.cache_misses.values()))

import user_module  # the user's own cache=True function caches where numba puts it, as before

assert user_module.add(1, 2) == 3
print("user cache path:", user_module.add.stats.cache_path)
print("numba CACHE_DIR:", repr(numba.config.CACHE_DIR))
"""


def test_drawing_caches_the_kernels_in_the_user_folder_and_writes_nothing_into_the_package(tmp_path: Path) -> None:
    cache, user = tmp_path / "cache", tmp_path / "user"
    user.mkdir()
    (user / "user_module.py").write_text(USER_MODULE)
    env = {k: v for k, v in os.environ.items() if k not in ("NUMBA_CACHE_DIR", "NUMBA_CACHE_LOCATOR_CLASSES")}
    env |= {CACHE_DIR_VARIABLE: str(cache), "PYTHONPATH": str(user), "PYTHONDONTWRITEBYTECODE": "1"}
    before = package_files()
    runs = [
        subprocess.run(
            [sys.executable, "-c", textwrap.dedent(DRAW)],
            env=env,
            cwd=user,
            capture_output=True,
            text=True,
            timeout=600,
        )
        for _ in range(2)
    ]
    for run in runs:
        assert run.returncode == 0, run.stderr
    folder = Path(runs[0].stdout.split("cache path: ")[1].split("\n")[0])
    assert folder.is_relative_to(cache / initreg.__version__ / f"numba-{numba.__version__}")
    assert {p.suffix for p in folder.iterdir()} == {".nbi", ".nbc"}
    assert "hits: 0 misses: 1" in runs[0].stdout  # compiled into the empty folder
    assert "hits: 1 misses: 0" in runs[1].stdout  # loaded from it
    for run in runs:
        assert f"user cache path: {user / '__pycache__'}" in run.stdout
        assert "numba CACHE_DIR: ''" in run.stdout
    assert package_files() == before


LOADING = """
import sys

import numpy as np

import initreg
from initreg import rng
from initreg.backends import numpy as numpy_backend
from initreg.backends.numpy import REFERENCE_CALL, REFERENCE_WORK, backend
from initreg.distributions import NormalDist

dist, shape = NormalDist(0.0, 1.0), (16,)
calls = -(-REFERENCE_WORK // (16 + REFERENCE_CALL))  # the draw whose work reaches REFERENCE_WORK
drawn = [backend.draw(dist, rng.derive_key(3, str(i)), shape, "float32") for i in range(calls - 1)]
print("numba before:", "numba" in sys.modules, numpy_backend._imported)
drawn.append(backend.draw(dist, rng.derive_key(3, str(calls - 1)), shape, "float32"))
print("numba after:", "numba" in sys.modules, numpy_backend.fused_kernels(0) is not None)
from initreg.backends import fused_cpu

assert all(
    values.tobytes() == fused_cpu.draw(dist, rng.derive_key(3, str(i)), shape, "float32").tobytes()
    for i, values in enumerate(drawn)
)
print("same bits")
"""


def test_small_draws_use_the_reference_until_their_work_pays_for_loading_the_kernels() -> None:
    done = subprocess.run([sys.executable, "-c", LOADING], capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == ["numba before: False []", "numba after: True True", "same bits"]


LARGE_DRAW = """
import sys

import initreg
from initreg.backends.numpy import REFERENCE_CALL, REFERENCE_WORK

initreg.LecunNormal(seed=3)((REFERENCE_WORK - REFERENCE_CALL,))
print("numba after a draw of REFERENCE_WORK:", "numba" in sys.modules)
"""


def test_one_draw_as_large_as_reference_work_loads_the_kernels_at_once() -> None:
    done = subprocess.run([sys.executable, "-c", LARGE_DRAW], capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "numba after a draw of REFERENCE_WORK: True"


def test_the_command_on_its_default_model_never_imports_numba(tmp_path: Path) -> None:
    code = "import sys; from initreg.cli import main; sys.argv[1:] = ['seed=3']; main(); print('numba' in sys.modules)"
    done = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines()[-1] == "False"
    assert (tmp_path / "mlp-glorot_uniform-seed3.safetensors").exists()
