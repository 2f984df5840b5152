"""Fans: (fan_in, fan_out) of a weight shape, by Keras's rules, explicit axes, or a named layout.

A layout names where a weight's input and output axes are: "keras" is [..., in, out] (Keras's rules),
"torch" is [out, in, *kernel]. Every initializer reads its fans through `Initializer.fans`, which uses
`compute_fans` unless the initializer has axes of its own (VarianceScaling's input_axes/output_axes).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

from initreg.errors import InvalidArgumentError, choices

LAYOUTS = ("keras", "torch")


def layout_axes(layout: str, rank: int) -> tuple[tuple[int, ...], tuple[int, ...]] | None:
    """(input_axes, output_axes) of a named layout, or None for the Keras default rules.

    "torch" is PyTorch's [out, in, *kernel]: fan_in = in * receptive field, fan_out = out * receptive
    field. Below rank 2 every layout uses the Keras rules.
    """
    if layout not in LAYOUTS:
        raise InvalidArgumentError(f"unknown layout {layout!r}; valid: {choices(LAYOUTS)}")
    if layout == "keras" or rank < 2:
        return None
    kernel = tuple(range(2, rank))
    return (1, *kernel), (0, *kernel)


def compute_fans(
    shape: Sequence[int],
    input_axes: Sequence[int] | None = None,
    output_axes: Sequence[int] | None = None,
    layout: str | None = None,
) -> tuple[int, int]:
    """(fan_in, fan_out) of a weight shape, as Keras computes them.

    Rank 0: (1, 1). Rank 1: (n, n). Rank 2: (shape[0], shape[1]). Higher: the last two axes are
    (in, out), times the receptive field prod(shape[:-2]). With both input_axes and output_axes given,
    each fan is the product of those axes; one side alone is checked against the rank and otherwise ignored,
    as Keras does. `layout` ("keras" or "torch") names the axes instead.
    """
    shape = tuple(shape)
    if layout is not None:
        if input_axes is not None or output_axes is not None:
            raise InvalidArgumentError(f"give either layout ({layout!r}) or input_axes/output_axes, not both")
        axes = layout_axes(layout, len(shape))
        if axes is not None:
            input_axes, output_axes = axes
    check_axes(shape, input_axes, "input_axes")  # one side alone is ignored, as Keras does, but still checked
    check_axes(shape, output_axes, "output_axes")
    if input_axes is not None and output_axes is not None:
        return math.prod(shape[a] for a in input_axes), math.prod(shape[a] for a in output_axes)
    if len(shape) == 0:
        return 1, 1
    if len(shape) == 1:
        return shape[0], shape[0]
    receptive_field = math.prod(shape[:-2])
    return shape[-2] * receptive_field, shape[-1] * receptive_field


def check_axes(shape: tuple[int, ...], axes: Sequence[int] | None, name: str) -> None:
    """Raises naming `name` unless `axes` is None or a list of axes in -rank..rank-1 of `shape`."""
    rank = len(shape)
    for axis in as_axes(name, axes) or ():
        if not -rank <= axis < rank:
            raise InvalidArgumentError(
                f"{name} has axis {axis}, but shape {shape} has rank {rank}; valid axes: "
                + (f"{-rank} to {rank - 1}" if rank else "none (a scalar has no axes)")
            )


def as_axes(name: str, axes: Any) -> list[int] | None:
    """`axes` as a list of ints (None stays None); anything else raises naming `name`."""
    if axes is None:
        return None
    if (
        isinstance(axes, (str, bytes))
        or not isinstance(axes, Sequence)
        or not all(isinstance(a, int) and not isinstance(a, bool) for a in axes)
    ):
        raise InvalidArgumentError(f"{name} must be a list of integer axes, such as [0]; got {axes!r}")
    return list(axes)
