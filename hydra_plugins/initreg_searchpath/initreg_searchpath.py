"""Every Hydra app sees initreg's config groups: ``init`` (every registered initializer) and the public configs.

Hydra imports this module in every app (it scans the hydra_plugins namespace package), so it imports
nothing but Hydra at import time; initreg itself is imported only when the ``init`` group is asked for.

- `InitregSearchPathPlugin` appends two config sources to each app's search path, after the app's own:
  ``pkg://initreg.configs.public`` (presets such as ``init/gpt2_normal`` and the ``recipe`` group) and
  ``initreg://``. Set ``INITREG_HYDRA_PLUGIN=0`` to turn it off.
- `InitregConfigSource` (the ``initreg://`` scheme) serves ``init/<name>`` for every registered
  initializer name and alias, plugins' included: plugins are listed by their entry points and loaded
  only when their node is asked for. A node is the initializer's structured config (initreg.schemas).

An app's own configs win: its search-path entries come first, and a name it stores in Hydra's
ConfigStore under ``init`` is left to it.
"""

from __future__ import annotations

import os
from typing import Any

from hydra.core.config_search_path import ConfigSearchPath
from hydra.core.config_store import ConfigStore
from hydra.core.object_type import ObjectType
from hydra.plugins.config_source import ConfigLoadError, ConfigResult, ConfigSource
from hydra.plugins.search_path_plugin import SearchPathPlugin

SWITCH = "INITREG_HYDRA_PLUGIN"  # "0" turns the plugin off
OFF = ("0", "false", "no", "off")
PROVIDER = "initreg"
SCHEME = "initreg"
GROUP = "init"
PUBLIC = "pkg://initreg.configs.public"
COMMAND = "pkg://initreg.configs"  # the initreg command's own config dir, which lists both sources itself
SOURCES = (PUBLIC, f"{SCHEME}://")


class InitregSearchPathPlugin(SearchPathPlugin):
    """Appends initreg's public configs and the ``initreg://`` source, unless turned off or already there."""

    def manipulate_search_path(self, search_path: ConfigSearchPath) -> None:
        if os.environ.get(SWITCH, "1").strip().lower() in OFF:
            return
        if any(element.path in (*SOURCES, COMMAND) for element in search_path.get_path()):
            return
        for path in SOURCES:
            search_path.append(PROVIDER, path)


class InitregConfigSource(ConfigSource):
    """The ``init`` group: ``init/<name>`` for every registered initializer name and alias."""

    def __init__(self, provider: str, path: str) -> None:
        super().__init__(provider=provider, path=path)
        self._names: set[str] | None = None

    @staticmethod
    def scheme() -> str:
        return SCHEME

    def available(self) -> bool:
        return True

    def is_group(self, config_path: str) -> bool:
        return config_path.strip("/") in ("", GROUP)

    def is_config(self, config_path: str) -> bool:
        name = _option(config_path)
        return name is not None and not _stored_by_the_app(name) and name in self._registered()

    def list(self, config_path: str, results_filter: ObjectType | None) -> list[str]:
        path = config_path.strip("/")
        if path == "" and results_filter in (None, ObjectType.GROUP):
            return [GROUP]
        if path == GROUP and results_filter in (None, ObjectType.CONFIG):
            return sorted(name for name in self._registered() if not _stored_by_the_app(name))
        return []

    def load_config(self, config_path: str) -> ConfigResult:
        from omegaconf import OmegaConf

        from initreg.errors import InitregError
        from initreg.schemas import node

        name = _option(config_path)
        if name is None:
            raise ConfigLoadError(f"{SCHEME}:// has no config {config_path!r}; it serves {GROUP}/<name>")
        try:
            config = OmegaConf.structured(node(name))
        except InitregError as error:  # a plugin that failed to load, say
            raise ConfigLoadError(f"{GROUP}/{name}: {error}") from error
        header: dict[str, Any] = {"package": None}
        return ConfigResult(provider=self.provider, path=f"{SCHEME}://{self.path}", config=config, header=header)

    def _registered(self) -> set[str]:
        """Every initializer name and alias, read once per source (Hydra makes one per composition)."""
        if self._names is None:
            from initreg.registry import initializers

            self._names = set(initializers.available())
        return self._names


def _option(config_path: str) -> str | None:
    """The option name of ``init/<name>`` (with or without .yaml), or None for any other path."""
    group, _, name = config_path.strip("/").removesuffix(".yaml").rpartition("/")
    return name if group == GROUP and name else None


def _stored_by_the_app(name: str) -> bool:
    """Whether the app stored init/<name> in Hydra's ConfigStore (searched after plugins' sources)."""
    return ConfigStore.instance().get_type(f"{GROUP}/{name}.yaml") == ObjectType.CONFIG
