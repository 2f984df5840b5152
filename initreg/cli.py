"""The `initreg` command: a Hydra app that initializes a model's parameter tree and writes it to a file.

    initreg init=lecun_normal seed=3          # configs/command/config.yaml, composed with overrides
    initreg -m init=lecun_normal,he_normal seed=1,2
    initreg list                              # initreg.listing.print_listing()

The `init` and `recipe` groups come from initreg's Hydra config source (hydra_plugins/initreg_config_source),
which the command puts on its own search path (`CommandSearchPath`, registered in this process only, so
that --help lists the groups too): initreg:// serves the presets of initreg.configs.public (such as
gpt2_normal, which win over a plugin's name) and, as ``init/<name>``, the structured config
(initreg.schemas) of every registered initializer name and alias, plugins' included. initreg://command
serves the same way every registered backend name as a `backend` option (``{name: <name>}``) unless
configs/command/backend/ ships a yaml of that name.

Config files and search paths are code; overrides may not change Hydra's own settings (the `hydra`
node, whose callbacks, logging and launcher call functions and write files) beyond ALLOWED_HYDRA_KEYS
and the launcher and sweeper choices: every composed config is checked before Hydra uses it.
Bad input ends the command with exit code 2 and one line on stderr, with nothing written (no file,
no folder); HYDRA_FULL_ERROR=1 shows the traceback instead. Names from files are printed with their
control characters escaped. In a multirun each job's file is named by the job's overrides, and
Hydra's multirun.yaml goes to a temporary folder that is removed at the end.
"""

from __future__ import annotations

import atexit
import functools
import hashlib
import json
import os
import re
import shutil
import signal
import sys
import tempfile
import threading
import warnings
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn, cast

import hydra
from hydra._internal.config_loader_impl import ConfigLoaderImpl
from hydra.core.config_search_path import ConfigSearchPath
from hydra.core.config_store import ConfigStore
from hydra.core.hydra_config import HydraConfig
from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.core.override_parser.types import ValueType
from hydra.errors import HydraException, MissingConfigException
from hydra.plugins.search_path_plugin import SearchPathPlugin
from hydra.types import RunMode
from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import MissingMandatoryValue, OmegaConfBaseException

from initreg import __version__, io, recipes, registry
from initreg.checkpoint_config import config_beside
from initreg.command_settings import SHORT_REPR, check_settings
from initreg.errors import InitregError, InvalidArgumentError, printable
from initreg.known_plugins import unknown_option
from initreg.listing import print_listing
from initreg.model_specs import model_spec
from initreg.plain import plain
from initreg.planning import plan
from initreg.rules import RuleSet
from initreg.table import Moments, plan_table, show
from initreg.write import save_entries

if TYPE_CHECKING:
    from initreg.backends.base import Backend
    from initreg.planning import PlanEntry

CONFIG_PACKAGE = "initreg.configs.command"
SOURCE = "initreg://"  # initreg's Hydra config source (hydra_plugins/initreg_config_source)
EXIT_BAD_INPUT = 2
MAX_NAME_BYTES = 255  # the longest file name most file systems take
SAFE_IN_NAMES = "=,+~@"  # characters kept as they are in a job's file name, besides letters, digits and _.-

_show_tracebacks = False  # set by main() from HYDRA_FULL_ERROR


# --- errors: one line on stderr ----------------------------------------------------------------


def _fail(message: str) -> NoReturn:
    print(f"initreg: error: {printable(message)}", file=sys.stderr)
    raise SystemExit(EXIT_BAD_INPUT)


def _unknown_option_message(error: MissingConfigException) -> str:
    group, _, name = (error.missing_cfg_file or "").rpartition("/")
    if not group:
        return " ".join(str(error).split())
    aliases: set[str] = set()
    if group == "init":  # aliases make the full list long; canonical names and presets suffice
        aliases = {a for entry in registry.initializers.entries() for a in entry.aliases}
    return unknown_option(group, name, error.options or [], aliases)


def _one_line(error: BaseException) -> str:
    if isinstance(error, MissingConfigException):
        return _unknown_option_message(error)
    if isinstance(error, MissingMandatoryValue):
        return f"{error.full_key} needs a value: add {error.full_key}=..."
    if isinstance(error, OmegaConfBaseException):  # its first line; the rest repeats keys and types
        return str(error).strip().splitlines()[0]
    if isinstance(error, OSError) and error.filename is not None:
        return f"{error.filename}: {error.strerror or error}"
    message = " ".join(str(error).split())  # Hydra's messages span lines
    if isinstance(error.__cause__, OmegaConfBaseException):  # what was wrong with an override
        message += ": " + _one_line(error.__cause__)
    return message


@contextmanager
def _reported_errors() -> Iterator[None]:
    """Turns bad input (ours, Hydra's, OmegaConf's, the file system's) into one line and exit 2."""
    try:
        yield
    except BrokenPipeError:  # inside Hydra's job too, which would report it as the job's error
        _stdout_closed()
    except (InitregError, HydraException, OmegaConfBaseException, OSError) as error:
        if _show_tracebacks:
            raise
        _fail(_one_line(error))


def _show_warning(message: Warning | str, category: type[Warning], *_: Any, **__: Any) -> None:
    print(f"initreg: warning: {printable(' '.join(str(message).split()))}", file=sys.stderr)


# --- registry names as config-group options ----------------------------------------------------


class CommandSearchPath(SearchPathPlugin):
    """The command's groups: initreg:// (init, recipe) and initreg://command (backend), after its own configs."""

    def manipulate_search_path(self, search_path: ConfigSearchPath) -> None:
        """Appends both sources."""
        for path in (SOURCE, f"{SOURCE}command"):
            search_path.append("initreg", path)


def _use_initreg_plugin() -> None:
    """Registers initreg's config source (in case Hydra's scan of hydra_plugins missed it) and puts it on the
    command's search path."""
    from hydra.core.plugins import Plugins

    from hydra_plugins.initreg_config_source.config_source import InitregConfigSource

    Plugins.instance().register(InitregConfigSource)
    Plugins.instance().register(CommandSearchPath)


ALLOWED_HYDRA_KEYS = ("sweep.dir", "verbose", "mode")  # hydra.<key> an override may set
ALLOWED_HYDRA_CHOICES = ("hydra/launcher", "hydra/sweeper")  # groups whose option may be chosen (as shipped)
# the sweeps checked value by value; a glob's values are the group's own options, from the search path
ENUMERABLE_SWEEPS = (ValueType.CHOICE_SWEEP, ValueType.SIMPLE_CHOICE_SWEEP, ValueType.RANGE_SWEEP)
FILLED_BY_HYDRA = ("overrides", "runtime", "job.override_dirname")  # what Hydra writes into every config


def _first_difference(given: Any, default: Any, key: str) -> str | None:
    """The first dotted key under `key` where `given` differs from `default`, or None if they are equal;
    keys under ALLOWED_HYDRA_KEYS and FILLED_BY_HYDRA are not compared."""
    if key.removeprefix("hydra.") in ALLOWED_HYDRA_KEYS + FILLED_BY_HYDRA:
        return None
    if isinstance(given, dict) and isinstance(default, dict):
        for name in sorted({*given, *default}, key=str):
            found = _first_difference(given.get(name), default.get(name), f"{key}.{name}")
            if found is not None:
                return found
        return None
    return None if given == default else key


def _changed_hydra_choice(composed: DictConfig, default: DictConfig) -> str | None:
    """The first ``hydra/<group>=<option>`` chosen in `composed` but not in `default`, outside
    ALLOWED_HYDRA_CHOICES; None if there is none."""
    own = default.hydra.runtime.choices
    for group, option in composed.hydra.runtime.choices.items():
        if group.startswith("hydra/") and group not in ALLOWED_HYDRA_CHOICES and option != own.get(group):
            return f"{group}={option}"
    return None


def _check_hydra_node(composed: DictConfig, default: DictConfig) -> None:
    """Refuses a composed config whose `hydra` node differs from the command's own (`default`, composed
    with the same launcher and sweeper) outside ALLOWED_HYDRA_KEYS: Hydra calls the functions its
    callbacks, logging, launcher and sweeper name, and writes the files and folders it names."""
    given, own = (OmegaConf.to_container(config.hydra, resolve=False) for config in (composed, default))
    changed = _changed_hydra_choice(composed, default) or _first_difference(given, own, "hydra")
    if changed is not None:
        allowed = [f"hydra.{key}" for key in ALLOWED_HYDRA_KEYS] + [
            f"{group}=<option>" for group in ALLOWED_HYDRA_CHOICES
        ]
        raise InvalidArgumentError(
            f"{changed}: Hydra's settings stay the command's own (Hydra calls the functions and writes the files "
            f"they name); valid overrides of Hydra: {', '.join(allowed)}"
        )


def _is_option_name(value: Any) -> bool:
    """Whether `value`, parsed from ``group=value``, can name a group's option(s): a name, a list of names, a sweep."""
    if isinstance(value, list):
        return all(isinstance(item, str) for item in value)
    return value is not None and not isinstance(value, (bool, int, float, dict))


def _unreadable(
    loader: ConfigLoaderImpl, overrides: Sequence[str], error: BaseException
) -> HydraException | InitregError:
    """The error for overrides Hydra's parser or defaults list fails on with a ValueError, TypeError or
    RecursionError: it names the first override that fails to parse alone, or that gives a config group
    something other than an option's name, if one does."""
    if isinstance(error, RecursionError):
        reason = "nested too deeply to read"
    elif "Exceeds the limit" in str(error):  # int(text) past Python's int_max_str_digits
        reason = f"an integer of more than {sys.get_int_max_str_digits():,} digits"
    else:
        reason = " ".join(str(error).split())
    parser = OverridesParser.create()
    for override in overrides:
        try:
            parsed = parser.parse_overrides([override])[0]
        except (ValueError, TypeError, RecursionError, HydraException):
            return InvalidArgumentError(f"{SHORT_REPR.repr(override)}: {reason}")
        group = parsed.key_or_group
        if loader.repository.group_exists(group) and not _is_option_name(parsed.value()):
            options = loader.get_group_options(group)
            return MissingConfigException("", missing_cfg_file=f"{group}/{parsed.value()}", options=options)
    return InvalidArgumentError(f"the overrides cannot be composed: {reason}")


def _each_swept_value(overrides: Sequence[str]) -> Iterator[list[str]]:
    """A multirun's overrides with one value of one sweep in place of the sweeps, for every value of every
    (choice or range) sweep: the configs whose checks, up front, cover every job's settings."""
    parsed = list(zip(overrides, OverridesParser.create().parse_overrides(list(overrides)), strict=True))
    fixed = [text for text, override in parsed if not override.is_sweep_override()]
    for _, override in parsed:
        if override.value_type in ENUMERABLE_SWEEPS:
            for value in override.sweep_string_iterator():
                yield [*fixed, f"{override.get_key_element()}={value}"]


OWN_SOURCES = {  # the command's config sources: (provider, path) as Hydra lists them
    ("hydra", "hydra.conf"), ("main", CONFIG_PACKAGE), ("initreg", ""), ("initreg", "command"), ("schema", ""),
}  # fmt: skip
HYDRAS_STORE = {"hydra", "_dummy_empty_config_.yaml"}  # what Hydra itself puts in its ConfigStore


def _chosen_options(config: DictConfig) -> tuple[str, ...]:
    """The ``hydra/<group>=<option>`` of ALLOWED_HYDRA_CHOICES that `config` chose."""
    choices_made = config.hydra.runtime.choices
    return tuple(f"{group}={choices_made[group]}" for group in ALLOWED_HYDRA_CHOICES if group in choices_made)


def _mode_is_the_commands(loader: ConfigLoaderImpl, overrides: Sequence[str]) -> bool:
    """Whether `hydra.mode` composed with `overrides` is the command's own: no override names Hydra (a
    ``hydra`` key, group or package), every config source is the command's own (OWN_SOURCES: no
    --config-dir, no other search-path plugin) and Hydra's ConfigStore holds Hydra's configs alone; the
    command's options never set Hydra's settings
    (tests/test_cli.py::test_no_option_of_the_commands_groups_sets_hydras_settings)."""
    sources = {(source.provider, source.path) for source in loader.repository.get_sources()}
    if sources != OWN_SOURCES or set(ConfigStore.instance().repo) != HYDRAS_STORE:
        return False
    try:
        parsed = OverridesParser.create().parse_overrides(list(overrides))
    except (HydraException, ValueError, TypeError, RecursionError):
        return False
    return not any("hydra" in f"{override.key_or_group}@{override.package}" for override in parsed)


@contextmanager
def _hydra_settings_checked() -> Iterator[None]:
    """While the command runs, every config Hydra composes to use (the run's, the multirun's, each job's) has
    its `hydra` node checked by _check_hydra_node before Hydra uses it (callbacks, logging, launcher); a
    multirun's, with each value of each sweep too, so that a bad value stops it before its first job.

    Hydra first composes the whole config only to read `hydra.mode` (get_mode's probe, which ignores
    errors). Where that mode is the command's own (_mode_is_the_commands), the probe is answered with the
    command's own config, which the run's check needs anyway: one composition fewer. Otherwise the probe
    composes as in Hydra, unchecked: the run or multirun it leads to composes again, checked.
    """
    compose = ConfigLoaderImpl.load_configuration
    defaults: dict[tuple[str | None, tuple[str, ...], RunMode], DictConfig] = {}  # by name, choices, mode

    def own_config(
        loader: ConfigLoaderImpl, config_name: str | None, options: tuple[str, ...], mode: RunMode
    ) -> DictConfig:
        """The command's config with no overrides but the launcher and sweeper `options` (composed once)."""
        if (config_name, options, mode) not in defaults:
            made = compose(loader, config_name, list(options), mode)
            defaults[config_name, options, mode] = defaults[config_name, _chosen_options(made), mode] = made
        return defaults[config_name, options, mode]

    def checked(
        loader: ConfigLoaderImpl, config_name: str | None, overrides: list[str], run_mode: RunMode, **kwargs: Any
    ) -> DictConfig:
        if run_mode == RunMode.MULTIRUN and kwargs.get("validate_sweep_overrides") is False:  # the probe
            if _mode_is_the_commands(loader, overrides):
                return own_config(loader, config_name, (), RunMode.RUN)
            return compose(loader, config_name, overrides, run_mode, **kwargs)
        try:
            composed = compose(loader, config_name, overrides, run_mode, **kwargs)
        except (ValueError, TypeError, RecursionError) as error:  # Hydra's parser and defaults list on bad input
            raise _unreadable(loader, overrides, error) from error
        except MissingConfigException as error:  # `group=[a,b]`'s error leaves out the group's options
            group = (error.missing_cfg_file or "").rpartition("/")[0]
            if not error.options and group and loader.repository.group_exists(group):
                error.options = loader.get_group_options(group)
            raise
        _check_hydra_node(composed, own_config(loader, config_name, _chosen_options(composed), run_mode))
        if run_mode == RunMode.MULTIRUN:  # before the first job runs, not when a later one is composed
            for job_overrides in _each_swept_value(overrides):
                checked(loader, config_name, job_overrides, RunMode.RUN)
        return composed

    ConfigLoaderImpl.load_configuration = checked  # type: ignore[method-assign,assignment]
    try:
        yield
    finally:
        ConfigLoaderImpl.load_configuration = compose  # type: ignore[method-assign]


# --- output ------------------------------------------------------------------------------------


def _output_path(output: str, pattern: str) -> Path:
    """`output`; in a multirun, named by the job's overrides so that no two jobs write one file.

    A multirun job's file is ``<stem>-<overrides><suffix>``: its overrides as given (``key=value``
    joined by commas, a leading ``+`` dropped), without `output` and without the keys the output
    `pattern` (its text before interpolation) already spells out, such as ``${seed}`` (``${initreg_rules:}``
    spells the recipe, else the init). Characters
    other than letters, digits and ``_.-=,+~@`` are percent-encoded (``/`` is ``%2F``); a name
    longer than a file system takes is cut and ends in a hash of the whole.
    """
    path = Path(output)
    io.file_format(path)
    hydra_config = HydraConfig.get()
    if hydra_config.mode != RunMode.MULTIRUN:
        return path
    spelled = set(re.findall(r"\$\{(?:hydra:runtime\.choices\.)?([\w.]+)\}", pattern))
    if "${initreg_rules:}" in pattern:  # spells the recipe's name, else the init's (see rules_choice)
        spelled.add("recipe" if hydra_config.runtime.choices.get("recipe") else "init")
    named = []
    for override in hydra_config.overrides.task:
        override = override.lstrip("+")
        key = override.split("=", 1)[0].lstrip("~")
        if key != "output" and key not in spelled:
            named.append(override)
    if not named:
        return path
    from urllib.parse import quote

    stem = f"{path.stem}-{quote(','.join(named), safe=SAFE_IN_NAMES)}"
    if len((stem + path.suffix).encode()) > MAX_NAME_BYTES:
        digest = hashlib.blake2b(stem.encode(), digest_size=8).hexdigest()
        stem = stem.encode()[: MAX_NAME_BYTES - len(path.suffix.encode()) - 17].decode(errors="ignore") + "-" + digest
    return path.with_name(stem + path.suffix)


@contextmanager
def _created_folder(folder: Path) -> Iterator[None]:
    """Creates `folder` and its missing parents; if the block fails, removes those it created (if empty)."""
    missing = []
    while not folder.exists():
        missing.append(folder)
        folder = folder.parent
    for created in reversed(missing):
        created.mkdir(exist_ok=True)
    try:
        yield
    except BaseException:
        for created in missing:  # the deepest first
            try:
                created.rmdir()
            except OSError:
                break
        raise


def rules_choice() -> str:
    """The chosen recipe's name, else the chosen init's: the ``${initreg_rules:}`` of the output name."""
    choices_made = HydraConfig.get().runtime.choices
    return str(choices_made.get("recipe") or choices_made.get("init"))


def _metadata(settings: Mapping[str, Any]) -> dict[str, str]:
    """What made the file, for its safetensors header; "format" is what transformers requires."""
    choices_made = HydraConfig.get().runtime.choices
    made_by = {
        "version": __version__,
        "seed": settings["seed"],
        "dtype": settings["dtype"],
        "model": choices_made.get("model"),
        "backend": choices_made.get("backend"),
        "rules": settings["rules"],
        "recipe": choices_made.get("recipe"),
        "variables": settings["variables"],
    }
    return {"format": "pt", "initreg": json.dumps(made_by, default=str)}  # rules in the order they apply


# --- the app -----------------------------------------------------------------------------------


def _chunk_bytes(settings: Mapping[str, Any]) -> int:
    """chunk_mb (MiB, checked by SETTINGS) in bytes."""
    return max(1, int(settings["chunk_mb"] * 2**20))


def _draw(entries: Sequence[PlanEntry], settings: Mapping[str, Any], backend: Backend, path: Path) -> dict[str, float]:
    """Draws the planned tree and writes it to `path`; returns the measured std of each parameter.

    A .safetensors file is streamed (unless stream=false): no more than about chunk_mb of values is
    held at once. Otherwise the whole tree is made in memory and then written. Settings and free
    space are checked first; the output's folder is created only then, and removed if the write fails.
    """
    import numpy as np

    quiet, stream, chunk_bytes = not settings["progress"], settings["stream"], _chunk_bytes(settings)
    seed, metadata, chosen = settings["seed"], _metadata(settings), io.file_format(path)
    tensors = [io.TensorInfo(entry.path, entry.shape, entry.dtype) for entry in entries]
    io.free_space_for(path, io.planned_size(tensors, chosen, metadata))
    moments = {entry.path: Moments(entry) for entry in entries}
    with _created_folder(path.parent), np.errstate(over="ignore", invalid="ignore"):  # Moments tells of inf, NaN
        save_entries(
            entries, seed, path, backend=backend, chunk_bytes=chunk_bytes, metadata=metadata, quiet=quiet,
            measure=lambda entry, found: moments[entry.path].merge(*found), stream=stream,
        )  # fmt: skip
    return {name: moment.std for name, moment in moments.items()}


def _ruleset(settings: dict[str, Any], spec: Any) -> RuleSet:
    """The rule set to plan with: a chosen recipe's rules (its variables read from the tree `spec` and
    checked against the model's `variables`; one line says where each came from), else `rules` with the
    model's variables; the model's layout and ties, the command's dtype and strictness, and an
    initializer's own seed refused. `settings["rules"]` and `settings["variables"]` become those used,
    for the file's metadata.
    """
    variables = settings["model"].get("variables") or {}
    recipe = settings.get("recipe")
    options: dict[str, Any] = {
        "dtype": settings["dtype"], "layout": settings["model"].get("layout"), "ties": settings["model"].get("ties"),
        "allow_unmatched_params": settings["allow_unmatched_params"],
        "allow_unused_rules": settings["allow_unused_rules"], "initializer_seeds": "refuse",
    }  # fmt: skip
    if not recipe:
        settings["variables"] = variables
        return RuleSet.build(settings["rules"], variables=variables, **options)
    beside = config_beside(settings["model"]["path"]) if settings["model"].get("path") is not None else None
    if beside is not None:
        print(f"initreg: note: the recipe reads model.config from {printable(str(beside[1]))}", file=sys.stderr)
    chosen = recipes.from_config(
        HydraConfig.get().runtime.choices["recipe"], recipe, variables, model=spec, config=beside and beside[0]
    )
    print(printable(chosen.describe()))
    settings["rules"], settings["variables"] = recipe["rules"], chosen.variables
    return RuleSet.build(chosen, **options)


def initialize(cfg: DictConfig) -> None:
    """The Hydra task: plan the model's tree by the rules, draw it, write it, print the table."""
    with _reported_errors():
        settings = cast(dict[str, Any], plain(OmegaConf.to_container(cfg, resolve=True, throw_on_missing=True)))
        check_settings(settings)
        spec, notes = model_spec(settings["model"])
        for note in notes:
            print(f"initreg: note: {printable(note)}", file=sys.stderr)
        entries = plan(spec, _ruleset(settings, spec))
        total = sum(entry.size for entry in entries)
        if HydraConfig.get().mode == RunMode.MULTIRUN:
            print(f"job {HydraConfig.get().job.num}: {printable(' '.join(HydraConfig.get().overrides.task))}")
        if settings["dry_run"]:
            show(
                plan_table(entries, None, full=settings["table"] == "full"),
                f"{total:,} parameters in {len(entries)} tensors; nothing written",
            )
            return
        pattern = str(cast(dict[str, Any], OmegaConf.to_container(cfg, resolve=False))["output"])
        path = _output_path(str(settings["output"]), pattern)
        backend = registry.get_backend(settings["backend"]["name"])
        measured = _draw(entries, settings, backend, path)
        show(
            plan_table(entries, measured, full=settings["table"] == "full"),
            f"wrote {path}: {total:,} parameters in {len(entries)} tensors",
        )


def _quiet_when_stdout_closes(command: Callable[[], None]) -> Callable[[], None]:
    """`command`, ending quietly with status 1 when the reader of stdout goes away (`initreg --help | head`).

    This is what the Python documentation recommends for a closed pipe (signal's "Note on SIGPIPE"):
    stdout is pointed at devnull, so that the flush at exit cannot fail again.
    """

    @functools.wraps(command)
    def run() -> None:
        try:
            command()
            sys.stdout.flush()
        except BrokenPipeError:
            _stdout_closed()

    return run


def _stdout_closed() -> NoReturn:
    """Ends with status 1 and no message, stdout pointed at devnull so that the flush at exit cannot fail again."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())
    raise SystemExit(1) from None


@_quiet_when_stdout_closes
def main() -> None:
    """The console script: `initreg list`, or the Hydra app."""
    global _show_tracebacks
    if sys.argv[1:2] == ["check"]:
        from initreg.checking.command import main as check

        raise SystemExit(check(sys.argv[2:]))
    if sys.argv[1:2] == ["list"]:
        print_listing()
        return
    _show_tracebacks = os.environ.get("HYDRA_FULL_ERROR") == "1"
    os.environ["HYDRA_FULL_ERROR"] = "1"  # Hydra raises instead of printing, so errors reach us
    warnings.showwarning = _show_warning
    for signum in io.TERMINATING_SIGNALS:  # unwinds, so that a half-written temporary file is removed
        signal.signal(signum, io.exit_on_signal)
    app = hydra.main(config_path=f"pkg://{CONFIG_PACKAGE}", config_name="config", version_base="1.3")(initialize)
    with _scratch_folder(), _reported_errors(), _hydra_settings_checked():
        _use_initreg_plugin()
        if not OmegaConf.has_resolver("initreg_rules"):
            OmegaConf.register_new_resolver("initreg_rules", rules_choice)
        app()


def console() -> NoReturn:
    """The console script (`initreg`): `main`, then, where that is safe, `leave` without the interpreter's teardown."""
    try:
        main()
    except SystemExit as done:
        if done.code is not None and not isinstance(done.code, int):
            raise  # a message for Python to print
        leave(done.code or 0)
        raise
    leave(0)
    raise SystemExit(0)


def leave(status: int) -> None:
    """os._exit(status) once stdout and stderr are flushed and the atexit functions (logging's flush and
    close among them) have run, skipping only the teardown of the modules, which frees every object
    one by one. Returns without leaving when another Python thread still runs (the interpreter waits for
    it at exit) or a stream cannot be flushed, so that the ordinary exit handles it.

    Files the command writes are flushed and fsynced before `main` returns (`initreg.io`).
    """
    if threading.active_count() > 1:
        return
    try:
        sys.stdout.flush()
        sys.stderr.flush()
    except (OSError, ValueError):  # closed, or a pipe whose reader left: Python's exit reports it
        return
    atexit._run_exitfuncs()
    os._exit(status)


@contextmanager
def _scratch_folder() -> Iterator[None]:
    """``${initreg_scratch:}`` (Hydra's sweep dir, where multirun.yaml goes) as a temporary folder.

    The folder is made when the config first asks for it and removed when the command ends.
    """
    made: list[str] = []

    def scratch() -> str:
        if not made:
            made.append(tempfile.mkdtemp(prefix="initreg-"))
        return made[0]

    OmegaConf.register_new_resolver("initreg_scratch", scratch, replace=True)
    try:
        yield
    finally:
        for folder in made:
            shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    console()
