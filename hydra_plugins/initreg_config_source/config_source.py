"""The ``initreg://`` config source: initreg's groups in a Hydra app that asks for them.

An app opts in with one line in its primary config, as for any other config source:

    hydra:
      searchpath: [initreg://]

and then has the groups ``init`` (every registered initializer name and alias, plugins' included, and
the presets of initreg.configs.public such as ``init/gpt2_normal``) and ``recipe`` (the recipes of
initreg.configs.public). An app that does not opt in sees nothing of initreg: Hydra imports this module
in every app (it scans the hydra_plugins namespace package for config sources), so it imports nothing
but Hydra, and nothing here runs until a search path names ``initreg://``.

A path after the scheme picks what is served (`SERVED`): ``initreg://`` the public groups above,
``initreg://command`` the ``backend`` group of the initreg command (every registered backend name).
Either way the group of a registry (`Served.registered`) has one option per registered name, made on
demand and typed: ``init/<name>`` is the initializer's structured config (initreg.schemas), a preset is
merged onto the structured config of the initializer it names, ``backend/<name>`` is ``{name: <name>}``.
A yaml in the package wins over a registered name of the same spelling (choosing it warns when the
name is a plugin's). Plugins are listed by their entry points and loaded only when their node is asked
for; entry points are read only for a name that initreg does not register itself.

A name that is not there but close to one that is, or that a known plugin registers
(initreg.known_plugins), loads as a one-line error that says so. The app's own configs win: its
search-path entries before ``initreg://`` come first, and a config it stores in Hydra's ConfigStore
under one of these groups is left to it.
"""

from __future__ import annotations

import warnings
from importlib import resources
from typing import TYPE_CHECKING, Any, NamedTuple

from hydra.core.config_store import ConfigStore
from hydra.core.object_type import ObjectType
from hydra.errors import MissingConfigException
from hydra.plugins.config_source import ConfigLoadError, ConfigResult, ConfigSource

if TYPE_CHECKING:
    from importlib.resources.abc import Traversable

SCHEME = "initreg"
INIT, RECIPE, BACKEND = "init", "recipe", "backend"
YAML = ".yaml"


class Served(NamedTuple):  # not a dataclass: Hydra's plugin scan runs this module outside sys.modules
    """What one ``initreg://<path>`` serves."""

    groups: tuple[str, ...]  # its top-level groups
    registered: str  # the group with one option per registered name
    registry: str  # that group's registry, an attribute of initreg.registry
    package: str | None = None  # a package whose folders hold yaml options of `groups`


SERVED = {
    "": Served((INIT, RECIPE), INIT, "initializers", "initreg.configs.public"),
    "command": Served((BACKEND,), BACKEND, "backends"),
}


class InitregConfigSource(ConfigSource):
    """initreg's groups (`SERVED`): yaml files of a package, and one option per registered name."""

    def __init__(self, provider: str, path: str) -> None:
        super().__init__(provider=provider, path=path)
        self.path = self.path.strip("/")
        self._names: dict[str, str] | None = None

    @staticmethod
    def scheme() -> str:
        return SCHEME

    def available(self) -> bool:
        return self.path in SERVED

    def is_group(self, config_path: str) -> bool:
        path = config_path.strip("/")
        if path == "" or path == self._served().registered:
            return True
        folder = self._file(path)
        return folder is not None and folder.is_dir()

    def is_config(self, config_path: str) -> bool:
        path = _normalized(config_path)
        if _stored_by_the_app(path) or self._group_of(path) is None:
            return False
        return self._yaml(path) is not None or self._registered_name(path) is not None or bool(self._missing(path))

    def list(self, config_path: str, results_filter: ObjectType | None) -> list[str]:
        path = config_path.strip("/")
        if path == "":
            groups = [group for group in self._served().groups if self.is_group(group)]
            return groups if results_filter in (None, ObjectType.GROUP) else []
        if self._group_of(path) is None:
            return []
        found: list[str] = []
        folder = self._file(path)
        if folder is not None and folder.is_dir():
            for item in folder.iterdir():
                self._list_add_result(found, f"{path}/{item.name}", item.name, results_filter)
        if path == self._served().registered and results_filter in (None, ObjectType.CONFIG):
            found.extend(self._registered())
        return sorted(name for name in set(found) if not _stored_by_the_app(f"{path}/{name}"))

    def load_config(self, config_path: str) -> ConfigResult:
        path = _normalized(config_path)
        yaml = self._yaml(path)
        if yaml is not None:
            text = yaml.read_text(encoding="utf-8")
            config = self._typed_preset(path, _loaded(text)) if path.startswith(INIT + "/") else _loaded(text)
            self._warn_if_hiding(path)
            return self._result(config, self._get_header_dict(text))
        name = self._registered_name(path)
        if name is not None:
            return self._result(self._node(name), {"package": None})
        missing = self._missing(path)
        if missing is not None:  # Hydra prints a MissingConfigException as its message alone
            group, _, name = path.rpartition("/")
            raise MissingConfigException(missing, f"{group}/{name}", self.list(group, ObjectType.CONFIG))
        raise ConfigLoadError(f"{SCHEME}://{self.path} has no config {config_path!r}")

    # --- what is served ----------------------------------------------------------------------------

    def _served(self) -> Served:
        return SERVED.get(self.path, Served((), "", ""))

    def _group_of(self, path: str) -> str | None:
        """The top-level group `path` lies in, if this source serves it."""
        group = path.partition("/")[0]
        return group if group in self._served().groups else None

    def _file(self, path: str) -> Traversable | None:
        """`path` in the package of yaml options (which imports initreg on first use), if there is one."""
        package = self._served().package
        if package is None or self._group_of(path) is None:
            return None
        return resources.files(package).joinpath(path)

    def _yaml(self, path: str) -> Traversable | None:
        found = self._file(path + YAML)
        return found if found is not None and found.is_file() else None

    def _registered_name(self, path: str) -> str | None:
        """The name of ``<registered group>/<name>`` if it is registered (plugins are not loaded), else None."""
        group, _, name = path.rpartition("/")
        return name if group == self._served().registered and self._registry().origin(name) is not None else None

    def _registered(self) -> dict[str, str]:
        """Every registered name and alias with its distribution, read once per source (Hydra makes one
        per composition); plugins are not loaded."""
        if self._names is None:
            self._names = self._registry().available()
        return self._names

    def _warn_if_hiding(self, path: str) -> None:
        """Warns when the yaml option `path` wins over a plugin's registered name of the same spelling."""
        group, _, name = path.rpartition("/")
        if group != self._served().registered:
            return
        from initreg.registry import BUILT_IN

        origin = self._registry().origin(name)
        if origin is not None and origin != BUILT_IN:
            message = f"{group}={name} selects the shipped {path}{YAML}, which hides the {group} {name!r} registered by"
            warnings.warn(f"{message} {origin}", stacklevel=2)

    def _registry(self) -> Any:
        from initreg import registry

        return getattr(registry, self._served().registry)

    def _node(self, name: str) -> Any:
        """The config of the registered `name`: its structured config (initializers) or ``{name: <name>}``."""
        from omegaconf import OmegaConf

        from initreg.errors import InitregError
        from initreg.schemas import node

        if self._served().registered != INIT:
            return OmegaConf.create({"name": name})
        try:
            return OmegaConf.structured(node(name))
        except InitregError as error:  # a plugin that failed to load, say
            raise ConfigLoadError(f"{INIT}/{name}: {error}") from error

    def _typed_preset(self, path: str, preset: Any) -> Any:
        """A preset merged onto the structured config of the initializer it names, so that its values are
        checked as a generated node's are."""
        from omegaconf import OmegaConf
        from omegaconf.errors import OmegaConfBaseException

        name = preset.get("name")
        if not isinstance(name, str) or self._registry().origin(name) is None:
            raise ConfigLoadError(f"{path}{YAML}: 'name' must be a registered initializer, not {name!r}")
        try:
            return OmegaConf.merge(self._node(name), preset)
        except OmegaConfBaseException as error:
            raise ConfigLoadError(f"{path}{YAML}: {str(error).splitlines()[0]}") from error

    def _missing(self, path: str) -> str | None:
        """The one-line message for ``<registered group>/<name>`` that is not there, when there is something to
        say: a known plugin registers it, or a close name is there. Else None (Hydra lists the options)."""
        group, _, name = path.rpartition("/")
        if group != self._served().registered or not name:
            return None
        from initreg.known_plugins import close_matches, provider, unknown_option

        options = set(self.list(group, ObjectType.CONFIG))
        if provider(group, name) is None and not close_matches(name, options):
            return None
        aliases = {alias for entry in self._registry().entries(load_plugins=False) for alias in entry.aliases}
        return unknown_option(group, name, options, aliases)

    def _result(self, config: Any, header: dict[str, str | None]) -> ConfigResult:
        return ConfigResult(provider=self.provider, path=self.full_path(), config=config, header=header)


def _normalized(config_path: str) -> str:
    return config_path.strip("/").removesuffix(YAML)


def _loaded(text: str) -> Any:
    from omegaconf import OmegaConf

    return OmegaConf.create(text)


def _stored_by_the_app(path: str) -> bool:
    """Whether the app stored the config `path` in Hydra's ConfigStore (searched after config sources)."""
    return ConfigStore.instance().get_type(f"{path}{YAML}") == ObjectType.CONFIG
