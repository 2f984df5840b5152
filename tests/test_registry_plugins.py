"""Entry-point plugins, with fake distributions: a *.dist-info folder on sys.path in a temporary folder.

Covers lazy, cached discovery and refresh(), each broken-plugin case (a PluginWarning naming the
distribution and the reason, everything else still working), built-ins winning clashes (a plugin's
import cannot replace one with force=True either), duplicates across distributions, and `initreg list`
(which must not import an optional array library).
"""

from __future__ import annotations

import functools
import io
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import pytest

from initreg import LecunNormal, plugin_registry, registry
from initreg.backends.base import Backend
from initreg.errors import BackendUnavailableError, InvalidArgumentError, UnknownNameError
from initreg.listing import print_listing
from initreg.registry import PluginWarning

FAKE_PREFIX = "initreg_fake_"
INITIALIZERS = "initreg.initializers"
BACKENDS = "initreg.backends"

GOOD_INITIALIZER = """
from initreg.initializers import RandomNormal

class Wide(RandomNormal):
    '''N(0, 1), registered by a plugin.'''

    def __init__(self, seed=None):
        super().__init__(mean=0.0, stddev=1.0, seed=seed)

    def get_config(self):
        return {"seed": self._init_seed}
"""

BACKEND_MODULE = "from initreg.backends.base import Backend\nbackend = Backend({name!r}, 'numpy')\n"

AddDistribution = Callable[..., Path]
WriteDistribution = Callable[..., None]


def _refresh_all() -> None:
    registry.initializers.refresh()
    registry.backends.refresh()


@pytest.fixture
def add_distribution(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, write_distribution: WriteDistribution
) -> Iterator[AddDistribution]:
    """add_distribution(name, entry_points, modules): installs a fake distribution in its own sys.path folder.

    Folders added later come first on sys.path. Registries are refreshed before and after the test.
    """
    folders = iter(range(1000))

    def add(name: str, entry_points: dict[str, dict[str, str]], modules: dict[str, str] | None = None) -> Path:
        root = tmp_path / f"site{next(folders)}"
        root.mkdir()
        write_distribution(root, name, entry_points, modules)
        monkeypatch.syspath_prepend(str(root))
        return root

    _refresh_all()
    yield add
    monkeypatch.undo()
    for module in [m for m in sys.modules if m.startswith(FAKE_PREFIX)]:
        del sys.modules[module]
    _refresh_all()


def _messages(record: pytest.WarningsRecorder) -> list[str]:
    return [str(w.message) for w in record if issubclass(w.category, PluginWarning)]


def test_plugin_initializer_is_found_by_name_with_its_distribution(add_distribution: AddDistribution) -> None:
    add_distribution(
        "initreg-fake-good",
        {INITIALIZERS: {"wide_normal": "initreg_fake_good:Wide"}},
        {"initreg_fake_good": GOOD_INITIALIZER},
    )
    registry.initializers.refresh()
    cls = registry.initializers.get("wide_normal")
    assert cls.__name__ == "Wide"
    assert registry.initializers.entry("wide_normal").origin == "initreg-fake-good"
    values = registry.get("wide_normal", seed=4)((1000,))
    assert 0.9 < float(values.std()) < 1.1


def _good_plugin_with_counted_reads(add_distribution: AddDistribution, monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Installs initreg-fake-good (`wide_normal`); returns the list each read of entry points adds its group to."""
    add_distribution(
        "initreg-fake-good",
        {INITIALIZERS: {"wide_normal": "initreg_fake_good:Wide"}},
        {"initreg_fake_good": GOOD_INITIALIZER},
    )
    reads: list[str] = []
    original = plugin_registry._entry_points

    def counting(group: str):  # type: ignore[no-untyped-def]
        reads.append(group)
        return original(group)

    monkeypatch.setattr(plugin_registry, "_entry_points", counting)
    registry.initializers.refresh()
    return reads


def test_entry_points_are_read_lazily_once_and_again_after_refresh(
    add_distribution: AddDistribution, monkeypatch: pytest.MonkeyPatch
) -> None:
    reads = _good_plugin_with_counted_reads(add_distribution, monkeypatch)
    assert reads == []  # refresh reads nothing
    registry.initializers.get("lecun_normal")
    assert reads == []  # a built-in name needs no entry point
    with pytest.raises(UnknownNameError):
        registry.initializers.get("no_such_initializer")
    with pytest.raises(UnknownNameError):
        registry.initializers.get("no_such_initializer_either")
    assert reads == [INITIALIZERS]  # read once, then cached
    registry.initializers.get("wide_normal")
    registry.initializers.names()
    assert reads == [INITIALIZERS]
    registry.initializers.refresh()
    registry.initializers.get("wide_normal")
    assert reads == [INITIALIZERS, INITIALIZERS]


def test_origin_names_the_distribution_without_loading_a_plugin_and_reads_entry_points_only_when_needed(
    add_distribution: AddDistribution, monkeypatch: pytest.MonkeyPatch
) -> None:
    reads = _good_plugin_with_counted_reads(add_distribution, monkeypatch)
    assert registry.initializers.origin("lecun_normal") == registry.BUILT_IN
    assert registry.initializers.origin("LecunNormal") == registry.BUILT_IN  # an alias
    assert reads == []  # initreg's own names need no entry point
    assert registry.initializers.origin("wide_normal") == "initreg-fake-good"
    assert registry.initializers.origin("no_such_initializer") is None
    assert reads == [INITIALIZERS] and "initreg_fake_good" not in sys.modules  # listed, not loaded
    assert registry.initializers.available()["wide_normal"] == "initreg-fake-good"


def test_a_plugin_is_imported_only_when_its_name_is_asked_for_or_all_are_listed(
    add_distribution: AddDistribution,
) -> None:
    add_distribution(
        "initreg-fake-two",
        {INITIALIZERS: {"wide_a": "initreg_fake_a:Wide", "wide_b": "initreg_fake_b:Wide"}},
        {"initreg_fake_a": GOOD_INITIALIZER, "initreg_fake_b": GOOD_INITIALIZER},
    )
    registry.initializers.refresh()
    registry.get("lecun_normal")
    with pytest.raises(UnknownNameError):
        registry.initializers.get("wide_c")
    assert "initreg_fake_a" not in sys.modules and "initreg_fake_b" not in sys.modules
    registry.initializers.get("wide_a")
    assert "initreg_fake_a" in sys.modules and "initreg_fake_b" not in sys.modules
    assert {"wide_a", "wide_b"} <= set(registry.initializers.names())
    assert "initreg_fake_b" in sys.modules


def test_refresh_picks_up_a_newly_installed_plugin(add_distribution: AddDistribution) -> None:
    registry.initializers.names()  # entry points read and cached
    add_distribution(
        "initreg-fake-late",
        {INITIALIZERS: {"late_normal": "initreg_fake_late:Wide"}},
        {"initreg_fake_late": GOOD_INITIALIZER},
    )
    with pytest.raises(UnknownNameError, match="late_normal"):
        registry.initializers.get("late_normal")
    registry.initializers.refresh()
    assert registry.initializers.get("late_normal").__name__ == "Wide"


def test_refresh_reloads_initregs_own_entry_points_without_warnings() -> None:
    numpy_backend = registry.backends.get("numpy")
    registry.backends.refresh()
    with warnings_as_errors():
        names = registry.backends.names()
    assert "numpy" in names and "cupy" in names
    assert registry.backends.get("numpy") is numpy_backend
    assert registry.backends.entry("numpy").origin == "initreg"


class warnings_as_errors:  # noqa: N801 - used as a context manager
    """Turns every warning into an error inside the block."""

    def __enter__(self) -> None:
        import warnings

        self._catcher = warnings.catch_warnings()
        self._catcher.__enter__()
        warnings.simplefilter("error")

    def __exit__(self, *exc: object) -> None:
        self._catcher.__exit__(*exc)


def test_broken_plugins_warn_with_distribution_and_reason_and_the_rest_keeps_working(
    add_distribution: AddDistribution,
) -> None:
    add_distribution(
        "initreg-fake-broken",
        {
            INITIALIZERS: {
                "missing_module": "initreg_fake_not_there:Thing",
                "raises_on_load": "initreg_fake_raises:Thing",
                "not_an_initializer": "initreg_fake_wrong:function",
                "wide_normal": "initreg_fake_good:Wide",
            },
            BACKENDS: {"not_a_backend": "initreg_fake_wrong:NotBackend"},
        },
        {
            "initreg_fake_raises": "raise RuntimeError('plugin exploded on import')\n",
            "initreg_fake_wrong": "def function(shape, dtype=None):\n    return None\n\nclass NotBackend:\n    pass\n",
            "initreg_fake_good": GOOD_INITIALIZER,
        },
    )
    _refresh_all()
    with pytest.warns(PluginWarning) as record:
        names = registry.initializers.names()
        backend_names = registry.backends.names()
    messages = _messages(record)
    assert all("initreg-fake-broken" in m for m in messages)
    assert any(
        "'missing_module'" in m and "ModuleNotFoundError" in m and "initreg_fake_not_there" in m for m in messages
    )
    assert any("'raises_on_load'" in m and "RuntimeError: plugin exploded on import" in m for m in messages)
    assert any("'not_an_initializer'" in m and "not a subclass of initreg.Initializer" in m for m in messages)
    assert any("'not_a_backend'" in m and "not an initreg.backends.Backend instance" in m for m in messages)
    assert len(messages) == 4
    assert "wide_normal" in names and "lecun_normal" in names
    assert not {"missing_module", "raises_on_load", "not_an_initializer"} & set(names)
    assert "not_a_backend" not in backend_names and "numpy" in backend_names
    assert registry.get("lecun_normal", seed=1)((2, 3)).shape == (2, 3)
    with pytest.raises(UnknownNameError, match="raises_on_load"):
        registry.initializers.get("raises_on_load")  # skipped for good, with no second warning


def test_asking_for_a_broken_plugin_by_name_warns_then_raises_unknown(add_distribution: AddDistribution) -> None:
    add_distribution(
        "initreg-fake-broken",
        {INITIALIZERS: {"raises_on_load": "initreg_fake_raises:Thing"}},
        {"initreg_fake_raises": "raise RuntimeError('plugin exploded on import')\n"},
    )
    registry.initializers.refresh()
    with pytest.warns(PluginWarning, match="initreg-fake-broken.*RuntimeError"), pytest.raises(UnknownNameError):
        registry.initializers.get("raises_on_load")


def test_built_in_names_and_aliases_win_clashes(add_distribution: AddDistribution) -> None:
    add_distribution(
        "initreg-fake-clash",
        {
            INITIALIZERS: {"lecun_normal": "initreg_fake_good:Wide", "normal": "initreg_fake_good:Wide"},
            BACKENDS: {"numpy": "initreg_fake_backend:backend"},
        },
        {
            "initreg_fake_good": GOOD_INITIALIZER,
            "initreg_fake_backend": BACKEND_MODULE.format(name="numpy"),
        },
    )
    _refresh_all()
    assert registry.initializers.get("lecun_normal") is LecunNormal  # asked by name: the built-in, no warning
    with pytest.warns(PluginWarning) as record:
        registry.initializers.names()
        registry.backends.names()
    messages = _messages(record)
    assert len(messages) == 3
    assert all("initreg-fake-clash" in m and "clashes with a built-in" in m for m in messages)
    assert "initreg_fake_good" not in sys.modules  # a clashing plugin is not even imported
    assert registry.initializers.get("normal").__name__ == "RandomNormal"
    assert registry.initializers.entry("lecun_normal").origin == "initreg"
    assert registry.backends.get("numpy") is registry.get_backend(None)
    assert registry.backends.entry("numpy").origin == "initreg"


HIJACKER = """
from initreg import registry
from initreg.initializers import RandomNormal


class Added(RandomNormal):
    '''A name of its own: allowed.'''


registry.register("added_by_import")(Added)


@registry.register({name!r}, force=True)
class Hijack(RandomNormal):
    '''Tries to replace a built-in name.'''
"""


@pytest.mark.parametrize("name", ["lecun_normal", "LecunNormal"])  # a built-in name, or its alias
def test_a_plugins_import_cannot_replace_a_built_in_even_with_force(
    add_distribution: AddDistribution, name: str
) -> None:
    add_distribution(
        "initreg-fake-hijack",
        {INITIALIZERS: {"hijacker": "initreg_fake_hijack:Added"}},
        {"initreg_fake_hijack": HIJACKER.format(name=name)},
    )
    try:
        with pytest.warns(PluginWarning) as record, pytest.raises(UnknownNameError):
            registry.initializers.get("hijacker")
        assert registry.initializers.entry("added_by_import").origin == "initreg-fake-hijack"  # names its importer
    finally:
        registry.initializers.unregister("added_by_import")  # registered in code: refresh would keep it
    [message] = _messages(record)
    assert "distribution initreg-fake-hijack" in message
    assert f"NameClashError: initializer name {name!r} is built in" in message
    assert registry.initializers.get(name) is LecunNormal
    assert registry.initializers.entry(name).origin == "initreg"


def test_code_outside_a_plugins_import_may_still_replace_a_built_in_with_force() -> None:
    class Replacement(LecunNormal):
        """Registered by the program itself."""

    original = registry.initializers.entry("lecun_normal")
    try:
        registry.register("lecun_normal", force=True)(Replacement)
        assert registry.initializers.entry("lecun_normal") == registry.Entry("lecun_normal", Replacement, (), "initreg")
    finally:
        registry.initializers.register(original.name, original.value, aliases=original.aliases, force=True)
    assert registry.initializers.entry("LecunNormal") == original


@pytest.mark.parametrize("asked_first", ["WideFirst", "wide_second", "WideThird"])
def test_entry_points_naming_one_object_make_one_entry_named_the_same_whichever_is_asked_first(
    add_distribution: AddDistribution, asked_first: str
) -> None:
    names = ("WideFirst", "wide_second", "WideThird")  # read in this order; the lower-case name is canonical
    add_distribution(
        "initreg-fake-thrice",
        {INITIALIZERS: {name: "initreg_fake_thrice:Wide" for name in names}},
        {"initreg_fake_thrice": GOOD_INITIALIZER},
    )
    registry.initializers.get(asked_first)
    wide = registry.initializers.get("wide_second")
    expected = registry.Entry("wide_second", wide, ("WideFirst", "WideThird"), "initreg-fake-thrice")
    assert registry.initializers.names()["wide_second"] == ("WideFirst", "WideThird")
    assert [registry.initializers.entry(name) for name in names] == [expected] * 3


def test_a_name_from_two_distributions_keeps_the_first_on_sys_path(add_distribution: AddDistribution) -> None:
    add_distribution(
        "initreg-fake-second",
        {INITIALIZERS: {"shared_name": "initreg_fake_second:Wide"}},
        {"initreg_fake_second": GOOD_INITIALIZER},
    )
    add_distribution(
        "initreg-fake-first",
        {INITIALIZERS: {"shared_name": "initreg_fake_first:Wide"}},
        {"initreg_fake_first": GOOD_INITIALIZER},
    )  # added last, so first on sys.path
    registry.initializers.refresh()
    with pytest.warns(PluginWarning) as record:
        cls = registry.initializers.get("shared_name")
    assert cls.__module__ == "initreg_fake_first"
    assert registry.initializers.entry("shared_name").origin == "initreg-fake-first"
    (message,) = _messages(record)
    assert "from distribution initreg-fake-second" in message and "also provided by initreg-fake-first" in message


def test_a_plugin_backend_is_listed_and_usable(add_distribution: AddDistribution) -> None:
    add_distribution(
        "initreg-fake-backend",
        {BACKENDS: {"numpy_again": "initreg_fake_backend:backend"}},
        {"initreg_fake_backend": BACKEND_MODULE.format(name="numpy_again")},
    )
    registry.backends.refresh()
    found = registry.get_backend("numpy_again")
    assert isinstance(found, Backend)
    made = registry.get("lecun_normal", seed=7)((4, 5), backend="numpy_again")
    np.testing.assert_allclose(made, registry.get("lecun_normal", seed=7)((4, 5)), rtol=1e-6)
    listing = io.StringIO()
    print_listing(listing)
    (row,) = [line for line in listing.getvalue().splitlines() if line.split()[:1] == ["numpy_again"]]
    assert row.split()[1:] == ["initreg-fake-backend", "available"]


def test_listing_shows_aliases_origins_and_availability(add_distribution: AddDistribution) -> None:
    add_distribution(
        "initreg-fake-good",
        {INITIALIZERS: {"wide_normal": "initreg_fake_good:Wide"}},
        {"initreg_fake_good": GOOD_INITIALIZER},
    )
    registry.initializers.refresh()
    out = io.StringIO()
    print_listing(out)
    lines = out.getvalue().splitlines()
    rows = {line.split()[0]: line.split(maxsplit=2)[1:] for line in lines if line.startswith("  ")}
    assert rows["random_normal"] == ["initreg", "RandomNormal, normal"]
    assert rows["wide_normal"] == ["initreg-fake-good"]
    assert rows["numpy"] == ["initreg", "available"]
    cupy_reason = registry.backends.get("cupy").unavailable_reason()
    assert rows["cupy"] == ["initreg", "available" if cupy_reason is None else f"unavailable: {cupy_reason}"]
    assert lines.index("Initializers:") < lines.index("Backends:")


def test_listing_does_not_import_an_optional_array_library(
    add_distribution: AddDistribution, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """A fake cupy package that records being imported: listing the cupy backend must not import it."""
    marker = tmp_path / "cupy-was-imported"
    root = add_distribution("initreg-fake-nothing", {})
    (root / "cupy").mkdir()
    (root / "cupy" / "__init__.py").write_text(f"open({str(marker)!r}, 'w').close()\n")
    monkeypatch.delitem(sys.modules, "cupy", raising=False)  # shadow a real cupy for this test
    _refresh_all()
    out = io.StringIO()
    print_listing(out)
    assert any(line.split()[:2] == ["cupy", "initreg"] for line in out.getvalue().splitlines())
    assert not marker.exists()
    assert "cupy" not in sys.modules


# --- plugins that raise BaseException, cannot be inspected or fail to say whether they can run ---

BASE_EXCEPTIONS = {
    "exits": ("raise SystemExit(3)\n", "SystemExit: 3"),
    "exits_quietly": ("import sys\nsys.exit()\n", "SystemExit"),
    "interrupts": ("raise KeyboardInterrupt\n", "KeyboardInterrupt"),
    "raises_base": ("class Custom(BaseException):\n    pass\n\nraise Custom('not an Exception')\n", "Custom: not an"),
}


@pytest.mark.parametrize("group", [INITIALIZERS, BACKENDS])
def test_a_plugin_raising_a_base_exception_on_import_is_skipped_with_a_warning(
    add_distribution: AddDistribution, group: str
) -> None:
    add_distribution(
        "initreg-fake-exits",
        {group: {name: f"initreg_fake_{name}:Thing" for name in BASE_EXCEPTIONS}},
        {f"initreg_fake_{name}": source for name, (source, _) in BASE_EXCEPTIONS.items()},
    )
    _refresh_all()
    kind = registry.initializers if group == INITIALIZERS else registry.backends
    with pytest.warns(PluginWarning) as record:
        names = kind.names()
    messages = _messages(record)
    assert len(messages) == len(BASE_EXCEPTIONS)
    for name, (_, reason) in BASE_EXCEPTIONS.items():
        (message,) = [m for m in messages if f"plugin {name!r}" in m]
        assert "from distribution initreg-fake-exits" in message and f"failed: {reason}" in message
    assert not set(BASE_EXCEPTIONS) & set(names)
    assert registry.get("lecun_normal", seed=1)((2, 3)).shape == (2, 3)
    with pytest.raises(UnknownNameError, match="exits"):
        kind.get("exits")


def test_a_keyboard_interrupt_raised_by_a_plugin_in_another_thread_is_the_plugins_own(
    add_distribution: AddDistribution,
) -> None:
    add_distribution(
        "initreg-fake-interrupts",
        {INITIALIZERS: {"interrupts": "initreg_fake_interrupts:Thing"}},
        {"initreg_fake_interrupts": "raise KeyboardInterrupt('from the plugin')\n"},
    )
    registry.initializers.refresh()
    outcome: list[object] = []

    def look_up() -> None:
        with pytest.warns(PluginWarning, match="initreg-fake-interrupts.*KeyboardInterrupt: from the plugin"):
            outcome.append("interrupts" in registry.initializers)

    thread = threading.Thread(target=look_up)
    thread.start()
    thread.join()
    assert outcome == [False]


UNREADABLE_SIGNATURES = """
from initreg.initializers import Zeros

class OddSignature(Zeros):
    __signature__ = 42  # inspect.signature raises TypeError

class BuiltinConstructor(Zeros):
    __init__ = dict.__init__  # inspect.signature raises ValueError
"""


def test_an_initializer_whose_signature_cannot_be_read_is_skipped_with_a_warning(
    add_distribution: AddDistribution,
) -> None:
    add_distribution(
        "initreg-fake-unreadable",
        {
            INITIALIZERS: {
                "odd_signature": "initreg_fake_unreadable:OddSignature",
                "builtin_constructor": "initreg_fake_unreadable:BuiltinConstructor",
            }
        },
        {"initreg_fake_unreadable": UNREADABLE_SIGNATURES},
    )
    registry.initializers.refresh()
    with pytest.warns(PluginWarning) as record:
        names = registry.initializers.names()
    messages = _messages(record)
    assert len(messages) == 2
    assert any(
        "'odd_signature'" in m and "signature cannot be read (TypeError: unexpected object 42" in m for m in messages
    )
    assert any(
        "'builtin_constructor'" in m and "signature cannot be read (ValueError: no signature" in m for m in messages
    )
    assert all("initreg-fake-unreadable" in m for m in messages)
    assert not {"odd_signature", "builtin_constructor"} & set(names)
    classes = sys.modules["initreg_fake_unreadable"]
    with pytest.raises(InvalidArgumentError, match="cannot register 'odd'.*signature cannot be read"):
        registry.register("odd")(classes.OddSignature)


FAILING_AVAILABILITY = """
from initreg.backends.base import Backend

class Failing(Backend):
    def __init__(self, name, error):
        super().__init__(name, "numpy")
        self.error = error

    def unavailable_reason(self):
        raise self.error

crashes = Failing("crashes", RuntimeError("cannot probe the device"))
quits = Failing("quits", SystemExit(4))
"""


def test_a_backend_whose_unavailable_reason_raises_is_listed_unavailable_with_the_reason(
    add_distribution: AddDistribution,
) -> None:
    add_distribution(
        "initreg-fake-probe",
        {BACKENDS: {"crashes": "initreg_fake_probe:crashes", "quits": "initreg_fake_probe:quits"}},
        {"initreg_fake_probe": FAILING_AVAILABILITY},
    )
    registry.backends.refresh()
    listing = io.StringIO()
    with pytest.warns(PluginWarning) as record:
        print_listing(listing)
    rows = {line.split()[0]: line.split(maxsplit=2)[1:] for line in listing.getvalue().splitlines()[1:] if line}
    reason = "unavailable: its unavailable_reason() raised"
    assert rows["crashes"] == ["initreg-fake-probe", f"{reason} RuntimeError: cannot probe the device"]
    assert rows["quits"] == ["initreg-fake-probe", f"{reason} SystemExit: 4"]
    assert rows["numpy"] == ["initreg", "available"]
    messages = _messages(record)
    assert len(messages) == 2
    assert all("from distribution initreg-fake-probe is unavailable" in m for m in messages)
    with (
        pytest.warns(PluginWarning, match="'quits' from distribution initreg-fake-probe"),
        pytest.raises(
            BackendUnavailableError, match="'quits' is unavailable: its unavailable_reason.. raised SystemExit: 4"
        ),
    ):
        registry.get_backend("quits")


def _run_initreg(*arguments: str, pythonpath: Path, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    """`initreg ARGUMENTS` in a fresh process that also sees the distributions in `pythonpath`."""
    env = {**os.environ, "PYTHONPATH": str(pythonpath)}
    env.pop("HYDRA_FULL_ERROR", None)
    command = [sys.executable, "-c", "from initreg.cli import main; main()", *arguments]
    return subprocess.run(command, env=env, cwd=pythonpath, capture_output=True, text=True, timeout=timeout)


def _hostile_distribution(root: Path, write_distribution: WriteDistribution) -> None:
    """Every kind of broken plugin, in one fake distribution."""
    write_distribution(
        root,
        "initreg-fake-hostile",
        {
            INITIALIZERS: {
                **{name: f"initreg_fake_{name}:Thing" for name in BASE_EXCEPTIONS},
                "odd_signature": "initreg_fake_unreadable:OddSignature",
                "builtin_constructor": "initreg_fake_unreadable:BuiltinConstructor",
            },
            BACKENDS: {"crashes": "initreg_fake_probe:crashes", "quits": "initreg_fake_probe:quits"},
        },
        {
            **{f"initreg_fake_{name}": source for name, (source, _) in BASE_EXCEPTIONS.items()},
            "initreg_fake_unreadable": UNREADABLE_SIGNATURES,
            "initreg_fake_probe": FAILING_AVAILABILITY,
        },
    )


def test_initreg_list_and_a_run_survive_every_broken_plugin(
    tmp_path: Path, write_distribution: WriteDistribution
) -> None:
    _hostile_distribution(tmp_path, write_distribution)
    listed = _run_initreg("list", pythonpath=tmp_path)
    assert listed.returncode == 0, listed.stderr
    skipped = [line for line in listed.stderr.splitlines() if "PluginWarning" in line]
    assert len(skipped) == 8, listed.stderr  # 4 base exceptions, 2 signatures, 2 failing unavailable_reason
    assert all("initreg-fake-hostile" in line for line in skipped)
    assert "Traceback" not in listed.stderr
    rows = {line.split()[0]: line.split(maxsplit=2)[1:] for line in listed.stdout.splitlines()[1:] if line}
    assert rows["crashes"] == [
        "initreg-fake-hostile",
        "unavailable: its unavailable_reason() raised RuntimeError: cannot probe the device",
    ]
    assert rows["numpy"] == ["initreg", "available"] and "lecun_normal" in rows
    assert not {*BASE_EXCEPTIONS, "odd_signature", "builtin_constructor"} & set(rows)

    run = _run_initreg("init=lecun_normal", "dry_run=true", pythonpath=tmp_path)
    assert run.returncode == 0, run.stderr
    assert "dense_0.kernel" in run.stdout
    assert "initreg-fake-hostile" not in run.stderr  # a run of built-in names imports no plugin


def test_a_real_ctrl_c_while_a_plugin_loads_stops_initreg(
    tmp_path: Path, write_distribution: WriteDistribution
) -> None:
    started = tmp_path / "plugin-started"
    write_distribution(
        tmp_path,
        "initreg-fake-slow",
        {INITIALIZERS: {"slow": "initreg_fake_slow:Thing"}},
        {"initreg_fake_slow": f"import time\nopen({str(started)!r}, 'w').close()\ntime.sleep(60)\n"},
    )
    env = {**os.environ, "PYTHONPATH": str(tmp_path)}
    command = [sys.executable, "-c", "from initreg.cli import main; main()", "list"]
    process = subprocess.Popen(
        command,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        preexec_fn=functools.partial(signal.signal, signal.SIGINT, signal.SIG_DFL),  # SIGINT as a shell gives it
    )
    try:
        deadline = time.monotonic() + 60
        while not started.exists() and process.poll() is None and time.monotonic() < deadline:
            time.sleep(0.05)
        assert started.exists(), "the plugin never started loading"
        process.send_signal(signal.SIGINT)
        _, stderr = process.communicate(timeout=30)
    finally:
        process.kill()
    assert process.returncode == -signal.SIGINT, stderr  # how Python exits on an uncaught KeyboardInterrupt
    assert "KeyboardInterrupt" in stderr and "PluginWarning" not in stderr


REENTRANT_PLUGIN = """
from initreg import registry

registry.backends.get("numpy")  # the plugin's import uses the registry, of both kinds
RandomNormal = registry.initializers.get("random_normal")


class Wide(RandomNormal):
    '''N(0, 1), from a plugin whose import looks things up.'''
"""


def test_a_plugin_whose_import_uses_the_registry_loads_without_deadlock(
    tmp_path: Path, write_distribution: WriteDistribution
) -> None:
    write_distribution(
        tmp_path,
        "initreg-fake-reentrant",
        {INITIALIZERS: {"reentrant_normal": "initreg_fake_reentrant:Wide"}},
        {"initreg_fake_reentrant": REENTRANT_PLUGIN},
    )
    listed = _run_initreg("list", pythonpath=tmp_path, timeout=60)  # a deadlock would time out
    assert listed.returncode == 0, listed.stderr
    assert "PluginWarning" not in listed.stderr
    assert any(line.split() == ["reentrant_normal", "initreg-fake-reentrant"] for line in listed.stdout.splitlines())
