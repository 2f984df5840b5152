"""`initreg check`: the command that checks a checkpoint against a recipe or rules.

    initreg check model.path=run/step0.safetensors recipe=hf_gpt2 variables.n_layer=12
    initreg check model.path=weights.npz init=he_normal --json
    initreg check model.path=weights.safetensors rules=rules.yaml html=report.html

One row per tensor (failures first) with the intended distribution, the intended and measured std, the
tensor's p-value and the verdict, then a summary line. Exit status 0 when every tensor conforms, 1 when
one does not, 2 on bad input (one line on stderr, nothing written). ``--json`` (or json=true) prints the
report as JSON instead; html=PATH also writes the HTML report (needs the `report` extra, matplotlib).
"""

from __future__ import annotations

import json
import math
import sys
from collections.abc import Mapping, Sequence
from importlib.resources import files
from typing import Any

from initreg.checking.conformance import DEFAULT_ALPHA, check
from initreg.checking.html import report_path, write_html
from initreg.errors import InitregError, InvalidArgumentError, choices, printable
from initreg.table import show

EXIT_OK, EXIT_FAILURES, EXIT_BAD_INPUT = 0, 1, 2
KEYS = {
    "model.path": "the .safetensors or .npz file to check",
    "recipe": "a shipped recipe's name (configs/public/recipe)",
    "init": "every weight's initializer (a name, a preset, or {name: ..., **config}); biases zeros",
    "rules": "a YAML file of rules, or the rules inline ({name: {match, init}, ...})",
    "variables.<name>": "a variable of the recipe or the rules' expressions",
    "layout": "keras or torch: how fans are read from shapes",
    "alpha": "the false-alarm rate across tensors (default 0.01)",
    "chunk_mb": "the most MiB of one tensor read at once (default 64)",
    "allow_unmatched_params": "true: tensors no rule matches are left out",
    "allow_unused_rules": "true: rules that match no tensor are ignored",
    "progress": "false: no progress bar (it is drawn only on a terminal)",
    "json": "true (or --json): the report as JSON on stdout",
    "html": "a path: the HTML report with histograms and QQ plots",
}
USAGE = "usage: initreg check model.path=FILE (recipe=NAME | init=NAME | rules=FILE) [KEY=VALUE ...] [--json]"


def _settings(arguments: Sequence[str]) -> dict[str, Any]:
    """`key=value` arguments as a dict (values parsed as YAML); --json is json=true."""
    import yaml

    settings: dict[str, Any] = {"variables": {}}
    for argument in arguments:
        if argument == "--json":
            settings["json"] = True
            continue
        key, equals, text = argument.partition("=")
        if not equals or not (key in KEYS or (key.startswith("variables.") and len(key) > len("variables."))):
            raise InvalidArgumentError(f"unknown argument {argument!r}; valid: {choices(KEYS)}, --json")
        try:
            value = yaml.safe_load(text) if text else None
        except yaml.YAMLError as error:
            raise InvalidArgumentError(f"{key}={text!r} is not a YAML value ({' '.join(str(error).split())})") from None
        if key.startswith("variables."):
            settings["variables"][key.removeprefix("variables.")] = value
        else:
            settings[key] = value
    return settings


def _rules(settings: Mapping[str, Any]) -> Any:
    """The recipe's name, or the rules of `init` or `rules`: exactly one of the three."""
    given = [key for key in ("recipe", "init", "rules") if settings.get(key) is not None]
    if len(given) != 1:
        raise InvalidArgumentError(f"give one of recipe=, init= or rules=; got {', '.join(given) or 'none'}")
    if given == ["recipe"]:
        return str(settings["recipe"])
    if given == ["init"]:
        init = _preset(settings["init"])
        return {
            "weights": {"match": "*", "init": init},
            "biases": {"match": "*.bias", "init": "zeros", "optional": True},
        }
    rules = settings["rules"]
    if isinstance(rules, str):
        rules = _yaml_file(rules)
    if not isinstance(rules, Mapping):
        raise InvalidArgumentError(f"rules must be a YAML file or mapping of {{name: {{match, init}}}}; got {rules!r}")
    return rules


def _preset(init: Any) -> Any:
    """A shipped init preset's config (configs/public/init/<name>.yaml), else `init` as given."""
    if isinstance(init, str):
        preset = files("initreg.configs.public") / "init" / f"{init}.yaml"
        if preset.is_file():
            return _yaml_file(str(preset))
    return init


def _yaml_file(path: str) -> Any:
    import yaml

    try:
        with open(path, encoding="utf-8") as file:
            return yaml.safe_load(file)
    except OSError as error:
        raise InvalidArgumentError(f"cannot read {path!r}: {error.strerror or error}") from None
    except yaml.YAMLError as error:
        raise InvalidArgumentError(f"{path!r} is not YAML ({' '.join(str(error).split())})") from None


def _flag(settings: Mapping[str, Any], key: str, default: bool) -> bool:
    value = settings.get(key, default)
    if not isinstance(value, bool):
        raise InvalidArgumentError(f"{key} must be true or false; got {value!r}")
    return value


def _chunk_bytes(settings: Mapping[str, Any]) -> int:
    value = settings.get("chunk_mb", 64)
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value <= 0:
        raise InvalidArgumentError(f"chunk_mb must be a positive number of MiB; got {value!r}")
    return max(1, int(value * 2**20))


def run(arguments: Sequence[str]) -> int:
    """Checks as the arguments say; prints the table or JSON; returns the exit status (0, 1)."""
    settings = _settings(arguments)
    if settings.get("model.path") is None:
        raise InvalidArgumentError(f"model.path is missing; {USAGE}")
    rules = _rules(settings)
    as_json = _flag(settings, "json", False)
    html = settings.get("html")
    if html is not None:
        html = report_path(str(html))
    report = check(
        str(settings["model.path"]), rules, variables=settings["variables"] or None, layout=settings.get("layout"),
        alpha=settings.get("alpha", DEFAULT_ALPHA), chunk_bytes=_chunk_bytes(settings),
        allow_unmatched_params=_flag(settings, "allow_unmatched_params", False),
        allow_unused_rules=_flag(settings, "allow_unused_rules", False), keep_samples=html is not None,
        quiet=as_json or not _flag(settings, "progress", True),
    )  # fmt: skip
    if html is not None:
        write_html(report, html)
    if as_json:
        print(json.dumps(report.to_dict(), allow_nan=False))
    else:
        show(report.table(), report.summary())
        if html is not None:
            show(f"wrote {html}")
    return EXIT_OK if report.ok else EXIT_FAILURES


def main(arguments: Sequence[str]) -> int:
    """`initreg check ARGUMENTS`: `run`, with bad input as one line on stderr and exit status 2."""
    if any(argument in ("-h", "--help") for argument in arguments):
        print(USAGE)
        for key, what in KEYS.items():
            print(f"  {key:24} {what}")
        return EXIT_OK
    try:
        return run(arguments)
    except BrokenPipeError:  # the reader of stdout went away: the console script ends quietly
        raise
    except (InitregError, OSError) as error:
        message = error.strerror if isinstance(error, OSError) and error.strerror else str(error)
        print(f"initreg: error: {printable(' '.join(message.split()))}", file=sys.stderr)
        return EXIT_BAD_INPUT
