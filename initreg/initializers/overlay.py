"""Overlay: a tensor from a base initializer with regions overwritten by others (a rule's `index`).

Element e of the result is the value that the last part whose region holds e gives at e, where a
part's value at e is element e of the part's initializer's *whole* tensor, drawn from the same stream
(key) as the base. So ``generate_slice(index)`` is the base's slice with each part's slice of the
overlap written over it, and equals ``generate()[index]``: slices, chunks and shards stay exact. It
slices independently when its base and every part do.

Its target std is that of the mixture: with n_k the elements part k (the base is part 0) finally owns,
and m_k, s_k its mean and std, std^2 = sum n_k (s_k^2 + (m_k - m)^2) / N, m = sum n_k m_k / N.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from initreg.initializers.base import Array, Initializer, Shape
from initreg.rng import Key, sliced_size

if TYPE_CHECKING:
    from initreg.backends.base import Backend

Region = tuple[slice, ...]  # one slice with a positive step per axis
MAX_LATER_PARTS = 10  # beyond this many overlapping later parts, the owned counts are not worked out


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
        self.slices_independently = base.slices_independently and all(
            part.initializer.slices_independently for part in self.parts
        )

    def generate(self, shape: Shape, dtype: str, *, key: Key, backend: Backend, layout: str | None = None) -> Array:
        """base's whole tensor, each part's region then overwritten, in order, by the part's values there."""
        values = self.base.generate(shape, dtype, key=key, backend=backend, layout=layout)
        return self._overwrite(values, shape, tuple(slice(0, size, 1) for size in shape), dtype, key, backend, layout)

    def generate_slice(
        self, shape: Shape, index: tuple[slice, ...], dtype: str, *, key: Key, backend: Backend,
        layout: str | None = None,
    ) -> Array:  # fmt: skip
        """tensor[index] made on its own: base's slice, overwritten where each part's region meets `index`."""
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

    def fans(self, shape: Shape, layout: str | None = None) -> tuple[int, int]:
        """The base's fans."""
        return self.base.fans(shape, layout)

    def target_std(self, shape: Shape, layout: str | None = None) -> float:
        """The std of the mixture (module docstring); NaN if a part cannot tell its mean and std."""
        moments = self.moments(shape, layout)
        return math.nan if moments is None else moments[1]

    def moments(self, shape: Shape, layout: str | None = None) -> tuple[float, float] | None:
        """(mean, std) of the mixture (module docstring); None if a part cannot tell its own."""
        whole = Part(tuple(slice(0, size, 1) for size in shape), self.base)
        parts = (whole, *self.parts)
        total, first, second = 0, 0.0, 0.0
        for k, part in enumerate(parts):
            owned = _owned(part.region, [later.region for later in parts[k + 1 :]], shape)
            moments = part.initializer.moments(shape, part.layout or layout) if owned else (0.0, 0.0)
            if owned is None or moments is None:
                return None
            mean, std = moments
            total, first, second = total + owned, first + owned * mean, second + owned * (std * std + mean * mean)
        if not total:
            return 0.0, 0.0
        mean = first / total
        return mean, math.sqrt(max(0.0, second / total - mean * mean))

    def get_config(self) -> dict[str, Any]:
        """The base and the parts, described as text (an Overlay is made by a plan, not from a config)."""
        return {
            "base": repr(self.base),
            "parts": [[region_text(part.region), repr(part.initializer), part.layout] for part in self.parts],
        }


def _owned(region: Region, later: Sequence[Region], shape: Shape) -> int | None:
    """How many elements of `region` no later region covers (inclusion-exclusion over the later ones that
    meet it); None if too many meet it."""
    meeting = [other for other in later if _box(region, other, shape) is not None]
    if len(meeting) > MAX_LATER_PARTS:
        return None
    count = 0
    for size in range(len(meeting) + 1):
        for chosen in itertools.combinations(meeting, size):
            box: Region | None = region
            for other in chosen:
                box = None if box is None else _box(box, other, shape)
            if box is not None:
                count += (-1) ** size * sliced_size(shape, box)
    return count


def _box(a: Region, b: Region, shape: Shape) -> Region | None:
    """The region two regions share, or None if they share nothing."""
    overlap = overlap_slices(a, b, shape)
    return None if overlap is None else overlap[1]


def region_text(region: Region) -> str:
    """A region as start:stop:step per axis, in brackets."""
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
