"""Every Hydra app sees initreg's config groups: ``init`` (every registered initializer) and ``recipe``.

Hydra imports this module in every app (it scans the hydra_plugins namespace package) and asks every
config source about every config it looks for, so this module imports nothing but Hydra, and initreg
itself is imported only when a path under one of initreg's groups is asked for.

- `InitregSearchPathPlugin` appends the ``initreg://`` source to each app's search path, after the app's
  own configs. Set ``INITREG_HYDRA_PLUGIN=0`` to turn it off (except for the initreg command, whose
  `init` group it is).
- `InitregConfigSource` (the ``initreg://`` scheme) serves the groups `GROUPS`: every yaml in them in
  the public config package initreg.configs.public (presets such as ``init/gpt2_normal``, recipes),
  and ``init/<name>`` for every registered initializer name and alias, plugins' included, whose node is
  the initializer's structured config (initreg.schemas); a preset of the same name wins. Plugins are
  listed by their entry points and loaded only when their node is asked for.

An app's own configs win: its search-path entries come first, and a config it stores in Hydra's
ConfigStore under one of these groups is left to it.
"""

from __future__ import annotations

import os
from typing import Any

from hydra._internal.core_plugins.importlib_resources_config_source import ImportlibResourcesConfigSource
from hydra.core.config_search_path import ConfigSearchPath
from hydra.core.config_store import ConfigStore
from hydra.core.object_type import ObjectType
from hydra.plugins.config_source import ConfigLoadError, ConfigResult, ConfigSource
from hydra.plugins.search_path_plugin import SearchPathPlugin

SWITCH = "INITREG_HYDRA_PLUGIN"  # "0" turns the plugin off
OFF = ("0", "false", "no", "off")
PROVIDER = "initreg"
SCHEME = "initreg"
SOURCE = f"{SCHEME}://"
INIT = "init"
GROUPS = (INIT, "recipe")  # the top-level groups served: a new folder in configs/public/ is listed here
PUBLIC = "pkg://initreg.configs.public"
COMMAND = "pkg://initreg.configs.command"  # the initreg command's own config dir: its init group is initreg://


class InitregSearchPathPlugin(SearchPathPlugin):
    """Appends the ``initreg://`` source unless it is there or the switch is off (the command gets it anyway)."""

    def manipulate_search_path(self, search_path: ConfigSearchPath) -> None:
        paths = [element.path for element in search_path.get_path()]
        if SOURCE in paths:
            return
        if COMMAND in paths or os.environ.get(SWITCH, "1").strip().lower() not in OFF:
            search_path.append(PROVIDER, SOURCE)


class InitregConfigSource(ConfigSource):
    """initreg's groups: the public package's yaml files, and ``init/<name>`` for every registered initializer."""

    def __init__(self, provider: str, path: str) -> None:
        super().__init__(provider=provider, path=path)
        self._names: set[str] | None = None
        self._package: ConfigSource | None = None

    @staticmethod
    def scheme() -> str:
        return SCHEME

    def available(self) -> bool:
        return True

    def is_group(self, config_path: str) -> bool:
        path = config_path.strip("/")
        return path in ("", INIT) or (_ours(path) and self._public().is_group(path))

    def is_config(self, config_path: str) -> bool:
        path = _normalized(config_path)
        if not _ours(path) or _stored_by_the_app(path):
            return False
        return self._public().is_config(path) or self._initializer(path) is not None

    def list(self, config_path: str, results_filter: ObjectType | None) -> list[str]:
        path = config_path.strip("/")
        if path == "":
            groups = [group for group in GROUPS if self.is_group(group)]
            return groups if results_filter in (None, ObjectType.GROUP) else []
        if not _ours(path):
            return []
        found = set(self._public().list(path, results_filter)) if self._public().is_group(path) else set()
        if path == INIT and results_filter in (None, ObjectType.CONFIG):
            found |= self._registered()
        return sorted(name for name in found if not _stored_by_the_app(f"{path}/{name}"))

    def load_config(self, config_path: str) -> ConfigResult:
        path = _normalized(config_path)
        if self._public().is_config(path):
            result = self._public().load_config(path)
            result.provider, result.path = self.provider, self.full_path()
            return result
        name = self._initializer(path)
        if name is None:
            raise ConfigLoadError(f"{SOURCE} has no config {config_path!r}")
        from omegaconf import OmegaConf

        from initreg.errors import InitregError
        from initreg.schemas import node

        try:
            config = OmegaConf.structured(node(name))
        except InitregError as error:  # a plugin that failed to load, say
            raise ConfigLoadError(f"{INIT}/{name}: {error}") from error
        header: dict[str, Any] = {"package": None}
        return ConfigResult(provider=self.provider, path=self.full_path(), config=config, header=header)

    def _public(self) -> ConfigSource:
        """Hydra's own pkg:// source for initreg.configs.public (which imports initreg on first use)."""
        if self._package is None:
            self._package = ImportlibResourcesConfigSource(self.provider, PUBLIC)
        return self._package

    def _initializer(self, path: str) -> str | None:
        """The initializer name of ``init/<name>`` if it is registered, else None."""
        group, _, name = path.rpartition("/")
        return name if group == INIT and name in self._registered() else None

    def _registered(self) -> set[str]:
        """Every initializer name and alias, read once per source (Hydra makes one per composition)."""
        if self._names is None:
            from initreg.registry import initializers

            self._names = set(initializers.available())
        return self._names


def _normalized(config_path: str) -> str:
    return config_path.strip("/").removesuffix(".yaml")


def _ours(path: str) -> bool:
    """Whether `path` is one of initreg's groups or lies under one."""
    return path.partition("/")[0] in GROUPS


def _stored_by_the_app(path: str) -> bool:
    """Whether the app stored the config `path` in Hydra's ConfigStore (searched after plugins' sources)."""
    return ConfigStore.instance().get_type(f"{path}.yaml") == ObjectType.CONFIG
