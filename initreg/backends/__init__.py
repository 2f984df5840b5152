"""Array backends. Each is a Backend instance that an ``initreg.backends`` entry point names."""

from initreg.backends.base import Backend
from initreg.backends.registry import backends, get_backend

__all__ = ["Backend", "backends", "get_backend"]
