"""An array namespace whose creation functions make arrays on a chosen device by default."""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

# The array API's creation functions that take `device`; *_like functions follow their input instead.
CREATION_FUNCTIONS = frozenset({"arange", "asarray", "empty", "eye", "full", "linspace", "ones", "zeros"})


def _on_device(function: Callable[..., Any], device: Any, *args: Any, **kwargs: Any) -> Any:
    kwargs.setdefault("device", device)
    return function(*args, **kwargs)


class DeviceNamespace:
    """`namespace` (an array-API namespace) with `device` as the default of its creation functions."""

    def __init__(self, namespace: Any, device: Any) -> None:
        self.namespace = namespace
        self.device = device

    def __getattr__(self, name: str) -> Any:
        found = getattr(self.namespace, name)
        return functools.partial(_on_device, found, self.device) if name in CREATION_FUNCTIONS else found
