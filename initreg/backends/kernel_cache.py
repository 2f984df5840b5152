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
"""

from __future__ import annotations

import contextlib
import hashlib
import os
from pathlib import Path
from typing import Any

import numba
from numba.core.caching import (
    CompileResultCacheImpl,
    FunctionCache,
    _CacheLocator,
    _SourceFileBackedLocatorMixin,
)

from initreg.version import __version__

CACHE_DIR_VARIABLE = "INITREG_CACHE_DIR"


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
    """numba's FunctionCache in the user's folder; a file that cannot be read or written is a cache miss."""

    _impl_class = _UserFolderCacheImpl

    def load_overload(self, sig: Any, target_context: Any) -> Any:
        try:
            return super().load_overload(sig, target_context)
        except OSError:
            return None

    def save_overload(self, sig: Any, data: Any) -> None:
        with contextlib.suppress(OSError):  # the folder went away or filled up: the next process compiles
            super().save_overload(sig, data)


def cached(dispatcher: Any) -> Any:
    """`dispatcher` (a numba function) caching its compiled code in kernel_folder, where it can.

    It stays uncached when that folder cannot be made or written (numba then finds no locator), and
    when NUMBA_CACHE_LOCATOR_CLASSES replaces every cache's locators with the user's own.
    """
    if getattr(numba.config, "CACHE_LOCATOR_CLASSES", ""):
        return dispatcher
    try:
        cache = _KernelCache(dispatcher.py_func)
    except RuntimeError:  # "cannot cache function ...: no locator available"
        return dispatcher
    dispatcher._cache = cache  # what numba's enable_caching() does with its own FunctionCache
    return dispatcher
