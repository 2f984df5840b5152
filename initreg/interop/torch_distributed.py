"""torch.distributed: DTensor parameters (FSDP2, tensor parallel, pipeline stages) filled shard by shard.

``initreg.interop.torch.initialize`` hands every DTensor parameter to this module. A rank fills only
its local shard, and each local element gets the value of the element of the whole parameter it
stands for, so the gathered ``full_tensor()`` equals the single-process ``initialize`` of the unsharded
model bit for bit, whatever the mesh and placements:

- Where the elements are: the placements are applied in mesh-dimension order, as DTensor does, to one
  list of global indices per tensor axis (`local_indices`). ``Shard(d)`` keeps the rank's
  ``torch.chunk`` piece of axis d (uneven and empty pieces included), ``_StridedShard`` (FSDP2 over
  TP) keeps the non-contiguous indices its own index mapping gives, ``Replicate`` keeps the axis
  whole. The local shard is then the product of these lists: ``full[ix_(indices_0, indices_1, ...)]``.
- How it is drawn: each axis's list is cut into runs of consecutive indices, the product of runs into
  blocks, and each block into pieces of consecutive rows of at most `chunk_bytes` (initreg.tree's
  ``chunk_indices``); each piece is ``generate_slice`` of its global slices, so a rank draws only its
  own elements and holds at most one piece of values besides its shard.
- Whole-tensor initializers (``slices_independently`` False: Orthogonal, an Overlay with a whole-tensor
  part, and any initializer that does not declare that it slices independently) are drawn
  whole, once per parameter, by every rank whose shard is not empty, and each takes its part: the
  values are the same, and such a rank holds one whole parameter (in its drawing dtype) for the time
  it fills that parameter.

Before drawing, ``check_same_rules`` compares a digest of the rules, seed, layout and variables across
the ranks of the default process group (one ``all_gather_object``), so that ranks given different
rules or seeds all stop with the same message instead of filling different shards or hanging.
"""

from __future__ import annotations

import hashlib
import itertools
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import torch
import torch.distributed as dist
from torch.distributed.tensor import DTensor, Replicate, Shard
from torch.distributed.tensor.placement_types import _StridedShard, _StridedShardOffsetMode

from initreg.backends.registry import backends, get_backend
from initreg.dtypes import numpy_dtype
from initreg.errors import InitregError, InvalidArgumentError, about
from initreg.initializers.base import Array, Initializer
from initreg.planning import PlanEntry
from initreg.rng import derive_key
from initreg.rules import RuleSet
from initreg.slicing import stream_seed
from initreg.write import DEFAULT_CHUNK_BYTES, chunk_indices

AxisIndices = Sequence[int]  # the global indices one axis of a local shard holds, in local order
Run = tuple[int, int, int]  # (local start, global start, length) of consecutive indices
CUDA_BACKEND = "torch_cuda"  # initreg-torch's backend for tensors on the current CUDA device


class RankMismatchError(InitregError, RuntimeError):
    """The ranks of a process group were given different rules, seeds, layouts or variables."""


def has_dtensors(module: torch.nn.Module) -> bool:
    """Whether any parameter of `module` is a DTensor."""
    return any(isinstance(parameter, DTensor) for parameter in module.parameters())


def rules_digest(ruleset: RuleSet, seed: Any) -> str:
    """blake2b-128 (hex) of the parsed rules (names, patterns, initializers with their configs, dtypes,
    layouts, regions, variables), the seed and the layout: equal on two ranks iff they draw alike.
    A seed that is not an integer raises its InitregError."""
    parts: list[Any] = [stream_seed(seed), ruleset.layout]
    for rule in ruleset.rules:
        init = rule.init
        kind = f"{type(init).__module__}.{type(init).__qualname__}" if isinstance(init, Initializer) else "template"
        parts.append(
            (rule.name, rule.match, kind, repr(init), rule.dtype, rule.layout, rule.index, rule.optional,
             sorted(rule.variables.items()))
        )  # fmt: skip
    return hashlib.blake2b(repr(parts).encode(), digest_size=16).hexdigest()


def check_same_rules(build: Callable[[], RuleSet], seed: Any) -> RuleSet:
    """The rule set `build()` makes; raises RankMismatchError on every rank of the default group unless all
    ranks have the same digest.

    A rank whose rules or seed are not valid takes part with its error as its digest, so the others stop too;
    it then raises its own error (as do all ranks if they all fail alike).
    """
    ruleset: RuleSet | None = None
    try:
        ruleset = build()
        mine, failure = rules_digest(ruleset, seed), None
    except InitregError as error:
        mine, failure = f"refused here: {error}", error
    gathered: list[Any] = [None] * dist.get_world_size()
    dist.all_gather_object(gathered, mine)
    if len(set(gathered)) > 1:
        groups: dict[str, list[int]] = {}
        for rank, digest in enumerate(gathered):
            groups.setdefault(digest, []).append(rank)
        described = "; ".join(f"ranks {ranks}: {digest}" for digest, ranks in groups.items())
        raise RankMismatchError(
            f"the ranks were given different rules, seeds, layouts or variables ({described}); "
            "every rank must call initialize with the same ones"
        )
    if failure is not None:
        raise failure
    assert ruleset is not None  # built, since nothing failed
    return ruleset


def local_indices(parameter: DTensor) -> tuple[AxisIndices, ...] | None:
    """Per axis, the global indices of this rank's local shard (None if the rank is not in the mesh).

    Placements are applied in mesh-dimension order, each to the indices the earlier ones left, as
    DTensor's compute_local_shape_and_global_offset does; Partial placements and a shard order other
    than the default one are refused.
    """
    mesh, placements, shape = parameter.device_mesh, parameter.placements, tuple(parameter.shape)
    coordinate = mesh.get_coordinate()
    if coordinate is None:
        return None
    spec = parameter._spec
    if not spec.use_strided_shard_as_shard_order and spec.shard_order != spec.compute_default_shard_order(placements):
        raise InvalidArgumentError(
            f"a DTensor with shard order {spec.shard_order} is not supported; valid: the default "
            "(mesh dimensions left to right) or _StridedShard placements"
        )
    indices: list[AxisIndices] = [range(size) for size in shape]
    for mesh_dim, placement in enumerate(placements):
        chunks, position = mesh.size(mesh_dim), coordinate[mesh_dim]
        if isinstance(placement, _StridedShard):
            held = indices[placement.dim]
            _, offsets = placement.local_shard_size_and_offset(len(held), chunks, position, _StridedShardOffsetMode.ALL)
            assert isinstance(offsets, list)
            indices[placement.dim] = [held[offset] for offset in offsets]
        elif isinstance(placement, Shard):
            held = indices[placement.dim]
            size, start = Shard.local_shard_size_and_offset(len(held), chunks, position)
            indices[placement.dim] = held[start : start + size]
        elif not isinstance(placement, Replicate):
            raise InvalidArgumentError(
                f"a parameter placed {placement} cannot be initialized; valid placements: Shard, "
                "_StridedShard, Replicate"
            )
    return tuple(indices)


def runs(indices: AxisIndices) -> list[Run]:
    """`indices` as maximal runs of consecutive values: (local start, global start, length) each."""
    if isinstance(indices, range) and indices.step == 1:  # what Shard and Replicate leave: one run
        return [(0, indices.start, len(indices))] if indices else []
    found: list[Run] = []
    for position, index in enumerate(indices):
        if found and found[-1][1] + found[-1][2] == index:
            local, start, length = found[-1]
            found[-1] = (local, start, length + 1)
        else:
            found.append((position, index, 1))
    return found


def shard_pieces(
    entry: PlanEntry, local: torch.Tensor, indices: Sequence[AxisIndices], seed: int, backend: Any,
    chunk_bytes: int = DEFAULT_CHUNK_BYTES,
) -> Iterator[tuple[torch.Tensor, Array]]:  # fmt: skip
    """(a view of `local`, the values for it) pairs covering the local shard whose global indices are
    `indices`, each drawn on its own (see the module docstring); a whole-tensor initializer's values are
    slices of one whole draw."""
    if local.numel() == 0:
        return
    chosen, key = get_backend(backend), derive_key(seed, entry.path)
    whole = None
    if not entry.shape or not entry.initializer.slices_independently:
        with about(f"parameter {entry.path!r} (rule {entry.rule!r})"):
            whole = entry.initializer.generate(entry.shape, entry.dtype, key=key, backend=chosen, layout=entry.layout)
    if not entry.shape:  # a 0-d parameter is replicated: its one element
        yield local, whole
        return
    itemsize = int(numpy_dtype(entry.dtype).itemsize)
    for block in itertools.product(*(runs(axis) for axis in indices)):
        for piece in chunk_indices(tuple(length for _, _, length in block), itemsize, chunk_bytes):
            target = _shifted(piece, [run[0] for run in block])
            source = _shifted(piece, [run[1] for run in block])
            if whole is None:
                with about(f"parameter {entry.path!r} (rule {entry.rule!r})"):
                    values = entry.initializer.generate_slice(
                        entry.shape, source, entry.dtype, key=key, backend=chosen, layout=entry.layout
                    )
            else:
                values = whole[source]
            yield local[target], values


def _shifted(index: tuple[slice, ...], starts: Sequence[int]) -> tuple[slice, ...]:
    """`index` (slices with explicit starts and stops, step 1) moved by `starts` along each axis."""
    return tuple(slice(start + part.start, start + part.stop, 1) for part, start in zip(index, starts, strict=True))


def parameter_pieces(
    entry: PlanEntry, parameter: DTensor, seed: int, backend: Any, chunk_bytes: int = DEFAULT_CHUNK_BYTES
) -> Iterator[tuple[torch.Tensor, Array]]:
    """`shard_pieces` of this rank's local shard of `parameter` (none if the rank is outside its mesh)."""
    indices = local_indices(parameter)
    if indices is None:
        return
    local = parameter.to_local()
    expected = tuple(len(axis) for axis in indices)
    if tuple(local.shape) != expected:
        raise InvalidArgumentError(
            f"parameter {entry.path!r}: the local shard has shape {tuple(local.shape)} but placements "
            f"{parameter.placements} give {expected}; its layout is not one initreg can read"
        )
    yield from shard_pieces(entry, local, indices, seed, device_backend(local, backend), chunk_bytes)


def device_backend(local: torch.Tensor, backend: Any) -> Any:
    """`backend`, or for a CUDA tensor (a shard or a whole parameter) without one, initreg-torch's CUDA
    backend when it is installed: it draws on the device (see initreg.interop.torch)."""
    if backend is None and local.is_cuda and CUDA_BACKEND in backends:
        return CUDA_BACKEND
    return backend
