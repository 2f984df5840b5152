"""The backend registry (entry-point group ``initreg.backends``) and `get_backend`."""

from __future__ import annotations

import warnings
from typing import Any

from initreg.backends import numpy as numpy_backend
from initreg.backends.base import Backend
from initreg.errors import BackendUnavailableError
from initreg.plugin_registry import BUILT_IN, Entry, Failure, PluginWarning, Registry, call_plugin

DEFAULT_BACKEND = "numpy"


def _check_backend(value: Any) -> str | None:
    """None for a Backend instance, else what is wrong with `value`."""
    return None if isinstance(value, Backend) else f"is {value!r}, not an initreg.backends.Backend instance"


backends: Registry[Backend] = Registry("backend", "initreg.backends", _check_backend)
# The default backend is registered here as well as by its entry point, so that the default needs no scan
# of every installed distribution's entry points (about 0.1 s in a large environment).
backends.register(DEFAULT_BACKEND, numpy_backend.backend)


def get_backend(backend: str | Backend | None = None) -> Backend:
    """A ready backend by name (default 'numpy') or as given; raises if it cannot run here."""
    if isinstance(backend, Backend):
        return backend
    entry = backends.entry(DEFAULT_BACKEND if backend is None else backend)
    reason = unavailable_reason(entry)
    if reason:
        raise BackendUnavailableError(f"backend {entry.value.name!r} is unavailable: {reason}")
    return entry.value


def unavailable_reason(entry: Entry[Backend]) -> str | None:
    """None when a registered backend can run here, else why not, as its unavailable_reason() says.

    If that method raises, the exception is the reason, with a PluginWarning naming the distribution.
    """
    if entry.origin == BUILT_IN:  # initreg's own: no guard, which would swap SIGINT handlers on every lookup
        return entry.value.unavailable_reason()
    reason = call_plugin(entry.value.unavailable_reason)
    if isinstance(reason, Failure):
        why = f"its unavailable_reason() raised {reason.reason}"
        warnings.warn(
            f"initreg: backend {entry.name!r} from distribution {entry.origin} is unavailable: {why}",
            PluginWarning,
            stacklevel=3,
        )
        return why
    return reason
