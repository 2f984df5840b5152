"""Checks shared by the initializers of conv kernels (delta_orthogonal, dirac)."""

from __future__ import annotations

from initreg.errors import InvalidArgumentError, choices
from initreg.initializers.base import Shape
from initreg.initializers.fans import LAYOUTS


def conv_layout(shape: Shape, layout: str | None, default: str, name: str) -> str:
    """`layout`, else `default`, once it is a known layout and `shape` a conv kernel (rank 3, 4 or 5)."""
    chosen = layout or default
    if chosen not in LAYOUTS:
        raise InvalidArgumentError(f"unknown layout {chosen!r}; valid: {choices(LAYOUTS)}")
    if len(shape) not in (3, 4, 5):
        raise InvalidArgumentError(
            f"{name} needs a conv kernel of 3, 4 or 5 dimensions; received shape={shape} of rank {len(shape)}"
        )
    return chosen
