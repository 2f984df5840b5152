"""Configs as plain data: OmegaConf containers to dicts, lists and scalars, the one conversion every reader uses."""

from __future__ import annotations

import sys
from collections.abc import Mapping
from typing import Any

from initreg.errors import InvalidArgumentError


def plain(value: Any) -> Any:
    """`value` with OmegaConf containers as dicts and lists (interpolations resolved), recursively; anything
    else as it is.

    A missing value (``???``) or an interpolation that cannot be resolved raises InvalidArgumentError
    naming OmegaConf's full key (``init.scale: Interpolation key 'nope' not found``).
    """
    omegaconf = sys.modules.get("omegaconf")  # no OmegaConf container can exist before it is imported
    if omegaconf is not None and isinstance(value, omegaconf.Container):
        try:
            value = omegaconf.OmegaConf.to_container(value, resolve=True, throw_on_missing=True)
        except omegaconf.errors.OmegaConfBaseException as error:
            raise InvalidArgumentError(_one_line(error)) from error
    if isinstance(value, Mapping):
        return {key: plain(item) for key, item in value.items()}
    if isinstance(value, list):
        return [plain(item) for item in value]
    return value


def _one_line(error: Exception) -> str:
    """OmegaConf's first line (the rest repeats keys and types), led by the full key where it does not name it."""
    first = str(error).strip().splitlines()[0]
    full_key = getattr(error, "full_key", None)
    return f"{full_key}: {first}" if full_key and full_key not in first else first
