"""Name registries: built-ins registered in code, plugins discovered through entry points.

Two instances live here: `initializers` (group ``initreg.initializers``) and `backends` (group
``initreg.backends``). Entry points are read lazily, cached, and loaded only when their name is asked
for or everything is listed; `refresh()` forgets what was read. A plugin that fails to import (with
any exception, SystemExit and KeyboardInterrupt included), has the wrong type or clashes with a
built-in name is skipped with a PluginWarning naming its distribution; built-ins always win. Only a
real Ctrl-C during a plugin's import stops the program (see `_call_plugin`).

One re-entrant lock, shared by both registries, guards reading entry points, loading plugins,
refresh and every lookup: threads racing to their first lookup see the same, complete registry, and
a plugin whose import uses the registry (of either kind) cannot deadlock against another thread.
"""

from __future__ import annotations

import difflib
import importlib
import inspect
import signal
import threading
import warnings
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Generic, TypeVar

from initreg.errors import InvalidArgumentError, NameClashError, UnknownNameError

if TYPE_CHECKING:
    from importlib.metadata import EntryPoint

    from initreg.backends.base import Backend
    from initreg.initializers.base import Initializer

T = TypeVar("T")
R = TypeVar("R")
BUILT_IN = "initreg"

_LOCK = threading.RLock()


class PluginWarning(UserWarning):
    """A plugin was skipped; the message names its distribution and the reason."""


@dataclass(frozen=True)
class Entry(Generic[T]):
    """A registered object, its canonical name and aliases, and the distribution it came from."""

    name: str
    value: T
    aliases: tuple[str, ...]
    origin: str


@dataclass(frozen=True)
class _Failure:
    """What `_call_plugin` gives when the plugin's code raised: the exception, described."""

    reason: str


def _call_plugin(function: Callable[[], R]) -> R | _Failure:
    """function(), or a _Failure describing anything it raised: Exception, SystemExit, KeyboardInterrupt.

    A KeyboardInterrupt is the user's only when a real SIGINT arrived during the call, and then
    whatever the call raised is raised again. Python delivers signals to the main thread only, which
    notes them (see `_noting_interrupts`); in any other thread a KeyboardInterrupt is the plugin's own.
    """
    with _noting_interrupts() as interrupted:
        try:
            return function()
        except BaseException as error:
            if interrupted:
                raise
            return _Failure(_describe(error))


@contextmanager
def _noting_interrupts() -> Iterator[list[int]]:
    """Yields a list that gets an entry for each SIGINT received in the block, which is then handled as
    before. Only the main thread can install the noting handler; elsewhere the list stays empty.
    """
    received: list[int] = []
    previous = signal.getsignal(signal.SIGINT)
    if not callable(previous) or threading.current_thread() is not threading.main_thread():
        yield received  # no Python handler (ignored, or the default: the OS ends the process), or no signals here
        return
    handle_as_before = previous

    def note(signum: int, frame: Any) -> None:
        received.append(signum)
        handle_as_before(signum, frame)  # by default raises KeyboardInterrupt

    try:
        signal.signal(signal.SIGINT, note)
    except ValueError:  # not the main interpreter
        yield received
        return
    try:
        yield received
    finally:
        signal.signal(signal.SIGINT, previous)


def _describe(error: BaseException) -> str:
    """'TypeName: message', or the type name alone when there is no message or it cannot be made."""
    try:
        message = str(error)
    except Exception:
        message = ""
    return f"{type(error).__name__}: {message}" if message else type(error).__name__


def _entry_points(group: str) -> Iterable[EntryPoint]:
    from importlib.metadata import entry_points  # selectable by group since Python 3.10

    return entry_points(group=group)


def _distribution_name(entry_point: EntryPoint) -> str:
    dist = getattr(entry_point, "dist", None)
    return dist.name if dist is not None else "an unknown distribution"


class Registry(Generic[T]):
    """Names and aliases of one kind of object, with entry-point plugins and did-you-mean errors."""

    def __init__(self, kind: str, group: str, validate: Callable[[Any], str | None]) -> None:
        self.kind = kind
        self.group = group
        self._validate = validate
        self._entries: dict[str, Entry[T]] = {}
        self._lookup: dict[str, str] = {}  # every name and alias -> canonical name
        self._pending: dict[str, list[EntryPoint]] | None = None  # plugin name -> entry points, unloaded
        self._loaded: set[str] = set()  # canonical names of the entries loaded from entry points

    def register(
        self, name: str, value: T, *, aliases: Iterable[str] = (), force: bool = False, origin: str = BUILT_IN
    ) -> T:
        """Adds `value` under `name` and `aliases`; a name already taken is an error unless `force`."""
        names = (name, *aliases)
        with _LOCK:
            if not force:
                taken = [n for n in names if n in self._lookup]
                if taken:
                    owner = self._lookup[taken[0]]
                    raise NameClashError(
                        f"{self.kind} name {taken[0]!r} is already registered (to {owner!r}); "
                        "pass force=True to replace it"
                    )
            for n in names:
                self._forget(n)
            self._entries[name] = Entry(name, value, tuple(aliases), origin)
            for n in names:
                self._lookup[n] = name
        return value

    def _forget(self, name: str) -> None:
        canonical = self._lookup.pop(name, None)
        if canonical is None:
            return
        entry = self._entries.pop(canonical)
        loaded = canonical in self._loaded
        self._loaded.discard(canonical)
        remaining = tuple(a for a in (entry.name, *entry.aliases) if a != name)
        for n in remaining:
            del self._lookup[n]
        if remaining:
            self._entries[remaining[0]] = Entry(remaining[0], entry.value, remaining[1:], entry.origin)
            for n in remaining:
                self._lookup[n] = remaining[0]
            if loaded:
                self._loaded.add(remaining[0])

    def unregister(self, name: str) -> None:
        """Removes the entry that `name` (a name or an alias) belongs to, with all its names."""
        with _LOCK:
            entry = self.entry(name)
            for n in (entry.name, *entry.aliases):
                del self._lookup[n]
            del self._entries[entry.name]
            self._loaded.discard(entry.name)

    def get(self, name: str) -> T:
        """The object registered as `name` (a name or an alias), loading its plugin if need be."""
        return self.entry(name).value

    def entry(self, name: str) -> Entry[T]:
        """The Entry (canonical name, aliases, origin) for a name or alias, loading its plugin if need be."""
        with _LOCK:
            if name not in self._lookup:
                self._load_plugin(name)
            if name not in self._lookup:
                raise UnknownNameError(self._unknown_message(name))
            return self._entries[self._lookup[name]]

    def entries(self) -> list[Entry[T]]:
        """Every entry, plugins included (this loads every plugin), sorted by name."""
        with _LOCK:
            for name in list(self._plugin_names()):
                self._load_plugin(name)
            return sorted(self._entries.values(), key=lambda e: e.name)

    def names(self) -> dict[str, tuple[str, ...]]:
        """Every canonical name with its aliases, plugins included."""
        return {e.name: e.aliases for e in self.entries()}

    def available(self) -> dict[str, str]:
        """Every name and alias, plugins' included, with the distribution it comes from, without loading any plugin.

        A plugin is listed by its entry-point names until it is loaded; one that then fails to load
        (with a PluginWarning) is unknown when asked for.
        """
        with _LOCK:
            found = {name: self._entries[canonical].origin for name, canonical in self._lookup.items()}
            for name, candidates in self._plugin_names().items():
                first = min(candidates, key=lambda e: _distribution_name(e) != BUILT_IN)  # as _load_plugin picks
                found.setdefault(name, _distribution_name(first))
        return dict(sorted(found.items()))

    def __contains__(self, name: object) -> bool:
        if not isinstance(name, str):
            return False
        try:
            self.get(name)
        except UnknownNameError:
            return False
        return True

    def refresh(self) -> None:
        """Forgets the entry points read and loaded so far, so that newly installed plugins are seen.

        Entries added with `register` stay; those loaded from entry points (initreg's own included)
        are read again on the next lookup.
        """
        with _LOCK:
            for name in self._loaded:
                entry = self._entries.pop(name)
                for n in (entry.name, *entry.aliases):
                    self._lookup.pop(n, None)
            self._loaded.clear()
            self._pending = None
            importlib.invalidate_caches()  # path finders cache directory listings; a plugin may be new

    # The methods below run with _LOCK held.

    def _plugin_names(self) -> dict[str, list[EntryPoint]]:
        if self._pending is None:
            self._pending = {}
            for entry_point in _entry_points(self.group):
                self._pending.setdefault(entry_point.name, []).append(entry_point)
        return self._pending

    def _load_plugin(self, name: str) -> None:
        candidates = self._plugin_names().pop(name, [])
        if not candidates:
            return
        # initreg's own entry points are built-ins: they come first and win
        entry_point, *duplicates = sorted(candidates, key=lambda e: _distribution_name(e) != BUILT_IN)
        clash = f"{name!r} clashes with a built-in {self.kind}, which is kept"
        for other in duplicates:
            used = _distribution_name(entry_point)
            self._warn(other, clash if used == BUILT_IN else f"{name!r} is also provided by {used}, which is used")
        if name in self._lookup:
            self._warn(entry_point, clash)
            return
        value = _call_plugin(entry_point.load)  # a plugin's import may fail in any way; it must not break us
        if isinstance(value, _Failure):
            self._warn(entry_point, f"loading {entry_point.value!r} failed: {value.reason}")
            return
        problem = _call_plugin(lambda: self._validate(value))
        if isinstance(problem, _Failure):
            self._warn(entry_point, f"checking {entry_point.value!r} failed: {problem.reason}")
            return
        if problem:
            self._warn(entry_point, f"{entry_point.value!r} {problem}")
            return
        same = [self._entries[n] for n in self._loaded if self._entries[n].value is value]
        if same:  # several entry points naming one object: the first name read is canonical
            canonical = same[0]
            self._entries[canonical.name] = Entry(canonical.name, value, (*canonical.aliases, name), canonical.origin)
            self._lookup[name] = canonical.name
        else:
            self.register(name, value, origin=_distribution_name(entry_point))
            self._loaded.add(name)

    def _warn(self, entry_point: EntryPoint, reason: str) -> None:
        message = (
            f"initreg: skipping {self.kind} plugin {entry_point.name!r} "
            f"from distribution {_distribution_name(entry_point)}: {reason}"
        )
        warnings.warn(message, PluginWarning, stacklevel=4)

    def _unknown_message(self, name: str) -> str:
        known = set(self._lookup) | set(self._plugin_names())
        close = difflib.get_close_matches(name, sorted(known), n=3, cutoff=0.6)
        message = f"unknown {self.kind} {name!r}"
        if close:
            return message + "; did you mean " + " or ".join(repr(c) for c in close) + "?"
        canonical = sorted({self._lookup[n] for n in self._lookup} | set(self._plugin_names()))
        return message + f"; valid: {', '.join(canonical)}"


def _check_initializer(value: Any) -> str | None:
    """None for an Initializer subclass whose constructor's signature can be read (the command needs it)."""
    from initreg.initializers.base import Initializer

    if not (inspect.isclass(value) and issubclass(value, Initializer)):
        return f"is {value!r}, not a subclass of initreg.Initializer"
    try:
        inspect.signature(value)
    except (ValueError, TypeError) as error:
        return f"has a constructor whose signature cannot be read ({_describe(error)})"
    return None


def _check_backend(value: Any) -> str | None:
    from initreg.backends.base import Backend

    return None if isinstance(value, Backend) else f"is {value!r}, not an initreg.backends.Backend instance"


initializers: Registry[type[Initializer]] = Registry("initializer", "initreg.initializers", _check_initializer)
backends: Registry[Backend] = Registry("backend", "initreg.backends", _check_backend)

DEFAULT_BACKEND = "numpy"


def register(
    name: str, *, aliases: Iterable[str] = (), force: bool = False
) -> Callable[[type[Initializer]], type[Initializer]]:
    """Class decorator: ``@register("my_init", aliases=["MyInit"])`` adds an initializer."""

    def decorate(cls: type[Initializer]) -> type[Initializer]:
        problem = _check_initializer(cls)
        if problem:
            raise InvalidArgumentError(f"cannot register {name!r}: it {problem}")
        return initializers.register(name, cls, aliases=aliases, force=force)

    return decorate


def names() -> dict[str, tuple[str, ...]]:
    """Every initializer name with its aliases, plugins included."""
    return initializers.names()


def get(identifier: Any, **config: Any) -> Initializer | Callable[..., Any] | None:
    """An initializer from a name, alias, mapping, instance, class or callable.

    A mapping is a Keras dict (with 'class_name') or ``{name, **config}``: a dict, or a Hydra node
    such as ``cfg.init`` (its `_target_` is ignored). None gives None, as in Keras. Keyword arguments
    are config values: ``get("lecun_normal", seed=3)``. An array (NumPy, torch, JAX, ...) gives an
    initializer that makes exactly that array, as Keras's get(tensor): ``Constant(array, broadcast=False)``,
    which refuses any other shape.
    """
    from initreg.initializers.base import Initializer

    if identifier is None:
        return None
    if isinstance(identifier, str):
        return initializers.get(identifier).from_config(config)
    if isinstance(identifier, Mapping):
        return _from_mapping(identifier, config)
    if isinstance(identifier, Initializer):
        return identifier.from_config({**identifier.get_config(), **config}) if config else identifier
    if inspect.isclass(identifier) and issubclass(identifier, Initializer):
        return identifier.from_config(config)
    if all(hasattr(identifier, attribute) for attribute in ("shape", "dtype", "tolist")):  # an array, as Keras's get
        from initreg.initializers.constant import Constant

        if config:
            raise InvalidArgumentError(f"an array identifier takes no config; got {sorted(config)}")
        return Constant(identifier, broadcast=False)
    if callable(identifier) and not config:
        function: Callable[..., Any] = identifier
        return function
    raise InvalidArgumentError(
        f"could not interpret initializer identifier {identifier!r}; valid: a name such as 'lecun_normal', "
        "a Keras dict or {name, **config}, an Initializer instance or class, an array, or a callable(shape, dtype=None)"
    )


def _from_mapping(mapping: Mapping[str, Any], config: dict[str, Any]) -> Initializer:
    """An initializer from a Keras dict (with 'class_name') or from {name, **config}, such as a Hydra node.

    OmegaConf containers are read as plain values; a `_target_` key is ignored.
    """
    from initreg.schemas import plain
    from initreg.serialization import deserialize

    settings = plain(mapping)
    if "class_name" in settings:
        return deserialize(settings, **config)
    settings = {key: value for key, value in settings.items() if key != "_target_"}
    name = settings.pop("name", None)
    if not isinstance(name, str):
        raise InvalidArgumentError(
            f"initializer config {settings!r} needs a 'name' (e.g. {{name: variance_scaling, scale: 2}}) "
            "or a Keras 'class_name'"
        )
    settings.update(config)
    try:
        return initializers.get(name).from_config(settings)
    except TypeError as error:  # a plugin's constructor rejecting its arguments
        raise InvalidArgumentError(f"initializer {name!r} rejected {settings!r}: {error}") from error


def get_backend(backend: str | Backend | None = None) -> Backend:
    """A ready backend by name (default 'numpy') or as given; raises if it cannot run here."""
    from initreg.backends.base import Backend
    from initreg.errors import BackendUnavailableError

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
    reason = _call_plugin(entry.value.unavailable_reason)
    if isinstance(reason, _Failure):
        why = f"its unavailable_reason() raised {reason.reason}"
        warnings.warn(
            f"initreg: backend {entry.name!r} from distribution {entry.origin} is unavailable: {why}",
            PluginWarning,
            stacklevel=3,
        )
        return why
    return reason
