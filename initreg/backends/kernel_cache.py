"""Where numba keeps initreg's compiled kernels: a per-user cache folder, never the installed package.

numba's own ``cache=True`` writes beside the source, into ``initreg/backends/__pycache__``: inside the
installed package, whose files pip does not know about (uninstalling leaves a bare ``initreg/`` folder
that shadows a later editable install). `cached` gives a kernel a cache of its own instead, in

    $INITREG_CACHE_DIR, else $XDG_CACHE_HOME/initreg, else ~/.cache/initreg,
    then <initreg version>/numba-<numba version>/<source folder name>-<hash of its path>

numba's global settings (NUMBA_CACHE_DIR, numba.config.CACHE_DIR) are left alone, so the user's own
``cache=True`` functions cache where they always did. numba names each file after the Python version
and checks it against a hash of the source file, so a stale file is recompiled, never used. A folder
that cannot be made or written means no caching: the kernels then compile in every process.

`Kernel` builds a function twice, serial and parallel, each cached under its own name. A parallel
launch waits for every worker thread: a few microseconds on an idle machine, milliseconds when
another process holds a core. Calls computing fewer than PARALLEL_FROM elements therefore run the
serial build; parallel launches, the first compile included, run one at a time under LAUNCH_LOCK,
serial ones concurrently.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numba
from numba.core.caching import (
    CompileResultCacheImpl,
    FunctionCache,
    IndexDataCacheFile,
    _CacheLocator,
    _SourceFileBackedLocatorMixin,
)

from initreg.version import __version__

CACHE_DIR_VARIABLE = "INITREG_CACHE_DIR"

# Calls computing fewer elements run the serial build. On an idle machine the parallel build pays from
# about 2^16 elements (bench/bench_small.py), by under 0.3 ms a call below 2^18: less than loading the
# parallel builds from the cache costs a process whose tensors are all small (the command's default model).
PARALLEL_FROM = 1 << 18

# One parallel launch at a time: numba's workqueue threading layer (used where neither TBB nor OpenMP
# is available) aborts the process on concurrent launches, and each launch already uses every thread.
LAUNCH_LOCK = threading.Lock()


def cache_root() -> Path:
    """initreg's cache folder: $INITREG_CACHE_DIR, else $XDG_CACHE_HOME/initreg, else ~/.cache/initreg."""
    configured = os.environ.get(CACHE_DIR_VARIABLE)
    if configured:
        return Path(configured)
    xdg = os.environ.get("XDG_CACHE_HOME", "")
    base = Path(xdg) if os.path.isabs(xdg) else Path.home() / ".cache"  # XDG ignores a relative path
    return base / "initreg"


def kernel_folder(source_file: str) -> Path:
    """The folder for the kernels compiled from `source_file` by this initreg and this numba."""
    source_folder = Path(source_file).resolve().parent
    digest = hashlib.sha256(str(source_folder).encode()).hexdigest()[:16]
    return cache_root() / __version__ / f"numba-{numba.__version__}" / f"{source_folder.name}-{digest}"


class _UserFolderLocator(_SourceFileBackedLocatorMixin, _CacheLocator):  # type: ignore[misc]
    """numba's locator for a function of a source file, pointing at kernel_folder(that file)."""

    def __init__(self, py_func: Any, py_file: str) -> None:
        self._py_file = py_file
        self._lineno = py_func.__code__.co_firstlineno
        self._cache_path = str(kernel_folder(py_file))

    def get_cache_path(self) -> str:
        return self._cache_path


class _UserFolderCacheImpl(CompileResultCacheImpl):  # type: ignore[misc]
    # numba tries these in turn; this one alone, so never the package's __pycache__
    _locator_classes = [_UserFolderLocator]  # noqa: RUF012 - numba's class attribute


class _KernelCache(FunctionCache):  # type: ignore[misc]
    """numba's FunctionCache in the user's folder; a file that cannot be read or written is a cache miss.

    A `variant` names a second build of the same function (numba's file names tell functions apart,
    not their build options): its files are named <module>.<function>.<variant>-... .
    """

    _impl_class = _UserFolderCacheImpl

    def __init__(self, py_func: Any, variant: str = "") -> None:
        super().__init__(py_func)
        if variant:
            qualname = py_func.__qualname__
            name = self._impl.filename_base.replace(f".{qualname}-", f".{qualname}.{variant}-", 1)
            self._cache_file = IndexDataCacheFile(self._cache_path, name, self._impl.locator.get_source_stamp())

    def load_overload(self, sig: Any, target_context: Any) -> Any:
        try:
            return super().load_overload(sig, target_context)
        except OSError:
            return None

    def save_overload(self, sig: Any, data: Any) -> None:
        with contextlib.suppress(OSError):  # the folder went away or filled up: the next process compiles
            super().save_overload(sig, data)


def cached(dispatcher: Any, variant: str = "") -> Any:
    """`dispatcher` (a numba function) caching its compiled code in kernel_folder, where it can.

    Two builds of one function (serial and parallel, say) need different `variant` names.

    It stays uncached when that folder cannot be made or written (numba then finds no locator), and
    when NUMBA_CACHE_LOCATOR_CLASSES replaces every cache's locators with the user's own.
    """
    if getattr(numba.config, "CACHE_LOCATOR_CLASSES", ""):
        return dispatcher
    try:
        cache = _KernelCache(dispatcher.py_func, variant)
    except RuntimeError:  # "cannot cache function ...: no locator available"
        return dispatcher
    dispatcher._cache = cache  # what numba's enable_caching() does with its own FunctionCache
    return dispatcher


class Kernel:
    """A function's serial and parallel builds, each compiled on its first call and `cached`.

    ``kernel(size, *arguments)`` runs the serial build when `size` (the elements the call computes)
    is below PARALLEL_FROM, else the parallel one under LAUNCH_LOCK. Inside the function,
    ``numba.prange`` is a plain range in the serial build.
    """

    def __init__(self, function: Callable[..., Any]) -> None:
        self.serial = cached(numba.njit(error_model="numpy", fastmath=False)(function), "serial")
        self.parallel = cached(numba.njit(error_model="numpy", parallel=True, fastmath=False)(function))
        self.__doc__ = function.__doc__

    def __call__(self, size: int, *arguments: Any) -> Any:
        """The serial build's result for `size` < PARALLEL_FROM, else the parallel build's."""
        if size < PARALLEL_FROM:
            return self.serial(*arguments)
        with LAUNCH_LOCK:
            return self.parallel(*arguments)
