"""The registries' public names in one place: a facade over the modules that own them.

The generic `Registry` lives in initreg.plugin_registry, the initializer registry with `register`,
`get`, `serialize` and `deserialize` in initreg.initializers, the backend registry with
`get_backend` in initreg.backends.registry. ``initreg.registry.get`` is ``initreg.get``.
"""

from initreg.backends.registry import DEFAULT_BACKEND, backends, get_backend, unavailable_reason
from initreg.initializers.lookup import get
from initreg.initializers.registry import initializers, names, register
from initreg.plugin_registry import BUILT_IN, Entry, PluginWarning, Registry, ReplacedWarning

__all__ = [
    "BUILT_IN",
    "DEFAULT_BACKEND",
    "Entry",
    "PluginWarning",
    "Registry",
    "ReplacedWarning",
    "backends",
    "get",
    "get_backend",
    "initializers",
    "names",
    "register",
    "unavailable_reason",
]
