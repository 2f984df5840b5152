"""A generic name registry: objects registered in code, plugins discovered through entry points.

`Registry[T]` knows names, aliases, entry points and plugin guards, and no kind of object: the
initializer family (initreg.initializers.registry) and the backends (initreg.backends.registry) each
own one. Entry points are read lazily, cached, and loaded only when their name is asked for or
everything is listed; `refresh()` forgets what was read. A plugin that fails to import (with any
exception, SystemExit and KeyboardInterrupt included), has the wrong type or clashes with a built-in
name is skipped with a PluginWarning naming its distribution; built-ins always win, and a plugin's
import may not replace one with ``register(..., force=True)`` either. Only a real signal during a
plugin's import (Ctrl-C, or SIGTERM, SIGHUP or SIGQUIT where the program handles them) stops the
program (see `call_plugin`). Registering a name again with an object of the same qualified name
(module and qualname: a module reloaded, a notebook cell run again) replaces the entry with a
ReplacedWarning; another object under a taken name is a NameClashError.

One re-entrant lock, shared by every registry, guards their tables; it is never held while a
plugin's code runs. A name being loaded is claimed by the loading thread: other threads asking for
that name wait until it is loaded, while lookups of any other name go ahead. A plugin whose import
looks up the name being loaded (its own, or one whose loading waits, through other threads, for this
thread) finds it unknown instead of waiting forever.
"""

from __future__ import annotations

import difflib
import importlib
import signal
import threading
import warnings
from collections.abc import Callable, Iterable, Iterator
from contextlib import AbstractContextManager, contextmanager, nullcontext
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Generic, TypeVar, cast

from initreg.errors import NameClashError, UnknownNameError

if TYPE_CHECKING:
    from importlib.metadata import EntryPoint

T = TypeVar("T")
R = TypeVar("R")
BUILT_IN = "initreg"
# a context entered around a plugin's load, given the entry point's name and distribution
WhileLoading = Callable[[str, str], AbstractContextManager[Any]]
# signals whose Python handler stops the program: Ctrl-C's, and io.exit_on_signal where the command installs it
STOPPING_SIGNALS = tuple(
    getattr(signal, name) for name in ("SIGINT", "SIGTERM", "SIGHUP", "SIGQUIT") if hasattr(signal, name)
)

_LOCK = threading.RLock()  # guards every registry's tables; never held while a plugin's code runs
_WAITING: dict[int, _Loading] = {}  # thread id -> the load it waits for (under _LOCK)
_IMPORTING = threading.local()  # .distribution: the plugin distribution this thread is importing, if any


class PluginWarning(UserWarning):
    """A plugin was skipped; the message names its distribution and the reason."""


class ReplacedWarning(UserWarning):
    """A name was registered again by an object of the same qualified name, which replaced the old one."""


@dataclass(frozen=True)
class Entry(Generic[T]):
    """A registered object, its canonical name and aliases, and the distribution it came from."""

    name: str
    value: T
    aliases: tuple[str, ...]
    origin: str


@dataclass(frozen=True)
class _Loading:
    """A plugin name claimed by the thread loading it; `done` is set once it is loaded or skipped."""

    entry_point: EntryPoint
    thread: int
    generation: int
    done: threading.Event = field(default_factory=threading.Event)


@dataclass(frozen=True)
class Failure:
    """What `call_plugin` gives when the plugin's code raised: the exception, described."""

    reason: str


def call_plugin(function: Callable[[], R]) -> R | Failure:
    """function(), or a Failure describing anything it raised: Exception, SystemExit, KeyboardInterrupt.

    A KeyboardInterrupt or SystemExit is the user's only when one of STOPPING_SIGNALS arrived during
    the call (its handler raised it: Ctrl-C, or io.exit_on_signal), and then whatever the call raised
    is raised again. Python delivers signals to the main thread only, which notes them (see
    `_noting_signals`); in any other thread a KeyboardInterrupt or SystemExit is the plugin's own.
    """
    with _noting_signals() as received:
        try:
            return function()
        except BaseException as error:
            if received:
                raise
            return Failure(describe(error))


@contextmanager
def _noting_signals() -> Iterator[list[int]]:
    """Yields a list that gets an entry for each of STOPPING_SIGNALS received in the block, which is then
    handled as before. Only the main thread can install the noting handlers, and only for a signal with
    a Python handler (ignored, or the default, the OS ends the process); elsewhere the list stays empty.
    """
    received: list[int] = []
    if threading.current_thread() is not threading.main_thread():
        yield received
        return
    previous = {signum: signal.getsignal(signum) for signum in STOPPING_SIGNALS}
    noted = {signum: handler for signum, handler in previous.items() if callable(handler)}

    def note(signum: int, frame: Any) -> None:
        received.append(signum)
        noted[signum](signum, frame)  # Ctrl-C's default raises KeyboardInterrupt, exit_on_signal SystemExit

    installed = []
    try:
        for signum in noted:
            signal.signal(signum, note)
            installed.append(signum)
    except ValueError:  # not the main interpreter
        pass
    try:
        yield received
    finally:
        for signum in installed:
            signal.signal(signum, noted[signum])


@contextmanager
def _importing(distribution: str) -> Iterator[None]:
    """Marks this thread as importing a plugin of `distribution` (see `_importing_distribution`)."""
    outer = _importing_distribution()
    _IMPORTING.distribution = distribution
    try:
        yield
    finally:
        _IMPORTING.distribution = outer


def _importing_distribution() -> str | None:
    """The distribution whose plugin this thread is importing, or None."""
    distribution: str | None = getattr(_IMPORTING, "distribution", None)
    return distribution


def _would_deadlock(loading: _Loading) -> bool:
    """Whether waiting for `loading` would wait for this thread: it is loading it, or its loader waits
    (through the loads other threads wait for) for a load of this thread."""
    me, thread, seen = threading.get_ident(), loading.thread, set()
    while thread not in seen:
        if thread == me:
            return True
        seen.add(thread)
        waited = _WAITING.get(thread)
        if waited is None:
            return False
        thread = waited.thread
    return False


def describe(error: BaseException) -> str:
    """'TypeName: message', or the type name alone when there is no message or it cannot be made."""
    try:
        message = str(error)
    except Exception:
        message = ""
    return f"{type(error).__name__}: {message}" if message else type(error).__name__


def _entry_points(group: str) -> Iterable[EntryPoint]:
    from importlib.metadata import entry_points  # 40 ms to import: only when a plugin is looked for

    return entry_points(group=group)  # selectable by group since Python 3.10


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
        self._read_order: dict[str, int] = {}  # plugin name -> its position among the entry points read
        self._loading: dict[str, _Loading] = {}  # plugin name -> its load in progress
        self._loaded: set[str] = set()  # canonical names of the entries loaded from entry points
        self._generation = 0  # counts refreshes: a load begun before one is not kept

    def register(
        self, name: str, value: T, *, aliases: Iterable[str] = (), force: bool = False, origin: str | None = None
    ) -> T:
        """Adds `value` under `name` and `aliases`; a name already taken is an error unless `force`.

        A taken name whose object has the qualified name of `value` (the same class defined again: a
        module reloaded, a notebook cell run again) is no clash: that entry, with all its names, is
        replaced, with a ReplacedWarning.

        `origin` defaults to the distribution whose plugin this thread is importing, else initreg. A
        plugin's import may add names but not replace a built-in one, even with `force`: that is a
        NameClashError, which skips the plugin with a PluginWarning (a name's meaning must not depend on
        which plugins happened to be imported first).
        """
        names = (name, *aliases)
        importer = _importing_distribution()
        with _LOCK:
            if importer not in (None, BUILT_IN):
                built_in = [n for n in names if n in self._lookup and self._entries[self._lookup[n]].origin == BUILT_IN]
                if built_in:
                    raise NameClashError(
                        f"{self.kind} name {built_in[0]!r} is built in; a plugin of distribution {importer} "
                        "cannot replace it, not even with force=True"
                    )
            taken = [n for n in names if n in self._lookup]
            if taken and not force:
                replaced = {self._lookup[n] for n in taken}
                clash = next(
                    (n for n in taken if not _same_qualified_name(self._entries[self._lookup[n]].value, value)), None
                )
                if clash is not None:
                    raise NameClashError(
                        f"{self.kind} name {clash!r} is already registered (to {self._lookup[clash]!r}); "
                        "pass force=True to replace it"
                    )
                warnings.warn(  # before any change: a warning turned into an error leaves the entry as it was
                    f"initreg: {self.kind} {_qualified_name(value)} registered again as {name!r}; "
                    "the new definition replaces the old one",
                    ReplacedWarning,
                    stacklevel=3,
                )
                for canonical in replaced:  # a new version of the same object: every old name goes
                    old = self._entries[canonical]
                    for n in (old.name, *old.aliases):
                        self._forget(n)
            for n in names:
                self._forget(n)
            self._entries[name] = Entry(name, value, tuple(aliases), origin or importer or BUILT_IN)
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
        self.entry(name)  # loads its plugin, if need be, without the lock
        with _LOCK:
            entry = self._known_entry(name)
            for n in (entry.name, *entry.aliases):
                del self._lookup[n]
            del self._entries[entry.name]
            self._loaded.discard(entry.name)

    def get(self, name: str) -> T:
        """The object registered as `name` (a name or an alias), loading its plugin if need be."""
        return self.entry(name).value

    def entry(self, name: str) -> Entry[T]:
        """The Entry (canonical name, aliases, origin) for a name or alias, loading its plugin if need be.

        Waits only for a load of `name` in progress in another thread, never for other plugins.
        """
        with _LOCK:
            known = name in self._lookup
        if not known:
            self._load_plugin(name)
        with _LOCK:
            return self._known_entry(name)

    def entries(
        self,
        *,
        load_plugins: bool = True,
        while_loading: WhileLoading | None = None,
    ) -> list[Entry[T]]:
        """Every entry, sorted by name: plugins included (this loads every plugin), or only those loaded.

        `while_loading(name, distribution)`, if given, is a context entered around each plugin's load.
        """
        if load_plugins:
            with _LOCK:
                names = list(self._plugin_names())
            for name in names:
                self._load_plugin(name, while_loading)
        with _LOCK:
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
            names = {*self._lookup, *self._loading, *self._plugin_names()}
            return {name: cast(str, self.origin(name)) for name in sorted(names)}

    def origin(self, name: str) -> str | None:
        """The distribution `name` comes from (BUILT_IN for initreg's), None if it is no name or alias, without
        loading a plugin; entry points are read only for a name that is not registered already."""
        with _LOCK:
            if name in self._lookup:
                return self._entries[self._lookup[name]].origin
            if name in self._loading:
                return _distribution_name(self._loading[name].entry_point)
            candidates = self._plugin_names().get(name)
            return None if candidates is None else _distribution_name(_chosen(candidates)[0])

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
        are read again on the next lookup. A load in progress in another thread is not kept.
        """
        with _LOCK:
            for name in self._loaded:
                entry = self._entries.pop(name)
                for n in (entry.name, *entry.aliases):
                    self._lookup.pop(n, None)
            self._loaded.clear()
            self._pending = None
            self._generation += 1
            importlib.invalidate_caches()  # path finders cache directory listings; a plugin may be new

    def _load_plugin(self, name: str, while_loading: WhileLoading | None = None) -> None:
        """Loads the plugin named `name`, if one is pending, or waits for the thread that is loading it.

        Returns without waiting where waiting would deadlock (see `_would_deadlock`).
        """
        me = threading.get_ident()
        while True:
            with _LOCK:
                loading = self._loading.get(name)
                if loading is None:
                    candidates = self._plugin_names().pop(name, [])
                    if not candidates:
                        return
                    loading = self._loading[name] = _Loading(_chosen(candidates)[0], me, self._generation)
                    break
                if _would_deadlock(loading):
                    return
                _WAITING[me] = loading
            try:
                loading.done.wait()
            finally:
                with _LOCK:
                    del _WAITING[me]
        try:
            with (
                nullcontext() if while_loading is None else while_loading(name, _distribution_name(loading.entry_point))
            ):
                self._load_candidates(name, candidates, loading.generation)
        finally:
            with _LOCK:
                del self._loading[name]
            loading.done.set()

    def _load_candidates(self, name: str, candidates: list[EntryPoint], generation: int) -> None:
        """Imports the chosen entry point of `name` and registers it, or warns why it is skipped."""
        entry_point, duplicates = _chosen(candidates)
        clash = f"{name!r} clashes with a built-in {self.kind}, which is kept"
        for other in duplicates:
            used = _distribution_name(entry_point)
            self._warn(other, clash if used == BUILT_IN else f"{name!r} is also provided by {used}, which is used")
        with _LOCK:
            taken = name in self._lookup
        if taken:
            if _distribution_name(entry_point) != BUILT_IN:  # else initreg's own entry point for what it registered
                self._warn(entry_point, clash)
            return
        with _importing(_distribution_name(entry_point)):
            value = call_plugin(entry_point.load)  # a plugin's import may fail in any way; it must not break us
        if isinstance(value, Failure):
            self._warn(entry_point, f"loading {entry_point.value!r} failed: {value.reason}")
            return
        problem = call_plugin(lambda: self._validate(value))
        if isinstance(problem, Failure):
            self._warn(entry_point, f"checking {entry_point.value!r} failed: {problem.reason}")
            return
        if problem:
            self._warn(entry_point, f"{entry_point.value!r} {problem}")
            return
        with _LOCK:
            if generation == self._generation:  # else refreshed meanwhile: forgotten, read again when asked for
                self._add_loaded(name, value, entry_point)

    def _add_loaded(self, name: str, value: T, entry_point: EntryPoint) -> None:
        """Registers a loaded plugin. Several entry points naming one object make one entry, whichever was
        loaded first: its canonical name is the first read in lower case (as built-ins' are), else the first
        read; the others are aliases (a class name, say)."""
        same = [self._entries[n] for n in self._loaded if self._entries[n].value is value]
        if same:
            loaded = same[0]
            first, *aliases = sorted((loaded.name, *loaded.aliases, name), key=self._canonical_rank)
            del self._entries[loaded.name]
            self._loaded.discard(loaded.name)
            self._entries[first] = Entry(first, value, tuple(aliases), loaded.origin)
            self._loaded.add(first)
            for n in (first, *aliases):
                self._lookup[n] = first
        elif name in self._lookup:  # registered meanwhile: by the plugin's own import, or by another thread
            if self._entries[self._lookup[name]].value is not value:
                self._warn(entry_point, f"{name!r} was registered meanwhile to another {self.kind}, which is kept")
        else:
            self.register(name, value, origin=_distribution_name(entry_point))
            self._loaded.add(name)

    def _canonical_rank(self, name: str) -> tuple[bool, int]:
        """Sorts names of one object: lower-case names first, each kind in the order read."""
        return name != name.lower(), self._read_order.get(name, 0)

    def _warn(self, entry_point: EntryPoint, reason: str) -> None:
        message = (
            f"initreg: skipping {self.kind} plugin {entry_point.name!r} "
            f"from distribution {_distribution_name(entry_point)}: {reason}"
        )
        warnings.warn(message, PluginWarning, stacklevel=4)

    # The methods below run with _LOCK held.

    def _plugin_names(self) -> dict[str, list[EntryPoint]]:
        if self._pending is None:
            self._pending = {}
            for entry_point in _entry_points(self.group):
                self._pending.setdefault(entry_point.name, []).append(entry_point)
            self._read_order = {name: position for position, name in enumerate(self._pending)}
        return self._pending

    def _known_entry(self, name: str) -> Entry[T]:
        if name not in self._lookup:
            raise UnknownNameError(self._unknown_message(name))
        return self._entries[self._lookup[name]]

    def _unknown_message(self, name: str) -> str:
        known = set(self._lookup) | set(self._plugin_names())
        close = difflib.get_close_matches(name, sorted(known), n=3, cutoff=0.6)
        message = f"unknown {self.kind} {name!r}"
        if close:
            return message + "; did you mean " + " or ".join(repr(c) for c in close) + "?"
        canonical = sorted({self._lookup[n] for n in self._lookup} | set(self._plugin_names()))
        return message + f"; valid: {', '.join(canonical)}"


def _qualified_name(value: Any) -> str | None:
    """'module.qualname' of a class or function, or None for an object without both (an instance)."""
    module, qualname = getattr(value, "__module__", None), getattr(value, "__qualname__", None)
    return f"{module}.{qualname}" if isinstance(module, str) and isinstance(qualname, str) else None


def _same_qualified_name(old: Any, new: Any) -> bool:
    """Whether `new` is a new version of `old`: both have the same qualified name."""
    name = _qualified_name(new)
    return name is not None and name == _qualified_name(old)


def _chosen(candidates: list[EntryPoint]) -> tuple[EntryPoint, list[EntryPoint]]:
    """The entry point used for a name and the others: initreg's own come first and win, then sys.path order."""
    entry_point, *others = sorted(candidates, key=lambda e: _distribution_name(e) != BUILT_IN)
    return entry_point, others
