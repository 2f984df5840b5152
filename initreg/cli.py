"""The `initreg` command: a Hydra app that initializes a model's parameter tree and writes it to a file.

    initreg init=lecun_normal seed=3          # configs/command/config.yaml, composed with overrides
    initreg -m init=lecun_normal,he_normal seed=1,2
    initreg list                              # initreg.listing.print_listing()

The `init` group comes from initreg's Hydra plugin (hydra_plugins/initreg_searchpath), the same one
any Hydra app gets: its config source initreg:// serves the presets of initreg.configs.public (such
as gpt2_normal, which win over a plugin's name) and, as ``init/<name>``, the structured config
(initreg.schemas) of every registered initializer name and alias, plugins' included. The command
registers the plugin itself, so it works where Hydra's plugin scan misses it, and the plugin's switch
does not apply to it. The command's own `backend` group gets every registered backend name at start-up
(``{name: <name>}`` in Hydra's ConfigStore) unless configs/command/backend/ ships a yaml of that name.

Config files and search paths are code; overrides may not change Hydra's own settings (the `hydra`
node, whose callbacks, logging and launcher call functions and write files) beyond ALLOWED_HYDRA_KEYS
and the launcher and sweeper choices: every composed config is checked before Hydra uses it.
Bad input ends the command with exit code 2 and one line on stderr, with nothing written (no file,
no folder); HYDRA_FULL_ERROR=1 shows the traceback instead. Names from files are printed with their
control characters escaped. In a multirun each job's file is named by the job's overrides, and
Hydra's multirun.yaml goes to a temporary folder that is removed at the end.
"""

from __future__ import annotations

import difflib
import functools
import hashlib
import json
import math
import os
import re
import reprlib
import shutil
import signal
import sys
import tempfile
import warnings
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from importlib.resources import files
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn, cast

import hydra
from hydra._internal.config_loader_impl import ConfigLoaderImpl
from hydra.core.config_store import ConfigStore
from hydra.core.hydra_config import HydraConfig
from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.core.override_parser.types import ValueType
from hydra.errors import HydraException, MissingConfigException
from hydra.types import RunMode
from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import MissingMandatoryValue, OmegaConfBaseException

from initreg import __version__, io, recipes, registry, tree
from initreg.dtypes import FLOAT_DTYPES
from initreg.errors import InitregError, InvalidArgumentError, printable
from initreg.initializers.base import magnitude
from initreg.initializers.overlay import Overlay, region_text
from initreg.initializers.variance_scaling import LAYOUTS
from initreg.schemas import plain

if TYPE_CHECKING:
    from rich.table import Table

    from initreg.backends.base import Backend
    from initreg.initializers.base import Initializer
    from initreg.tree import PlanEntry

CONFIG_PACKAGE = "initreg.configs.command"
PUBLIC_PACKAGE = "initreg.configs.public"
EXIT_BAD_INPUT = 2
MAX_TENSORS = io.MAX_TENSORS  # the most parameters a model config may make
MIN_SEED, MAX_SEED = -(2**63), 2**64 - 1  # the seeds the command takes: int64's and uint64's
TABLE_EDGE_ROWS = 1_000  # table=summary: a longer table shows this many first and last rows
MAX_NAME_BYTES = 255  # the longest file name most file systems take
MOMENT_BLOCK = 1 << 18  # elements whose std is measured at once (2 MiB of float64 temporaries)
SAFE_IN_NAMES = "=,+~@"  # characters kept as they are in a job's file name, besides letters, digits and _.-

_show_tracebacks = False  # set by main() from HYDRA_FULL_ERROR


# --- errors: one line on stderr ----------------------------------------------------------------


def _fail(message: str) -> NoReturn:
    print(f"initreg: error: {printable(message)}", file=sys.stderr)
    raise SystemExit(EXIT_BAD_INPUT)


def _unknown_option_message(error: MissingConfigException) -> str:
    group, _, name = (error.missing_cfg_file or "").rpartition("/")
    options = sorted(error.options or [])
    if not group:
        return " ".join(str(error).split())
    message = f"unknown {group} {name!r};"
    close = difflib.get_close_matches(name, options, n=3, cutoff=0.6)
    if close:
        message += " did you mean " + " or ".join(repr(c) for c in close) + "?"
    if group == "init":  # aliases make the full list long; canonical names and presets suffice
        aliases = {a for entry in registry.initializers.entries() for a in entry.aliases}
        options = [o for o in options if o not in aliases]
        return message + f" valid: {', '.join(options)} (and their aliases; see `initreg list`)"
    return message + f" valid: {', '.join(options)}"


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
    except BrokenPipeError:  # stdout closed by the reader (`initreg --help | head`): see main()
        raise
    except (InitregError, HydraException, OmegaConfBaseException, OSError) as error:
        if _show_tracebacks:
            raise
        _fail(_one_line(error))


def _show_warning(message: Warning | str, category: type[Warning], *_: Any, **__: Any) -> None:
    print(f"initreg: warning: {printable(' '.join(str(message).split()))}", file=sys.stderr)


# --- registry names as config-group options ----------------------------------------------------


def _shipped_options(package: str, group: str) -> set[str]:
    folder = files(package) / group
    return {item.name.removesuffix(".yaml") for item in folder.iterdir() if item.name.endswith(".yaml")}


def _use_initreg_plugin() -> None:
    """Registers initreg's Hydra plugin (in case Hydra's scan of hydra_plugins missed it) and warns about
    a plugin's initializer name that a public preset hides."""
    from hydra.core.plugins import Plugins

    from hydra_plugins.initreg_searchpath.initreg_searchpath import InitregConfigSource, InitregSearchPathPlugin

    Plugins.instance().register(InitregConfigSource)
    Plugins.instance().register(InitregSearchPathPlugin)  # appends initreg:// once, even if also scanned
    presets = _shipped_options(PUBLIC_PACKAGE, "init")
    for name, origin in registry.initializers.available().items():
        if name in presets and origin != registry.BUILT_IN:
            warnings.warn(
                f"init={name} selects the preset init/{name}.yaml, "
                f"which hides the init {name!r} registered by {origin}",
                stacklevel=2,
            )


def store_backend_options() -> None:
    """Adds every registered backend name, plugins' included, as a backend option, unless configs/ ships it."""
    store = ConfigStore.instance()
    shipped = _shipped_options(CONFIG_PACKAGE, "backend")
    for name in registry.backends.available():
        if name not in shipped:
            store.store(group="backend", name=name, node={"name": name})


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


@contextmanager
def _hydra_settings_checked() -> Iterator[None]:
    """While the command runs, every config Hydra composes (the run's, the multirun's, each job's) has its
    `hydra` node checked by _check_hydra_node before Hydra uses it (callbacks, logging, launcher); a
    multirun's, with each value of each sweep too, so that a bad value stops it before its first job."""
    compose = ConfigLoaderImpl.load_configuration
    defaults: dict[tuple[str | None, tuple[str, ...], RunMode], DictConfig] = {}  # by name, choices, mode

    def own_config(
        loader: ConfigLoaderImpl, config_name: str | None, composed: DictConfig, mode: RunMode
    ) -> DictConfig:
        """The command's config with no overrides but `composed`'s launcher and sweeper (composed once)."""
        choices_made = composed.hydra.runtime.choices
        options = tuple(f"{group}={choices_made[group]}" for group in ALLOWED_HYDRA_CHOICES if group in choices_made)
        if (config_name, options, mode) not in defaults:
            defaults[config_name, options, mode] = compose(loader, config_name, list(options), mode)
        return defaults[config_name, options, mode]

    def checked(
        loader: ConfigLoaderImpl, config_name: str | None, overrides: list[str], run_mode: RunMode, **kwargs: Any
    ) -> DictConfig:
        try:
            composed = compose(loader, config_name, overrides, run_mode, **kwargs)
        except (ValueError, TypeError, RecursionError) as error:  # Hydra's parser and defaults list on bad input
            raise _unreadable(loader, overrides, error) from error
        except MissingConfigException as error:  # `group=[a,b]`'s error leaves out the group's options
            group = (error.missing_cfg_file or "").rpartition("/")[0]
            if not error.options and group and loader.repository.group_exists(group):
                error.options = loader.get_group_options(group)
            raise
        _check_hydra_node(composed, own_config(loader, config_name, composed, run_mode))
        if run_mode == RunMode.MULTIRUN:  # before the first job runs, not when a later one is composed
            for job_overrides in _each_swept_value(overrides):
                checked(loader, config_name, job_overrides, RunMode.RUN)
        return composed

    ConfigLoaderImpl.load_configuration = checked  # type: ignore[method-assign,assignment]
    try:
        yield
    finally:
        ConfigLoaderImpl.load_configuration = compose  # type: ignore[method-assign]


def _refuse_initializer_seeds(rules: Mapping[str, Any]) -> None:
    """An initializer's own seed would be ignored in a tree, whose seed keys every parameter: refused."""
    for name, rule in rules.items():
        init = rule.get("init") if isinstance(rule, Mapping) else None
        seed = init.get("seed") if isinstance(init, Mapping) else None
        if seed is not None:
            raise InvalidArgumentError(
                f"rule {name!r}: init seed={seed} is not used, since the tree's seed decides every parameter's "
                f"values (with its path); set seed={seed} instead"
            )


# --- the command's settings: one typed schema ---------------------------------------------------


@dataclass(frozen=True)
class Setting:
    """What a key of the command's config takes: `valid(value)` says whether `value` does; `what` says it
    in words, for the error. An optional key may be missing (deleted with ``~key``)."""

    valid: Callable[[Any], bool]
    what: str
    optional: bool = False


def _is_integer(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_mapping_or_none(value: Any) -> bool:
    return value is None or isinstance(value, Mapping)


def _is_positive_number(value: Any) -> bool:
    return (_is_integer(value) or isinstance(value, float)) and 0 < value < math.inf


BOOLEAN = Setting(lambda value: isinstance(value, bool), "true or false")
MAPPING = Setting(lambda value: isinstance(value, Mapping), "a mapping {key: value, ...}")
MAPPING_OR_NONE = Setting(_is_mapping_or_none, "a mapping {key: value, ...} or null", optional=True)
SETTINGS = {  # the command's config (configs/command/config.yaml), resolved
    "seed": Setting(
        lambda v: _is_integer(v) and MIN_SEED <= v <= MAX_SEED, f"an integer from {MIN_SEED} to {MAX_SEED}"
    ),
    "dtype": Setting(lambda value: value in FLOAT_DTYPES, " or ".join(repr(name) for name in FLOAT_DTYPES)),
    "output": Setting(
        lambda value: isinstance(value, str) and value != "", "a file name ending in .safetensors or .npz"
    ),
    "dry_run": BOOLEAN,
    "allow_unmatched_params": BOOLEAN,
    "allow_unused_rules": BOOLEAN,
    "stream": BOOLEAN,
    "chunk_mb": Setting(_is_positive_number, "a positive number of MiB, such as 64"),
    "progress": BOOLEAN,
    "rules": MAPPING,
    "model": MAPPING,
    "recipe": MAPPING_OR_NONE,
    "backend": MAPPING,
    "table": Setting(lambda value: value in ("summary", "full"), "'summary' or 'full'"),
}
MODEL_SETTINGS = {  # keys of `model` the command reads; a model config may add others for its interpolations
    "layout": Setting(
        lambda value: value is None or value in LAYOUTS, f"{' or '.join(map(repr, LAYOUTS))} or null", optional=True
    ),
    "path": Setting(lambda value: value is None or isinstance(value, str), "a file name or null", optional=True),
    "params": MAPPING_OR_NONE,
    "repeat": MAPPING_OR_NONE,
    "variables": MAPPING_OR_NONE,
    "ties": MAPPING_OR_NONE,
}
BACKEND_SETTINGS = {"name": Setting(lambda value: isinstance(value, str), "a registered backend's name")}


class _ShortRepr(reprlib.Repr):
    """reprlib's short repr, with integers as magnitude() writes them (Python cannot print 4,300+ digits)."""

    def repr_int(self, value: int, level: int) -> str:
        return ("-" if value < 0 else "") + magnitude(abs(value))


SHORT_REPR = _ShortRepr()


def _check_settings(settings: Mapping[str, Any], schema: Mapping[str, Setting], prefix: str = "") -> None:
    """Raises InvalidArgumentError naming the first key of `settings` that `schema` does not take."""
    for key, setting in schema.items():
        if key not in settings:
            if setting.optional:
                continue
            raise InvalidArgumentError(
                f"{prefix}{key} is missing (deleted by ~{prefix}{key}?); it must be {setting.what}"
            )
        if not setting.valid(settings[key]):
            raise InvalidArgumentError(f"{prefix}{key} must be {setting.what}; got {SHORT_REPR.repr(settings[key])}")


def check_settings(settings: Mapping[str, Any]) -> None:
    """Checks the command's resolved config against SETTINGS, its `model` against MODEL_SETTINGS and its
    `backend` against BACKEND_SETTINGS, before anything reads them."""
    _check_settings(settings, SETTINGS)
    _check_settings(settings["model"], MODEL_SETTINGS, "model.")
    _check_settings(settings["backend"], BACKEND_SETTINGS, "backend.")


# --- models ------------------------------------------------------------------------------------


def model_spec(model: Mapping[str, Any]) -> tuple[dict[str, Any], list[str]]:
    """The parameter spec a model config describes, and notes on what it skipped.

    A model gives `params` (a tree of shapes) and optionally `repeat` ({prefix: {count, params}}: the
    block repeated as prefix.0 ... prefix.{count-1}), or `path`: a .safetensors or .npz file whose
    floating tensors' names and shapes are read from its header.
    """
    if model.get("path") is not None:
        return _file_spec(str(model["path"]))
    params = model.get("params") or {}
    if not isinstance(params, Mapping):
        raise InvalidArgumentError(f"model.params must be a mapping of names to shapes; got {params!r}")
    spec = dict(params)
    tensors = len(tree.flatten(spec))
    for prefix, block in (model.get("repeat") or {}).items():
        count = block.get("count") if isinstance(block, Mapping) else None
        if isinstance(count, bool) or not isinstance(count, int) or count < 0 or "params" not in block:
            raise InvalidArgumentError(
                f"model.repeat.{prefix} must be {{count: a non-negative integer, params: {{...}}}}; got {block!r}"
            )
        if prefix in spec:
            raise InvalidArgumentError(f"model.repeat.{prefix} clashes with model.params.{prefix}")
        tensors += count * len(tree.flatten({prefix: block["params"]}))  # counted before any list is made
        if tensors > MAX_TENSORS:
            raise InvalidArgumentError(
                f"model.repeat.{prefix}.count={count} makes the model {tensors:,} parameters or more; "
                f"valid: at most {MAX_TENSORS:,} in all"
            )
        spec[prefix] = [block["params"]] * count
    if not spec:
        raise InvalidArgumentError("the model has no parameters; give model.params or model.path")
    return spec, []


def _file_spec(path: str) -> tuple[dict[str, Any], list[str]]:
    tensors = io.read_header(path)
    spec = {tensor.name: tensor.shape for tensor in tensors if tensor.dtype in FLOAT_DTYPES}
    skipped = [f"{tensor.name} ({tensor.dtype})" for tensor in tensors if tensor.dtype not in FLOAT_DTYPES]
    if not spec:
        raise InvalidArgumentError(f"{path!r} holds no floating tensor; found: {', '.join(skipped) or '(none)'}")
    notes = [f"skipped {len(skipped)} non-floating tensor(s) of {path}: {', '.join(skipped)}"] if skipped else []
    return spec, notes


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
    return {"format": "pt", "initreg": json.dumps(made_by, sort_keys=True, default=str)}


# --- the table ---------------------------------------------------------------------------------


def _describe(initializer: Initializer, names: Mapping[type, str]) -> str:
    """The initializer's registered name and its set (non-None) config values, seed aside; for an
    Overlay, its base's, then each part's region and initializer."""
    if isinstance(initializer, Overlay):
        parts = (f"{region_text(part.region)} {_describe(part.initializer, names)}" for part in initializer.parts)
        return " with ".join((_describe(initializer.base, names), *parts))
    config = {k: v for k, v in initializer.get_config().items() if v is not None and k != "seed"}
    name = names.get(type(initializer), type(initializer).__name__)
    return name + "(" + ", ".join(f"{k}={v!r}" for k, v in config.items()) + ")"


def _number(value: float) -> str:
    return "-" if math.isnan(value) else f"{value:.4g}"


def _row(entry: PlanEntry, measured: Mapping[str, float] | None, names: Mapping[type, str]) -> list[str]:
    """The table's cells for one parameter: fans for a plan, the measured std once drawn."""
    row = [entry.path, str(list(entry.shape)), entry.dtype, entry.rule, _describe(entry.initializer, names)]
    if measured is None:
        return [*row, str(entry.fan_in), str(entry.fan_out), _number(entry.target_std)]
    return [*row, _number(entry.target_std), _number(measured[entry.path])]


def _omitted_row(omitted: Sequence[PlanEntry], columns: int) -> list[str]:
    """The one row that stands for the tensors a summarized table leaves out: their count and size."""
    size = sum(entry.size for entry in omitted)
    note = f"{len(omitted):,} more tensors, {size:,} parameters (table=full)"
    return ["...", "", "", "", note] + [""] * (columns - 5)


def _table(entries: Sequence[PlanEntry], measured: Mapping[str, float] | None, *, full: bool) -> Table:
    """One row per parameter; fans for a plan, the measured std once drawn. Unless `full`, a plan of more
    than 2 * TABLE_EDGE_ROWS tensors shows its first and last TABLE_EDGE_ROWS and one row for the rest."""
    from rich.table import Table
    from rich.text import Text

    names = {entry.value: entry.name for entry in registry.initializers.entries(load_plugins=False)}
    table = Table(title="plan (dry run)" if measured is None else None)
    for column in ("path", "shape", "dtype", "rule", "initializer"):
        table.add_column(column, no_wrap=column == "path")
    extra = ("fan_in", "fan_out", "target std") if measured is None else ("target std", "measured std")
    for column in extra:
        table.add_column(column, justify="right")
    summarized = not full and len(entries) > 2 * TABLE_EDGE_ROWS
    head, tail = (entries[:TABLE_EDGE_ROWS], entries[-TABLE_EDGE_ROWS:]) if summarized else (entries, [])
    rows = [_row(entry, measured, names) for entry in head]
    if summarized:
        rows.append(_omitted_row(entries[TABLE_EDGE_ROWS:-TABLE_EDGE_ROWS], len(table.columns)))
    rows += [_row(entry, measured, names) for entry in tail]
    for row in rows:
        table.add_row(*(Text(printable(cell)) for cell in row))  # names from a file are not markup
    return table


def _print(*renderables: Any) -> None:
    """Prints tables and lines; a line is plain text (not rich markup), its control characters escaped."""
    from rich.console import Console
    from rich.text import Text

    console = Console(highlight=False)
    if not console.is_terminal:
        console = Console(highlight=False, width=200)
    console.print(*(Text(printable(item)) if isinstance(item, str) else item for item in renderables))


# --- the app -----------------------------------------------------------------------------------


class _Moments:
    """The std of one parameter's values seen piece by piece: count, mean and squared deviations, merged
    (Chan et al., 1979). A piece holding inf or NaN (an initializer whose arguments overflow the dtype,
    such as scale=1e300 in float32) raises, before it is written: its float64 mean is then not finite.
    """

    def __init__(self, entry: PlanEntry) -> None:
        self.entry = entry
        self.count, self.mean, self.squares = 0, 0.0, 0.0

    def add(self, piece: Any) -> None:
        flat = piece.reshape(-1)
        for start in range(0, flat.size, MOMENT_BLOCK):  # np.var's float64 temporaries stay one block's size
            self._add_block(flat[start : start + MOMENT_BLOCK])

    def _add_block(self, block: Any) -> None:
        import numpy as np

        count = block.size
        mean, variance = float(np.mean(block, dtype=np.float64)), float(np.var(block, dtype=np.float64))
        if not math.isfinite(mean):
            entry = self.entry
            raise InvalidArgumentError(
                f"parameter {entry.path!r} (rule {entry.rule!r}) would hold inf or NaN: "
                f"{entry.initializer!r} overflows {entry.dtype}; valid: arguments whose values fit the dtype"
            )
        total = self.count + count
        delta = mean - self.mean
        self.squares += variance * count + delta * delta * self.count * count / total
        self.mean += delta * count / total
        self.count = total

    @property
    def std(self) -> float:
        return math.sqrt(self.squares / self.count) if self.count else math.nan


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

    from initreg.progress import WriteProgress

    quiet, stream, chunk_bytes = not settings["progress"], settings["stream"], _chunk_bytes(settings)
    seed, metadata, chosen = settings["seed"], _metadata(settings), io.file_format(path)
    tensors = [io.TensorInfo(entry.path, entry.shape, entry.dtype) for entry in entries]
    io.free_space_for(path, io.planned_size(tensors, chosen, metadata))
    moments = {entry.path: _Moments(entry) for entry in entries}
    with _created_folder(path.parent), np.errstate(over="ignore", invalid="ignore"):  # _Moments tells of inf, NaN
        if stream and chosen == "safetensors":
            tree.save_entries(
                entries, seed, path, backend=backend, chunk_bytes=chunk_bytes, metadata=metadata, quiet=quiet,
                observe=lambda entry, piece: moments[entry.path].add(piece),
            )  # fmt: skip
        else:
            arrays = {}
            with WriteProgress(sum(entry.nbytes for entry in entries), len(entries), quiet=quiet) as progress:
                for entry in entries:
                    progress.start(entry.path)
                    arrays[entry.path] = tree.assemble(entry, seed, backend, chunk_bytes)
                    moments[entry.path].add(arrays[entry.path])
                    progress.advance(arrays[entry.path].nbytes)
            io.save(arrays, path, metadata=metadata)
    return {name: moment.std for name, moment in moments.items()}


def _rules_and_variables(settings: dict[str, Any]) -> tuple[Any, Mapping[str, Any] | None]:
    """The rules to plan with and their variables: a chosen recipe's (its variables updated with the
    model's `variables`), else `rules` with the model's variables. `settings["rules"]` and
    `settings["variables"]` become those used, for the file's metadata.
    """
    variables = settings["model"].get("variables") or {}
    recipe = settings.get("recipe")
    if not recipe:
        settings["variables"] = variables
        return settings["rules"], variables
    chosen = recipes.from_config(HydraConfig.get().runtime.choices["recipe"], recipe, variables)
    settings["rules"], settings["variables"] = recipe["rules"], chosen.variables
    return chosen.rules, None


def initialize(cfg: DictConfig) -> None:
    """The Hydra task: plan the model's tree by the rules, draw it, write it, print the table."""
    with _reported_errors():
        settings = cast(dict[str, Any], plain(OmegaConf.to_container(cfg, resolve=True, throw_on_missing=True)))
        check_settings(settings)
        spec, notes = model_spec(settings["model"])
        for note in notes:
            print(f"initreg: note: {printable(note)}", file=sys.stderr)
        rules, variables = _rules_and_variables(settings)
        _refuse_initializer_seeds(settings["rules"])  # the rules in use: the recipe's, if one is chosen
        entries = tree.plan(
            spec, rules, dtype=settings["dtype"], layout=settings["model"].get("layout"), variables=variables,
            ties=settings["model"].get("ties"), allow_unmatched_params=settings["allow_unmatched_params"],
            allow_unused_rules=settings["allow_unused_rules"],
        )  # fmt: skip
        total = sum(entry.size for entry in entries)
        if HydraConfig.get().mode == RunMode.MULTIRUN:
            print(f"job {HydraConfig.get().job.num}: {printable(' '.join(HydraConfig.get().overrides.task))}")
        if settings["dry_run"]:
            _print(
                _table(entries, None, full=settings["table"] == "full"),
                f"{total:,} parameters in {len(entries)} tensors; nothing written",
            )
            return
        pattern = str(cast(dict[str, Any], OmegaConf.to_container(cfg, resolve=False))["output"])
        path = _output_path(str(settings["output"]), pattern)
        backend = registry.get_backend(settings["backend"]["name"])
        measured = _draw(entries, settings, backend, path)
        _print(
            _table(entries, measured, full=settings["table"] == "full"),
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
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, sys.stdout.fileno())
            raise SystemExit(1) from None

    return run


@_quiet_when_stdout_closes
def main() -> None:
    """The console script: `initreg list`, or the Hydra app."""
    global _show_tracebacks
    if sys.argv[1:2] == ["check"]:
        from initreg.checking.command import main as check

        raise SystemExit(check(sys.argv[2:]))
    if sys.argv[1:2] == ["list"]:
        from initreg.listing import print_listing

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
        store_backend_options()
        if not OmegaConf.has_resolver("initreg_rules"):
            OmegaConf.register_new_resolver("initreg_rules", rules_choice)
        app()


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
    main()
