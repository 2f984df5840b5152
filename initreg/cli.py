"""The `initreg` command: a Hydra app that initializes a model's parameter tree and writes it to a file.

    initreg init=lecun_normal seed=3          # configs/config.yaml, composed with overrides
    initreg -m init=lecun_normal,he_normal seed=1,2
    initreg list                              # initreg.listing.print_listing()

Plugins cannot ship yaml in configs/, so every name and alias in the initializer and backend
registries becomes a Hydra config-group option at start-up: ``init/<name>`` holds ``{name: <name>}``
plus the constructor's defaults (so ``init.scale=2`` overrides one), ``backend/<name>`` holds
``{name: <name>}``. They go into Hydra's ConfigStore, a config source Hydra searches next to
configs/; a yaml file of the same name in configs/<group>/ wins. So a newly installed plugin is
selectable at once, and Hydra's own validation, help and tab completion see every name.

Bad input ends the command with exit code 2 and one line on stderr; HYDRA_FULL_ERROR=1 shows the
traceback instead.
"""

from __future__ import annotations

import difflib
import inspect
import json
import math
import os
import signal
import sys
import warnings
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from importlib.resources import files
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn, cast

import hydra
from hydra.core.config_store import ConfigStore
from hydra.core.hydra_config import HydraConfig
from hydra.errors import HydraException, MissingConfigException
from hydra.types import RunMode
from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import MissingMandatoryValue, OmegaConfBaseException

from initreg import __version__, io, recipes, registry, tree
from initreg.dtypes import FLOAT_DTYPES
from initreg.errors import InitregError, InvalidArgumentError
from initreg.initializers.overlay import Overlay, region_text

if TYPE_CHECKING:
    from rich.table import Table

    from initreg.backends.base import Backend
    from initreg.initializers.base import Initializer
    from initreg.tree import PlanEntry

CONFIG_PACKAGE = "initreg.configs"
EXIT_BAD_INPUT = 2
MISSING = "???"  # OmegaConf's marker for a value that must be given
PRIMITIVES = (type(None), bool, int, float, str)

_show_tracebacks = False  # set by main() from HYDRA_FULL_ERROR


# --- errors: one line on stderr ----------------------------------------------------------------


def _fail(message: str) -> NoReturn:
    print(f"initreg: error: {message}", file=sys.stderr)
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
    return " ".join(str(error).split())  # Hydra's messages span lines


@contextmanager
def _reported_errors() -> Iterator[None]:
    """Turns bad input (ours, Hydra's, OmegaConf's, the file system's) into one line and exit 2."""
    try:
        yield
    except (InitregError, HydraException, OmegaConfBaseException, OSError) as error:
        if _show_tracebacks:
            raise
        _fail(_one_line(error))


def _show_warning(message: Warning | str, category: type[Warning], *_: Any, **__: Any) -> None:
    print(f"initreg: warning: {' '.join(str(message).split())}", file=sys.stderr)


# --- registry names as config-group options ----------------------------------------------------


def _shipped_options(group: str) -> set[str]:
    folder = files(CONFIG_PACKAGE) / group
    return {item.name.removesuffix(".yaml") for item in folder.iterdir() if item.name.endswith(".yaml")}


def _constructor_defaults(cls: type) -> dict[str, Any]:
    """The constructor's arguments with their defaults (MISSING if none), for `init.<argument>=` overrides.

    `seed` is left out: the tree's seed keys every parameter. Defaults that are not plain values are
    left out too (set them with `+init.<argument>=`).
    """
    defaults: dict[str, Any] = {}
    for name, parameter in inspect.signature(cls).parameters.items():
        if name == "seed" or parameter.kind in (parameter.VAR_POSITIONAL, parameter.VAR_KEYWORD):
            continue
        default = parameter.default
        if default is parameter.empty:
            defaults[name] = MISSING
        elif isinstance(default, PRIMITIVES):
            defaults[name] = default
        elif isinstance(default, (list, tuple)) and all(isinstance(item, PRIMITIVES) for item in default):
            defaults[name] = list(default)
    return defaults


def store_registry_options() -> None:
    """Adds every registered initializer and backend name, plugins' included, as an init/backend option."""
    store = ConfigStore.instance()
    shipped = _shipped_options("init")
    for entry in registry.initializers.entries():
        defaults = _constructor_defaults(entry.value)
        for name in (entry.name, *entry.aliases):
            _store_unless_shipped(store, "init", name, {"name": name, **defaults}, shipped, entry.origin)
    shipped = _shipped_options("backend")
    for backend in registry.backends.entries():
        for name in (backend.name, *backend.aliases):
            _store_unless_shipped(store, "backend", name, {"name": name}, shipped, backend.origin)


def _store_unless_shipped(
    store: ConfigStore, group: str, name: str, node: dict[str, Any], shipped: set[str], origin: str
) -> None:
    """Stores group/name, unless configs/ ships it; a shipped yaml hiding a plugin's name is warned about."""
    if name in shipped:
        if origin == registry.BUILT_IN:  # initreg's own configs for its own names
            return
        warnings.warn(
            f"{group}={name} selects configs/{group}/{name}.yaml, which hides the {group} {name!r} "
            f"registered by {origin}",
            stacklevel=2,
        )
        return
    store.store(group=group, name=name, node=node)


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
    for prefix, block in (model.get("repeat") or {}).items():
        count = block.get("count") if isinstance(block, Mapping) else None
        if isinstance(count, bool) or not isinstance(count, int) or count < 0 or "params" not in block:
            raise InvalidArgumentError(
                f"model.repeat.{prefix} must be {{count: a non-negative integer, params: {{...}}}}; got {block!r}"
            )
        if prefix in spec:
            raise InvalidArgumentError(f"model.repeat.{prefix} clashes with model.params.{prefix}")
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


def _output_path(output: str) -> Path:
    """`output`, with -job<N> before the suffix in a multirun so that no two jobs write one file."""
    path = Path(output)
    io.file_format(path)
    hydra_config = HydraConfig.get()
    if hydra_config.mode == RunMode.MULTIRUN:
        path = path.with_name(f"{path.stem}-job{hydra_config.job.num}{path.suffix}")
    return path


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


def _table(entries: Sequence[PlanEntry], measured: Mapping[str, float] | None) -> Table:
    """One row per parameter; fans for a plan, the measured std once drawn."""
    from rich.table import Table

    names = {entry.value: entry.name for entry in registry.initializers.entries()}
    table = Table(title="plan (dry run)" if measured is None else None)
    for column in ("path", "shape", "dtype", "rule", "initializer"):
        table.add_column(column, no_wrap=column == "path")
    extra = ("fan_in", "fan_out", "target std") if measured is None else ("target std", "measured std")
    for column in extra:
        table.add_column(column, justify="right")
    for entry in entries:
        row = [entry.path, str(list(entry.shape)), entry.dtype, entry.rule, _describe(entry.initializer, names)]
        if measured is None:
            row += [str(entry.fan_in), str(entry.fan_out), _number(entry.target_std)]
        else:
            row += [_number(entry.target_std), _number(measured[entry.path])]
        table.add_row(*row)
    return table


def _print(*renderables: Any) -> None:
    from rich.console import Console

    console = Console(highlight=False)
    if not console.is_terminal:
        console = Console(highlight=False, width=200)
    console.print(*renderables)


# --- the app -----------------------------------------------------------------------------------


class _Moments:
    """The std of values seen piece by piece: count, mean and squared deviations, merged (Chan et al., 1979)."""

    def __init__(self) -> None:
        self.count, self.mean, self.squares = 0, 0.0, 0.0

    def add(self, piece: Any) -> None:
        import numpy as np

        count = piece.size
        if not count:
            return
        mean, variance = float(np.mean(piece, dtype=np.float64)), float(np.var(piece, dtype=np.float64))
        total = self.count + count
        delta = mean - self.mean
        self.squares += variance * count + delta * delta * self.count * count / total
        self.mean += delta * count / total
        self.count = total

    @property
    def std(self) -> float:
        return math.sqrt(self.squares / self.count) if self.count else math.nan


def _flag(settings: Mapping[str, Any], name: str) -> bool:
    value = settings[name]
    if not isinstance(value, bool):
        raise InvalidArgumentError(f"{name} must be true or false; got {value!r}")
    return value


def _chunk_bytes(settings: Mapping[str, Any]) -> int:
    """chunk_mb (MiB, > 0; fractions allowed) in bytes."""
    value = settings["chunk_mb"]
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 < value < math.inf:
        raise InvalidArgumentError(f"chunk_mb must be a positive number of MiB, such as 64; got {value!r}")
    return max(1, int(value * 2**20))


def _draw(entries: Sequence[PlanEntry], settings: Mapping[str, Any], backend: Backend, path: Path) -> dict[str, float]:
    """Draws the planned tree and writes it to `path`; returns the measured std of each parameter.

    A .safetensors file is streamed (unless stream=false): no more than about chunk_mb of values is
    held at once. Otherwise the whole tree is made in memory and then written.
    """
    from initreg.progress import WriteProgress

    quiet, seed = not _flag(settings, "progress"), settings["seed"]
    moments = {entry.path: _Moments() for entry in entries}
    if _flag(settings, "stream") and io.file_format(path) == "safetensors":
        tree.save_entries(
            entries, seed, path, backend=backend, chunk_bytes=_chunk_bytes(settings),
            metadata=_metadata(settings), quiet=quiet, observe=lambda entry, piece: moments[entry.path].add(piece),
        )  # fmt: skip
    else:
        arrays = {}
        with WriteProgress(sum(entry.nbytes for entry in entries), len(entries), quiet=quiet) as progress:
            for entry in entries:
                progress.start(entry.path)
                arrays[entry.path] = backend.to_numpy(tree.generate(entry, seed, backend))
                moments[entry.path].add(arrays[entry.path])
                progress.advance(arrays[entry.path].nbytes)
        io.save(arrays, path, metadata=_metadata(settings))
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
        settings = cast(dict[str, Any], OmegaConf.to_container(cfg, resolve=True, throw_on_missing=True))
        spec, notes = model_spec(settings["model"])
        for note in notes:
            print(f"initreg: note: {note}", file=sys.stderr)
        rules, variables = _rules_and_variables(settings)
        entries = tree.plan(
            spec, rules, dtype=settings["dtype"], layout=settings["model"].get("layout"), variables=variables,
            ties=settings["model"].get("ties"), allow_unmatched_params=settings["allow_unmatched_params"],
            allow_unused_rules=settings["allow_unused_rules"],
        )  # fmt: skip
        total = sum(entry.size for entry in entries)
        if HydraConfig.get().mode == RunMode.MULTIRUN:
            print(f"job {HydraConfig.get().job.num}: {' '.join(HydraConfig.get().overrides.task)}")
        if settings["dry_run"]:
            _print(_table(entries, None), f"{total:,} parameters in {len(entries)} tensors; nothing written")
            return
        path = _output_path(str(settings["output"]))
        backend = registry.get_backend(settings["backend"]["name"])
        path.parent.mkdir(parents=True, exist_ok=True)
        measured = _draw(entries, settings, backend, path)
        _print(_table(entries, measured), f"wrote {path}: {total:,} parameters in {len(entries)} tensors")


def main() -> None:
    """The console script: `initreg list`, or the Hydra app."""
    global _show_tracebacks
    if sys.argv[1:2] == ["list"]:
        from initreg.listing import print_listing

        print_listing()
        return
    _show_tracebacks = os.environ.get("HYDRA_FULL_ERROR") == "1"
    os.environ["HYDRA_FULL_ERROR"] = "1"  # Hydra raises instead of printing, so errors reach us
    warnings.showwarning = _show_warning
    signal.signal(signal.SIGTERM, io.exit_on_signal)  # unwinds, so that a half-written temporary file is removed
    app = hydra.main(config_path=f"pkg://{CONFIG_PACKAGE}", config_name="config", version_base="1.3")(initialize)
    with _reported_errors():
        store_registry_options()
        if not OmegaConf.has_resolver("initreg_rules"):
            OmegaConf.register_new_resolver("initreg_rules", rules_choice)
        app()


if __name__ == "__main__":
    main()
