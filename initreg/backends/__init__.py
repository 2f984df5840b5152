"""Array backends. Each is a Backend instance that an ``initreg.backends`` entry point names."""

from initreg.backends.base import Backend

__all__ = ["Backend"]
