"""Overlay: a tensor from a base initializer with regions overwritten by others (a rule's `index`).

Element e of the result is the value that the last part whose region holds e gives at e, where a
part's value at e is element e of the part's initializer's *whole* tensor, drawn from the same stream
(key) as the base. So ``generate_slice(index)`` is the base's slice with each part's slice of the
overlap written over it, and equals ``generate()[index]``: slices, chunks and shards stay exact.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from initreg.initializers.base import Array, Initializer, Shape
from initreg.rng import Key

if TYPE_CHECKING:
    from initreg.backends.base import Backend

Region = tuple[slice, ...]  # one slice with a positive step per axis


@dataclass(frozen=True)
class Part:
    """`initializer`'s values over `region` of the tensor, fans read by `layout` (None: the tensor's)."""

    region: Region
    initializer: Initializer
    layout: str | None = None


class Overlay(Initializer):
    """`base`'s tensor with each part's region overwritten, in order, by that part's values."""

    def __init__(self, base: Initializer, parts: Sequence[Part]) -> None:
        self.base = base
        self.parts = tuple(parts)

    def generate(self, shape: Shape, dtype: str, *, key: Key, backend: Backend, layout: str | None = None) -> Array:
        values = self.base.generate(shape, dtype, key=key, backend=backend, layout=layout)
        return self._overwrite(values, shape, tuple(slice(0, size, 1) for size in shape), dtype, key, backend, layout)

    def generate_slice(
        self, shape: Shape, index: tuple[slice, ...], dtype: str, *, key: Key, backend: Backend,
        layout: str | None = None,
    ) -> Array:  # fmt: skip
        values = self.base.generate_slice(shape, index, dtype, key=key, backend=backend, layout=layout)
        return self._overwrite(values, shape, index, dtype, key, backend, layout)

    def _overwrite(
        self, values: Array, shape: Shape, index: tuple[slice, ...], dtype: str, key: Key, backend: Backend,
        layout: str | None,
    ) -> Array:  # fmt: skip
        """`values` (the tensor's `index`) with the overlap of each part's region written over it."""
        for part in self.parts:
            overlap = overlap_slices(index, part.region, shape)
            if overlap is None:
                continue
            local, absolute = overlap
            values[local] = part.initializer.generate_slice(
                shape, absolute, dtype, key=key, backend=backend, layout=part.layout or layout
            )
        return values

    def target_std(self, shape: Shape, layout: str | None = None) -> float:
        """NaN: the values mix several initializers."""
        return math.nan

    def get_config(self) -> dict[str, Any]:
        """The base and the parts, described as text (an Overlay is made by a plan, not from a config)."""
        return {
            "base": repr(self.base),
            "parts": [[_region_text(part.region), repr(part.initializer), part.layout] for part in self.parts],
        }


def _region_text(region: Region) -> str:
    return "[" + ", ".join(f"{part.start}:{part.stop}:{part.step}" for part in region) + "]"


def overlap_slices(index: Sequence[slice], region: Sequence[slice], shape: Shape) -> tuple[Region, Region] | None:
    """Where `region` meets the elements `index` selects: (slices into ``tensor[index]``, slices into the
    tensor), or None if they do not meet. Both take positive-step slices of a tensor of `shape`.
    """
    local, absolute = [], []
    for wanted, covered, size in zip(index, region, shape, strict=True):
        selected = range(*wanted.indices(size))
        common = intersect(selected, range(*covered.indices(size)))
        if not common:
            return None
        first = (common.start - selected.start) // selected.step
        local.append(slice(first, first + len(common) * (common.step // selected.step), common.step // selected.step))
        absolute.append(slice(common.start, common.start + len(common) * common.step, common.step))
    return tuple(local), tuple(absolute)


def intersect(a: range, b: range) -> range:
    """The elements two positive-step ranges share, as a range (the step is lcm of theirs)."""
    step = math.lcm(a.step, b.step)
    stop = min(a.stop, b.stop)
    first = a.start + max(0, -(-(b.start - a.start) // a.step)) * a.step  # a's first element >= b.start
    for candidate in range(first, min(stop, first + step), a.step):  # at most b.step / gcd candidates
        if candidate in b:
            return range(candidate, stop, step)
    return range(0)
