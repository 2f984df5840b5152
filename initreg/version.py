"""initreg's version (as in pyproject.toml), importable without importing the package's modules."""

__version__ = "0.1.0"
