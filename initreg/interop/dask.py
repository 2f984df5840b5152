"""Dask: parameter trees as dask arrays whose chunks are independent tasks, written without gathering.

``init_tree(spec, rules, seed)`` takes what ``initreg.init_tree`` takes and returns the same
structure holding dask arrays. Chunk `index` of parameter p is ``init_slice(init, shape, index, seed,
p)``: each chunk is its own task that depends on nothing but (seed, p, index), so any worker of any
machine can compute it, and ``.compute()`` equals ``initreg.init_tree(...)``. A whole-tensor initializer's
parameter (Orthogonal, delta_orthogonal, one that declares nothing: ``slices_independently`` is False) is
one chunk, made whole in one task.

``to_zarr`` and ``to_safetensors`` write such a tree with the workers writing their own chunks into
the target (a path every worker can reach), so no process ever holds more than its chunks. They run on
the active distributed Client, else on local threads. Both check the free space first (for zarr, the
uncompressed size) and write to a temporary name next to the target, renamed at the end; after a
failure, SIGTERM or SIGHUP the temporary is removed (once no local task is running, and none starts
after). The safetensors file is allocated in full before any chunk is written through a memory map, so
that a full disk is an error, not a SIGBUS. It is byte-identical to ``initreg.io.save`` of the in-memory
tree.
"""

from __future__ import annotations

import errno
import os
import sys
import threading
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import CancelledError, Future, ThreadPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING, Any, ParamSpec, TypeVar

import dask
import dask.array as da
import numpy as np
from dask.array.core import normalize_chunks

from initreg.drawing import with_aliases
from initreg.dtypes import numpy_dtype
from initreg.errors import InvalidArgumentError
from initreg.io import TensorInfo, free_space_for, planned_size, replacing, safetensors_header
from initreg.planning import PlanEntry, plan
from initreg.rules import RuleOptions, Rules
from initreg.slicing import init_slice, stream_seed
from initreg.spec import flatten, unflatten

if TYPE_CHECKING:
    from typing_extensions import Unpack

P = ParamSpec("P")
T = TypeVar("T")


class ParameterSource:
    """An array-like that dask's ``from_array`` slices chunk by chunk: ``source[index]`` is init_slice."""

    def __init__(self, entry: PlanEntry, seed: int) -> None:
        self.entry, self.seed = entry, seed
        self.shape, self.ndim, self.dtype = entry.shape, len(entry.shape), numpy_dtype(entry.dtype)

    def __getitem__(self, index: Any) -> np.ndarray:
        entry = self.entry
        values = init_slice(
            entry.initializer, entry.shape, index, self.seed, entry.path, entry.dtype, layout=entry.layout
        )
        return np.asarray(values)


def parameter_array(entry: PlanEntry, seed: int, chunks: Any = "auto") -> da.Array:
    """One planned parameter as a dask array of independent chunks (one chunk if its initializer is whole-tensor).

    `chunks` is anything dask takes for one array: "auto", a byte size such as "64MiB", an int per
    axis, a tuple, a dict by axis.
    """
    source = ParameterSource(entry, seed)
    if not entry.initializer.slices_independently:  # made in one task, whole
        chunks = entry.shape
    try:
        normalized = normalize_chunks(chunks, entry.shape, dtype=source.dtype)
    except (ValueError, TypeError) as error:
        raise InvalidArgumentError(
            f"chunks {chunks!r} do not fit parameter {entry.path!r} {entry.shape}: {error}"
        ) from error
    init = entry.initializer
    token = dask.base.tokenize(
        seed, entry.path, entry.shape, entry.dtype, entry.layout, type(init).__module__, type(init).__qualname__,
        init.get_config(),
    )  # fmt: skip
    meta = np.empty((0,) * source.ndim, dtype=source.dtype)
    name = f"initreg-{entry.path}-{token}"
    return da.from_array(source, chunks=normalized, name=name, lock=False, asarray=False, fancy=False, meta=meta)


def init_tree(
    spec: Mapping[str, Any],
    rules: Rules,
    seed: int = 0,
    dtype: Any = None,
    *,
    chunks: Any = "auto",
    **options: Unpack[RuleOptions],
) -> Any:
    """``initreg.init_tree`` with dask arrays as leaves: nothing is drawn until they are computed."""
    seed = stream_seed(seed)
    entries = plan(spec, rules, dtype=dtype, **options)
    return unflatten(with_aliases(entries, [parameter_array(entry, seed, chunks) for entry in entries]), like=spec)


class GatedThreadPool(ThreadPoolExecutor):
    """A ThreadPoolExecutor whose shutdown waits for every task that is running, on any of its threads,
    and after which no task starts, not even one queued before.

    ``ThreadPoolExecutor.submit`` starts a worker thread and only then records it. An exception raised
    in between (a signal's handler runs in the main thread, which submits dask's tasks) leaves a thread
    that ``shutdown(wait=True)`` does not join, free to run a queued task after the write was cleaned
    up. Here each task passes a gate that does not depend on knowing the threads.
    """

    def __init__(self, max_workers: int | None = None) -> None:
        super().__init__(max_workers)
        self._gate = threading.Condition()
        self._running = 0
        self._closed = False

    def submit(self, fn: Callable[P, T], /, *args: P.args, **kwargs: P.kwargs) -> Future[T]:
        """Schedules ``fn(*args, **kwargs)`` to run if the pool is not shut down by the time a thread takes it."""
        return super().submit(self._through_gate, fn, *args, **kwargs)

    def _through_gate(self, fn: Callable[P, T], /, *args: P.args, **kwargs: P.kwargs) -> T:
        with self._gate:
            if self._closed:
                raise CancelledError
            self._running += 1
        try:
            return fn(*args, **kwargs)
        finally:
            with self._gate:
                self._running -= 1
                self._gate.notify_all()

    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None:
        """Closes the gate (a task not started by now never starts) and, if `wait`, waits for the running ones."""
        with self._gate:
            self._closed = True
            if wait:
                self._gate.wait_for(lambda: not self._running)
        super().shutdown(wait, cancel_futures=cancel_futures)


def compute_all(collections: Sequence[Any]) -> None:
    """Computes `collections` (for their writes): on the distributed Client dask would use, if any,
    else on a local thread pool. If a task fails, this raises only once no task is running any more,
    so that cleaning up after it is final. Interrupted (Ctrl-C, SIGTERM), it cancels the Client's futures,
    or, on local threads, the tasks not yet started.
    """
    client = _active_client()
    if client is None:
        with GatedThreadPool(os.cpu_count()) as pool:  # leaving the block waits for running tasks
            dask.compute(*collections, scheduler="threads", pool=pool)
        return
    from distributed import wait

    futures = client.compute(list(collections))
    try:
        wait(futures)
        client.gather(futures)
    except BaseException:
        client.cancel(futures)
        raise


def _active_client() -> Any:
    """The distributed Client that dask would compute on now, or None (a local scheduler)."""
    owner = getattr(dask.base.get_scheduler(), "__self__", None)
    distributed = sys.modules.get("distributed")
    return owner if distributed is not None and isinstance(owner, distributed.Client) else None


def _dask_leaves(tree: Mapping[str, Any]) -> dict[str, da.Array]:
    flat = flatten(tree)
    wrong = [path for path, leaf in flat.items() if not isinstance(leaf, da.Array)]
    if wrong:
        raise InvalidArgumentError(f"expected a tree of dask arrays (from init_tree); {wrong[0]!r} is not one")
    return dict(flat)


def _new_target(path: str | os.PathLike[str]) -> Path:
    target = Path(path)
    if target.exists():
        raise InvalidArgumentError(f"{str(target)!r} exists already; remove it or choose another path")
    return target


def to_zarr(tree: Mapping[str, Any], path: str | os.PathLike[str]) -> Path:
    """Writes a tree of dask arrays to a zarr group at `path`, one array per dotted parameter path.

    Zarr chunks are the dask chunks, which must be regular (all equal but the last). bfloat16 has no
    zarr dtype: write it with to_safetensors.
    """
    leaves = _dask_leaves(tree)
    for name, array in leaves.items():
        if array.dtype.name == "bfloat16":
            raise InvalidArgumentError(f"parameter {name!r} is bfloat16, which zarr cannot hold; use to_safetensors")
    target = _new_target(path)
    free_space_for(target, sum(array.nbytes for array in leaves.values()))
    with replacing(target) as temporary:
        with GatedThreadPool(1) as pool:  # a signal cutting .result() short: leaving the block still waits for it
            stores = pool.submit(_zarr_stores, leaves, temporary).result()
        compute_all(stores)
    return target


def _zarr_stores(leaves: Mapping[str, da.Array], folder: Path) -> list[Any]:
    """Makes the zarr group at `folder` and its arrays (their metadata, written from zarr's event loop thread)
    and returns the delayed writes of `leaves` into them."""
    return [da.to_zarr(array, str(folder), component=name, compute=False) for name, array in leaves.items()]


class MappedTensor:
    """A dask store target: ``target[index] = chunk`` writes the chunk into the file through a memmap."""

    def __init__(self, path: Path, offset: int, shape: tuple[int, ...], dtype: np.dtype[Any]) -> None:
        self.path, self.offset, self.shape, self.dtype = path, offset, shape, dtype

    def __setitem__(self, index: Any, values: np.ndarray) -> None:
        mapped = np.memmap(self.path, dtype=self.dtype, mode="r+", offset=self.offset, shape=self.shape)
        mapped[index] = values
        mapped.flush()
        del mapped


def to_safetensors(
    tree: Mapping[str, Any], path: str | os.PathLike[str], *, metadata: Mapping[str, str] | None = None
) -> Path:
    """Writes a tree of dask arrays to one .safetensors file, each chunk written in place by its worker."""
    leaves = _dask_leaves(tree)
    infos = [TensorInfo(name, tuple(int(d) for d in array.shape), array.dtype.name) for name, array in leaves.items()]
    header = safetensors_header(infos, metadata)
    target = _new_target(path)
    size = planned_size(infos, "safetensors", metadata)
    free_space_for(target, size)
    with replacing(target) as temporary:
        with open(temporary, "wb") as file:
            file.write(header)
            _allocate(file.fileno(), size)
        sources, targets, offset = [], [], len(header)
        for info, array in zip(infos, leaves.values(), strict=True):
            if info.nbytes:
                sources.append(array)
                targets.append(MappedTensor(temporary, offset, info.shape, array.dtype))
            offset += info.nbytes
        compute_all([da.store(sources, targets, lock=False, compute=False)])
        with open(temporary, "rb+") as file:
            os.fsync(file.fileno())
    return target


def _allocate(descriptor: int, size: int) -> None:
    """Makes the file `size` bytes long with its blocks allocated, so that writes through a memory map
    cannot meet a full disk (which would be a SIGBUS); a full disk raises OSError here instead.
    Where the system cannot allocate ahead, the file is only extended."""
    if hasattr(os, "posix_fallocate"):
        try:
            os.posix_fallocate(descriptor, 0, size)
            return
        except OSError as error:
            if error.errno not in (errno.EINVAL, errno.EOPNOTSUPP):
                raise
    os.ftruncate(descriptor, size)
