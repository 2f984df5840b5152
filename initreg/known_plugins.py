"""What to say about an option name that is not there: which package provides it, or which names are close.

`KNOWN_PLUGINS` lists, for each registry group, the names that the plugin packages published with
initreg register, so that ``init=torch_default`` without initreg-extra installed says
``pip install initreg-extra`` instead of "not found". `unknown_option` is the one-line message of the
initreg command and of Hydra apps that use initreg's groups.
"""

from __future__ import annotations

import difflib
from collections.abc import Collection, Iterable

INITREG_EXTRA = "initreg-extra"
INITREG_TORCH = "initreg-torch"
EXTRA_INITIALIZERS = (
    "delta_orthogonal", "torch_default", "stft", "STFT", "STFTInitializer", "kaiming_normal", "kaiming_uniform",
    "xavier_normal", "xavier_uniform", "trunc_normal", "dirac", "sparse",
)  # fmt: skip
KNOWN_PLUGINS: dict[str, dict[str, str]] = {  # group -> name -> the package that registers it
    "init": dict.fromkeys(EXTRA_INITIALIZERS, INITREG_EXTRA),
    "backend": dict.fromkeys(("torch", "torch_cuda"), INITREG_TORCH),
}
MAX_SUGGESTIONS = 3
SIMILARITY = 0.6  # difflib's ratio a suggestion needs


def provider(group: str, name: str) -> str | None:
    """The package that registers `name` in `group`, if it is one of the known plugins'."""
    return KNOWN_PLUGINS.get(group, {}).get(name)


def close_matches(name: str, options: Iterable[str]) -> list[str]:
    """Up to three of `options` that `name` may be a misspelling of, closest first."""
    return difflib.get_close_matches(name, list(options), n=MAX_SUGGESTIONS, cutoff=SIMILARITY)


def unknown_option(group: str, name: str, options: Collection[str], aliases: Collection[str] = ()) -> str:
    """One line about `group`'s missing option `name`: the package to install if a known plugin provides it,
    else the close matches and the valid `options` (`aliases` among them are left out of the list)."""
    package = provider(group, name)
    if package is not None:
        return f"unknown {group} {name!r}: {package} registers it and is not installed (pip install {package})"
    message = f"unknown {group} {name!r};"
    close = close_matches(name, options)
    if close:
        message += " did you mean " + " or ".join(repr(option) for option in close) + "?"
    listed = sorted(option for option in options if option not in aliases)
    if aliases:
        return message + f" valid: {', '.join(listed)} (and their aliases; see `initreg list`)"
    return message + f" valid: {', '.join(listed)}"
