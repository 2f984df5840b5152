"""Any slice of a parameter, generated on its own: ``init_slice(init, shape, index, seed, path)``.

Element i of a parameter is a pure function of (seed, path, i) (see initreg.rng), so
``init_slice(init, shape, index, seed, path)`` equals ``full[index]`` where ``full`` is the whole
parameter drawn from the stream ``derive_key(seed, path)``: shards and chunks can be made on different
devices, processes or machines and assembled without ever making the whole tensor in one place.

An initializer declares whether it makes a slice on its own (``Initializer.slices_independently``): the
element-wise ones and the constants do; a whole-tensor one (Orthogonal, whose every element depends on
the whole matrix through its QR decomposition, and any initializer that declares nothing) makes the whole
tensor and gives its slice, so the values are the same either way. Callers that make one parameter in
many pieces ask the declaration, to make a whole-tensor parameter once and cut every piece from it.
"""

from __future__ import annotations

import numbers
from typing import Any

from initreg.backends.registry import get_backend
from initreg.dtypes import standardize_dtype
from initreg.errors import InvalidArgumentError
from initreg.initializers.base import Array, Initializer, Shape, standardize_shape
from initreg.initializers.lookup import get
from initreg.rng import derive_key

Index = tuple[slice, ...]


def init_slice(
    initializer: Any,
    shape: Any,
    index: Any,
    seed: int,
    path: str,
    dtype: Any = "float32",
    backend: Any = None,
    layout: str | None = None,
) -> Array:
    """``full[index]`` of the parameter at `path` drawn with `seed`, computed without the rest of it.

    `initializer` is anything `initreg.get` takes (a name, a serialized dict, an Initializer); its own
    seed is not used: the stream is ``derive_key(seed, path)``. `index` follows NumPy basic indexing:
    a slice, an int or Ellipsis, or a tuple of them; missing trailing axes are taken whole and an int
    drops its axis. `layout` ("keras" or "torch") names the axes fans are computed from.
    """
    init = as_initializer(initializer)
    shape = standardize_shape(shape)
    slices, dropped = normalize_index(index, shape)
    dtype = standardize_dtype(dtype, init.dtypes)
    seed_value = stream_seed(seed)
    if not isinstance(path, str):
        raise InvalidArgumentError(f"path must be a string such as 'dense.kernel'; got {path!r}")
    chosen = get_backend(backend)
    key = derive_key(seed_value, path)
    if is_whole(slices, shape):
        values = init.generate(shape, dtype, key=key, backend=chosen, layout=layout)
    else:
        forward, flipped = forward_slices(slices, shape)
        values = init.generate_slice(shape, forward, dtype, key=key, backend=chosen, layout=layout)
        if flipped:
            values = chosen.xp.flip(values, axis=flipped)
    if dropped:
        kept = tuple(size for axis, size in enumerate(values.shape) if axis not in dropped)
        values = chosen.xp.reshape(values, kept)
    return values


def stream_seed(seed: Any) -> int:
    """`seed` as the int that keys the stream; None, bools, floats and strings raise naming it."""
    if seed is None or isinstance(seed, bool) or not isinstance(seed, numbers.Integral):
        raise InvalidArgumentError(f"seed must be an integer; got {seed!r}")
    return int(seed)


def normalize_index(index: Any, shape: Shape) -> tuple[Index, tuple[int, ...]]:
    """(one slice per axis with explicit start and step, the axes an int index drops).

    Stops are explicit too, except None where a negative step runs through index 0; an empty selection
    is slice(0, 0, 1). An int i becomes slice(i, i + 1) (negative counts from the end); out-of-range
    ints, too many indices, more than one Ellipsis, or anything but slices, ints and Ellipsis raise.
    """
    parts = index if isinstance(index, tuple) else (index,)
    ellipses = [at for at, part in enumerate(parts) if part is Ellipsis]
    if len(ellipses) > 1:
        raise InvalidArgumentError(f"index {index!r} has more than one Ellipsis; at most one is valid")
    explicit = len(parts) - len(ellipses)
    if explicit > len(shape):
        raise InvalidArgumentError(f"index {index!r} has {explicit} entries for shape {shape} of rank {len(shape)}")
    if ellipses:
        at = ellipses[0]
        parts = (*parts[:at], *(slice(None),) * (len(shape) - explicit), *parts[at + 1 :])
    parts = (*parts, *(slice(None),) * (len(shape) - len(parts)))
    slices, dropped = [], []
    for axis, (part, size) in enumerate(zip(parts, shape, strict=True)):
        if isinstance(part, slice):
            if part.step == 0:
                raise InvalidArgumentError(f"index {index!r}: a slice step cannot be zero (axis {axis})")
            slices.append(_explicit(range(*part.indices(size))))
        elif isinstance(part, numbers.Integral) and not isinstance(part, bool):
            position = int(part) + size if part < 0 else int(part)
            if not 0 <= position < size:
                raise InvalidArgumentError(
                    f"index {part} is out of range for axis {axis} of shape {shape}; valid: {-size} .. {size - 1}"
                )
            slices.append(slice(position, position + 1, 1))
            dropped.append(axis)
        else:
            raise InvalidArgumentError(
                f"index entry {part!r} (axis {axis}) is not valid; valid: a slice, an int or Ellipsis"
            )
    return tuple(slices), tuple(dropped)


def _explicit(selected: range) -> slice:
    """A slice selecting exactly `selected` whatever the axis length (no negative start or stop)."""
    if not selected:
        return slice(0, 0, 1)
    return slice(selected.start, selected.stop if selected.stop >= 0 else None, selected.step)


def is_whole(slices: Index, shape: Shape) -> bool:
    """Whether normalized `slices` select every element of `shape` in order."""
    return all(range(*part.indices(size)) == range(size) for part, size in zip(slices, shape, strict=True))


def forward_slices(slices: Index, shape: Shape) -> tuple[Index, tuple[int, ...]]:
    """Slices with positive steps selecting the same elements, and the axes whose order is reversed."""
    forward, flipped = [], []
    for axis, (part, size) in enumerate(zip(slices, shape, strict=True)):
        selected = range(*part.indices(size))
        if selected.step < 0 and selected:
            selected = selected[::-1]
            flipped.append(axis)
        forward.append(_explicit(selected))
    return tuple(forward), tuple(flipped)


def as_initializer(identifier: Any) -> Initializer:
    """An Initializer from anything `initreg.get` takes; plain callables cannot make slices."""
    initializer = get(identifier)
    if not isinstance(initializer, Initializer):
        raise InvalidArgumentError(
            f"init_slice needs an initreg Initializer (a name, a serialized dict or an instance); got {identifier!r}"
        )
    return initializer
