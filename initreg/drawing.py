"""Drawing planned parameters: `generate` one, `init_tree` a whole tree in memory.

Parameter p is drawn from the stream ``derive_key(seed, p)``: its values depend on (seed, p) only,
not on the other parameters, their order, or the initializer's own seed.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from initreg import memory
from initreg.backends.numpy import NumpyBackend, fused_kernels
from initreg.backends.registry import get_backend
from initreg.errors import InitregError, prefix_message
from initreg.initializers.base import Array, Initializer, Shape
from initreg.initializers.overlay import Overlay
from initreg.planning import PlanEntry, plan
from initreg.rng import derive_key
from initreg.rules import RuleOptions, Rules
from initreg.slicing import stream_seed
from initreg.spec import unflatten

if TYPE_CHECKING:
    from typing_extensions import Unpack

    from initreg.backends.base import Backend


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
        needed = holding + draw_peak_bytes(initializer, shape, dtype, layout, fused_kernels() is not None)
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
    entries = plan(spec, rules, dtype=dtype, **options)
    chosen, seed = get_backend(backend), stream_seed(seed)
    return unflatten(with_aliases(entries, [generate_checked(entry, seed, chosen) for entry in entries]), like=spec)


def with_aliases(entries: Sequence[PlanEntry], values: Sequence[Any]) -> dict[str, Any]:
    """{path: value} of planned entries and their values, with each tied alias holding its parameter's value."""
    return {name: value for entry, value in zip(entries, values, strict=True) for name in (entry.path, *entry.aliases)}
