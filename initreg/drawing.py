"""Drawing planned parameters: `generate` one, `init_tree` a whole tree in memory.

Parameter p is drawn from the stream ``derive_key(seed, p)``: its values depend on (seed, p) only,
not on the other parameters, their order, or the initializer's own seed.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from initreg import memory
from initreg.backends.numpy import NumpyBackend, fused_kernels, loaded_kernels
from initreg.backends.registry import get_backend
from initreg.errors import InitregError, prefix_message
from initreg.initializers.base import Array, ElementwiseInitializer, Initializer, Shape
from initreg.initializers.overlay import Overlay
from initreg.planning import Assignment, Assignments, PlanEntry, assign
from initreg.rng import derive_key, derive_keys
from initreg.rules import RuleOptions, Rules
from initreg.slicing import stream_seed
from initreg.spec import unflatten

if TYPE_CHECKING:
    from typing_extensions import Unpack

    from initreg.backends.base import Backend
    from initreg.distributions import Distribution

BATCHED_UP_TO = 1 << 12  # elements of a tensor drawn in one kernel call with others of its distribution
MIN_BATCH = 32  # tensors of one distribution and dtype from which they are drawn in one call
BATCH_ELEMENTS = 1 << 20  # elements per such call at most (the array their values are views of)


def generate(entry: PlanEntry, seed: int, backend: Any = None) -> Array:
    """One parameter, drawn from the stream keyed by (seed, entry.path) on `backend` (a name or Backend)."""
    return generate_checked(entry, stream_seed(seed), get_backend(backend))


def generate_checked(entry: PlanEntry, seed: int, backend: Backend) -> Array:
    """`generate` with a checked seed and a ready backend: the loop body of trees of many small tensors.

    A draw that needs more memory than is available is refused before anything is allocated (see
    `require_draw`).
    """
    try:
        require_draw(entry.initializer, entry.shape, entry.dtype, entry.layout, backend)
        return entry.initializer.generate(
            entry.shape, entry.dtype, key=derive_key(seed, entry.path), backend=backend, layout=entry.layout
        )
    except InitregError as error:  # what `about` does, without the cost of a context manager per parameter
        prefix_message(error, f"parameter {entry.path!r} (rule {entry.rule!r})")
        raise


def draw_peak_bytes(initializer: Initializer, shape: Shape, dtype: str, layout: str | None, fused: bool) -> int:
    """Bytes `initializer.generate(shape, dtype, ...)` holds at its peak on the NumPy backend (initreg.memory).

    An initializer with `peak_bytes` (Orthogonal, Identity) states its own; an Overlay needs its base's,
    or its output plus the largest of its parts' over the whole shape; any other draws element-wise.
    """
    own = getattr(initializer, "peak_bytes", None)
    if own is not None:
        return int(own(shape, dtype, layout, fused))
    if isinstance(initializer, Overlay):
        base = draw_peak_bytes(initializer.base, shape, dtype, layout, fused)
        parts = [draw_peak_bytes(part.initializer, shape, dtype, layout, fused) for part in initializer.parts]
        return max(base, math.prod(shape) * memory.itemsize(dtype) + max(parts, default=0))
    return memory.elementwise_peak_bytes(shape, dtype, fused)


def require_draw(
    initializer: Initializer, shape: Shape, dtype: str, layout: str | None, backend: Backend, holding: int = 0
) -> None:
    """Raises OutOfMemoryError if `holding` bytes plus a draw of `shape` on NumPy exceed the available memory.

    Other backends' memory is not checked; nor is a need below memory.MIN_CHECKED_BYTES.
    """
    if holding + math.prod(shape) * memory.MAX_BYTES_PER_ELEMENT < memory.MIN_CHECKED_BYTES:
        return
    if isinstance(backend, NumpyBackend):
        needed = holding + draw_peak_bytes(initializer, shape, dtype, layout, loaded_kernels() is not None)
        memory.require(needed, f"a {dtype} tensor of shape {list(shape)} drawn by {initializer!r}")


def init_tree(
    spec: Mapping[str, Any],
    rules: Rules,
    seed: int = 0,
    dtype: Any = None,
    backend: Any = None,
    **options: Unpack[RuleOptions],
) -> Any:
    """A tree of `spec`'s structure holding a freshly drawn array for every parameter (see `plan`).

    Parameter p gets ``rule.init.generate(shape, dtype, key=derive_key(seed, p), ...)``: the same
    (seed, p) always gives the same values, whatever else is in the tree. A tied alias in the spec
    gets the very array of its parameter.
    """
    planned = assign(spec, rules, dtype=dtype, **options)
    values = generate_all(planned, stream_seed(seed), get_backend(backend))
    return unflatten(_named(planned.paths, values, planned.aliases), like=spec)


def generate_all(planned: Assignments, seed: int, backend: Backend) -> list[Array]:
    """`generate_checked` of each parameter; on NumPy with the fused kernels, many small tensors in few calls.

    An ElementwiseInitializer's tensors of at most BATCHED_UP_TO elements, when MIN_BATCH or more share
    a distribution and dtype, are drawn together (`fused_cpu.draw_many`, up to BATCH_ELEMENTS elements a
    call, their keys derived in one pass): the same values, each a view of the array of its call (a copy
    where cast to a narrower dtype).
    """
    values: list[Array] = [None] * len(planned.paths)
    kernels = None
    if type(backend) is NumpyBackend:  # not counted: the draws left to generate_checked count themselves
        kernels = fused_kernels(_elements(planned), len(planned.paths), counted=False)
    if kernels is not None:
        import numpy as np  # loaded with the kernels; `import initreg` does not load it

        per_call = BATCH_ELEMENTS // BATCHED_UP_TO
        paths, chosen, shapes = planned.paths, planned.chosen, [assigned.shape for assigned in planned.assignments]
        for (dist, dtype), group in _small_groups(planned).items():
            for start in range(0, len(group) if len(group) >= MIN_BATCH else 0, per_call):
                batch = group[start : start + per_call]
                keys = np.frombuffer(derive_keys(seed, [paths[position] for position in batch]), "<u4").reshape(-1, 2)
                drawn = kernels.draw_many(dist, keys, [shapes[chosen[position]] for position in batch], dtype)
                if drawn[0].dtype != backend.dtype(dtype):  # computed in float32 for a narrower dtype
                    drawn = [backend.cast(value, dtype) for value in drawn]
                for position, value in zip(batch, drawn, strict=True):
                    values[position] = value
    return [
        generate_checked(planned.entry(position), seed, backend) if value is None else value
        for position, value in enumerate(values)
    ]


def _elements(planned: Assignments) -> int:
    """The number of elements of all the planned parameters."""
    sizes = [math.prod(assigned.shape) for assigned in planned.assignments]
    return sum(sizes[chosen] for chosen in planned.chosen)


def _small_groups(planned: Assignments) -> dict[tuple[Distribution, str], list[int]]:
    """{(distribution, dtype): positions} of the parameters an ElementwiseInitializer draws with at most
    BATCHED_UP_TO elements; one whose distribution cannot be made is left to `generate_checked` to report."""
    groups: dict[tuple[Distribution, str], list[int]] = {}
    joins = [_group_of(assigned, groups) for assigned in planned.assignments]
    for position, chosen in enumerate(planned.chosen):
        group = joins[chosen]
        if group is not None:
            group.append(position)
    return groups


def _group_of(assigned: Assignment, groups: dict[tuple[Distribution, str], list[int]]) -> list[int] | None:
    """The list of `groups` that parameters of `assigned` join (made if new), or None if each is drawn on its own."""
    initializer = assigned.initializer
    if not isinstance(initializer, ElementwiseInitializer) or math.prod(assigned.shape) > BATCHED_UP_TO:
        return None
    try:
        dist = initializer.distribution_for(assigned.shape, assigned.layout)
    except InitregError:
        return None
    return groups.setdefault((dist, assigned.dtype), [])


def with_aliases(entries: Sequence[PlanEntry], values: Sequence[Any]) -> dict[str, Any]:
    """{path: value} of planned entries and their values, with each tied alias holding its parameter's value."""
    return _named([entry.path for entry in entries], values, {entry.path: entry.aliases for entry in entries})


def _named(paths: Sequence[str], values: Sequence[Any], aliases: Mapping[str, tuple[str, ...]]) -> dict[str, Any]:
    """{path: value}, with each alias in `aliases` ({parameter: its aliases}) holding its parameter's value."""
    named = dict(zip(paths, values, strict=True))
    for parameter, names in aliases.items():
        for alias in names:
            named[alias] = named[parameter]
    return named
