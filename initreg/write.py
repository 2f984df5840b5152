"""Writing planned parameters to a .safetensors file piece by piece: `save_entries`, `save_tree`.

Each parameter is made in pieces of consecutive rows (``generate_slice`` of a row range, which is a
contiguous range of the file) of at most `chunk_bytes` each, so that memory is bounded by
`chunk_bytes`, not by the tree. The file is byte-identical to ``io.save`` of `init_tree`'s arrays.

Where the NumPy backend draws an element-wise initializer in float32 or float64 and its fused kernels
are loaded (or drawing the parameter would load them: ``backends.numpy.fused_kernels``),
the streamed write draws each piece with ``fused_cpu.fill_with_moments``: the values the backend gives,
bit for bit, and their moments (initreg.moments) from the same pass. Such a piece of at least
BATCH_BYTES is drawn into one of two arrays used in turn (`PieceBuffers`), not into fresh memory whose
pages the system would have to map and clear for every piece.
"""

from __future__ import annotations

import itertools
import math
import numbers
import os
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from initreg import io, memory
from initreg.ahead import BATCH_BYTES
from initreg.backends.numpy import NumpyBackend, fused_kernels
from initreg.backends.registry import get_backend
from initreg.drawing import generate_checked, require_draw
from initreg.dtypes import numpy_dtype
from initreg.errors import InvalidArgumentError, about
from initreg.initializers.base import ElementwiseInitializer, RandomInitializer, Shape
from initreg.moments import piece_moments
from initreg.planning import PlanEntry, plan
from initreg.progress import WriteProgress
from initreg.rng import derive_key
from initreg.rules import RuleOptions, Rules
from initreg.slicing import stream_seed

if TYPE_CHECKING:
    from typing_extensions import Unpack

    from initreg.distributions import Distribution

DEFAULT_CHUNK_BYTES = 64 << 20  # 64 MiB: the most bytes of values save_tree holds at once (by default)
FILLED_DTYPES = ("float32", "float64")  # dtypes the fill with moments draws in: their own compute precision

PieceMoments = tuple[int, float, float]  # (count, mean, m2) of a piece's values (see initreg.moments)


def _chunk_bytes(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 1:
        raise InvalidArgumentError(f"chunk_bytes must be a positive integer (bytes); got {value!r}")
    return int(value)


def chunk_indices(shape: Shape, itemsize: int, chunk_bytes: int) -> Iterator[tuple[slice, ...]]:
    """Indices of consecutive pieces of a row-major tensor of rank >= 1, in order, of <= chunk_bytes each.

    Pieces run along axis a, the first axis whose rows (the axes after it, whole) fit in chunk_bytes:
    a piece is as many such rows as fit, at single positions of the axes before a, ``(i, j, k0:k1, :, :)``
    for a = 2.
    Its elements are a contiguous range of the flattened tensor, and the pieces cover it in order.
    A single element larger than chunk_bytes makes a piece of its own.
    """
    last = len(shape) - 1
    axis = next(a for a in range(len(shape)) if a == last or math.prod(shape[a + 1 :]) * itemsize <= chunk_bytes)
    rows = max(1, chunk_bytes // (math.prod(shape[axis + 1 :]) * itemsize))
    trailing = tuple(slice(0, size, 1) for size in shape[axis + 1 :])
    for outer in itertools.product(*(range(size) for size in shape[:axis])):
        leading = tuple(slice(i, i + 1, 1) for i in outer)
        for start in range(0, shape[axis], rows):
            yield (*leading, slice(start, min(start + rows, shape[axis]), 1), *trailing)


def _comes_whole(entry: PlanEntry, chunk_bytes: int) -> bool:
    """Whether `generate_chunks` gives `entry` as one piece: it fits a chunk, is 0-d, or is whole-tensor."""
    return entry.nbytes <= chunk_bytes or not entry.shape or not entry.initializer.slices_independently


def generate_chunks(
    entry: PlanEntry, seed: int, backend: Any = None, chunk_bytes: int = DEFAULT_CHUNK_BYTES
) -> Iterator[Any]:
    """`entry`'s parameter as NumPy arrays of <= chunk_bytes each whose values, in turn, are its row-major values.

    Each piece is ``generate_slice`` of a range of rows (see `chunk_indices`), so it equals that part of
    `generate`'s tensor. A tensor of <= chunk_bytes, and one whose initializer is whole-tensor
    (``slices_independently`` False: Orthogonal, Identity, delta_orthogonal), comes whole, as one piece.
    """
    chosen, seed, chunk_bytes = get_backend(backend), stream_seed(seed), _chunk_bytes(chunk_bytes)
    if _comes_whole(entry, chunk_bytes):
        yield chosen.to_numpy(generate_checked(entry, seed, chosen))
        return
    key, itemsize = derive_key(seed, entry.path), int(numpy_dtype(entry.dtype).itemsize)
    for index in chunk_indices(entry.shape, itemsize, chunk_bytes):
        with about(f"parameter {entry.path!r} (rule {entry.rule!r})"):
            piece = entry.initializer.generate_slice(
                entry.shape, index, entry.dtype, key=key, backend=chosen, layout=entry.layout
            )
        yield chosen.to_numpy(piece)


def _filled_distribution(entry: PlanEntry, backend: Any) -> Distribution | None:
    """The distribution the fill with moments draws `entry` from, giving the values `generate_chunks`
    gives (the NumPy backend, an element-wise initializer that neither draws nor
    slices its own way, a float32 or float64 parameter); None where it cannot."""
    initializer = entry.initializer
    if (
        type(backend) is not NumpyBackend
        or entry.dtype not in FILLED_DTYPES
        or not isinstance(initializer, ElementwiseInitializer)
        or not initializer.slices_independently
        or type(initializer).generate is not RandomInitializer.generate
        or type(initializer).generate_slice is not ElementwiseInitializer.generate_slice
    ):
        return None
    return initializer.distribution_for(entry.shape, entry.layout)


def _piece_spans(entry: PlanEntry, chunk_bytes: int) -> Iterator[tuple[int, Shape]]:
    """(first element, shape) of each piece `generate_chunks` gives of `entry`, in order."""
    if _comes_whole(entry, chunk_bytes):
        yield 0, entry.shape
        return
    strides = [math.prod(entry.shape[axis + 1 :]) for axis in range(len(entry.shape))]
    for index in chunk_indices(entry.shape, int(numpy_dtype(entry.dtype).itemsize), chunk_bytes):
        yield (
            sum(part.start * stride for part, stride in zip(index, strides, strict=True)),
            tuple(part.stop - part.start for part in index),
        )


class PieceBuffers:
    """Two arrays that large pieces are drawn into in turn: a piece's memory is reused two such pieces later.

    That is safe for `io.save_streamed`'s pieces: a piece of at least BATCH_BYTES closes its batch
    (initreg.ahead), so the next one is in a later batch, and the one after it is made only once the
    batch of the first has been written.
    """

    def __init__(self) -> None:
        self._arrays: list[Any] = [None, None]
        self._turn = 0

    def take(self, count: int, dtype: Any) -> Any:
        """A flat array of `count` elements of `dtype` (a NumPy dtype) in the next buffer, grown if needed."""
        import numpy as np

        nbytes = count * dtype.itemsize
        if self._arrays[self._turn] is None or self._arrays[self._turn].nbytes < nbytes:
            self._arrays[self._turn] = None
            other = self._arrays[1 - self._turn]
            memory.require(nbytes + (0 if other is None else other.nbytes), "drawing a piece beside the last")
            self._arrays[self._turn] = np.empty(nbytes, np.uint8)
        array = self._arrays[self._turn][:nbytes].view(dtype)
        self._turn = 1 - self._turn
        return array


def _measured_chunks(
    entry: PlanEntry, seed: int, backend: Any, chunk_bytes: int, buffers: PieceBuffers, measured: bool
) -> Iterator[tuple[Any, PieceMoments | None]]:
    """`generate_chunks`'s pieces of `entry`, each with its moments (None unless `measured` where they
    would cost a pass of their own): drawn by the fill with moments where it can (see the module's
    docstring), a piece of at least BATCH_BYTES into `buffers`."""
    import numpy as np

    with about(f"parameter {entry.path!r} (rule {entry.rule!r})"):
        dist = _filled_distribution(entry, backend)
    # not counted: if the kernels would not serve this entry, generate_chunks's draws count themselves
    fused = None if dist is None else fused_kernels(entry.size, counted=False)
    if fused is None or dist is None:
        for piece in generate_chunks(entry, seed, backend, chunk_bytes):
            yield piece, piece_moments(piece) if measured else None
        return
    key, dtype = derive_key(seed, entry.path), numpy_dtype(entry.dtype)
    for first, shape in _piece_spans(entry, chunk_bytes):
        count = math.prod(shape)
        out = buffers.take(count, dtype) if count * dtype.itemsize >= BATCH_BYTES else np.empty(count, dtype)
        found = fused.fill_with_moments(out, dist, key, first)
        yield out.reshape(shape), found


def assemble(entry: PlanEntry, seed: int, backend: Any = None, chunk_bytes: int = DEFAULT_CHUNK_BYTES) -> Any:
    """`entry`'s parameter as one NumPy array, equal to `generate`'s, holding at most one piece besides it.

    The array is allocated once and filled with the pieces of `generate_chunks` in order; a parameter
    that comes as one piece is that piece. The output and a piece's draw are checked against the
    available memory before the output is allocated.
    """
    import numpy as np

    chosen, seed, chunk_bytes = get_backend(backend), stream_seed(seed), _chunk_bytes(chunk_bytes)
    pieces = generate_chunks(entry, seed, chosen, chunk_bytes)
    if _comes_whole(entry, chunk_bytes):
        return next(pieces)
    piece = (min(entry.size, max(1, chunk_bytes // memory.itemsize(entry.dtype))),)
    with about(f"parameter {entry.path!r} (rule {entry.rule!r}), {entry.nbytes} bytes held while its pieces are drawn"):
        require_draw(entry.initializer, piece, entry.dtype, entry.layout, chosen, holding=entry.nbytes)
    values = np.empty(entry.size, numpy_dtype(entry.dtype))
    start = 0
    for drawn in pieces:
        values[start : start + drawn.size] = drawn.reshape(-1)
        start += drawn.size
    return values.reshape(entry.shape)


def save_entries(
    entries: Sequence[PlanEntry],
    seed: int,
    path: str | os.PathLike[str],
    *,
    backend: Any = None,
    chunk_bytes: int = DEFAULT_CHUNK_BYTES,
    metadata: Mapping[str, str] | None = None,
    quiet: bool = False,
    observe: Callable[[PlanEntry, Any], None] | None = None,
    measure: Callable[[PlanEntry, PieceMoments], None] | None = None,
    stream: bool = True,
) -> Path:
    """Draws planned parameters straight into a .safetensors file, piece by piece (see `generate_chunks`).

    At most about `chunk_bytes` of values are held at once (plus a whole tensor whose initializer
    cannot make slices). ``observe(entry, piece)`` sees every piece before it is written (the piece's
    memory may be reused once the call returns), and ``measure(entry, (count, mean, m2))`` gets each
    piece's moments (initreg.moments), from the draw's own pass where the fill with moments draws it.
    Pieces are drawn while the ones before them are written (see `io.save_streamed`). A progress bar
    runs on stderr unless `quiet` or stderr is not a terminal. The file's size is checked against the
    free space before anything is drawn. Without `stream`, or to an .npz file, the whole tree is made
    in memory, each tensor as `assemble` makes it (the piece `observe` and `measure` see), and then
    written by `io.save`.
    """
    chosen, seed, chunk_bytes = get_backend(backend), stream_seed(seed), _chunk_bytes(chunk_bytes)
    planned = {entry.path: entry for entry in entries}
    tensors = [io.TensorInfo(entry.path, entry.shape, entry.dtype) for entry in entries]
    total = sum(entry.nbytes for entry in entries)
    if not stream or io.file_format(path) != "safetensors":
        arrays = {}
        with WriteProgress(total, len(entries), quiet=quiet) as progress:
            for entry in entries:
                progress.start(entry.path)
                arrays[entry.path] = assemble(entry, seed, chosen, chunk_bytes)
                if observe is not None:
                    observe(entry, arrays[entry.path])
                if measure is not None:
                    measure(entry, piece_moments(arrays[entry.path]))
                progress.advance(arrays[entry.path].nbytes)
        return io.save(arrays, path, metadata=metadata)
    buffers = PieceBuffers()
    with WriteProgress(total, len(entries), quiet=quiet) as progress:

        def pieces(tensor: io.TensorInfo) -> Iterator[Any]:
            entry = planned[tensor.name]
            progress.start(entry.path)
            for piece, found in _measured_chunks(entry, seed, chosen, chunk_bytes, buffers, measure is not None):
                if observe is not None:
                    observe(entry, piece)
                if measure is not None and found is not None:
                    measure(entry, found)
                nbytes = piece.nbytes
                yield piece
                del piece  # the writer drops it too: its memory may be reused
                progress.advance(nbytes)

        return io.save_streamed(tensors, pieces, path, metadata=metadata)


def save_tree(
    spec: Mapping[str, Any],
    rules: Rules,
    path: str | os.PathLike[str],
    seed: int = 0,
    dtype: Any = None,
    backend: Any = None,
    *,
    chunk_bytes: int = DEFAULT_CHUNK_BYTES,
    metadata: Mapping[str, str] | None = None,
    quiet: bool = False,
    **options: Unpack[RuleOptions],
) -> Path:
    """Writes the tree `init_tree` would make to a .safetensors file, holding <= ~chunk_bytes at a time.

    The file is byte-identical to ``io.save`` of `init_tree`'s arrays (tensors named by dotted path,
    in tree order; a tied tensor once, under its parameter's name) and is written atomically. See
    `plan` for the arguments, `save_entries` for the rest.
    """
    entries = plan(spec, rules, dtype=dtype, **options)
    return save_entries(entries, seed, path, backend=backend, chunk_bytes=chunk_bytes, metadata=metadata, quiet=quiet)
