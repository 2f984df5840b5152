"""Where the values come from: a torch module, a mapping of arrays, or a .safetensors or .npz file.

Every source lists its tensors (name, shape, stored dtype) and gives a tensor's values as float64
pieces of consecutive rows (initreg.tree.chunk_indices), so that no more than about `chunk_bytes` of
one tensor is held at once. Files are read lazily, tensor by tensor and piece by piece, after
initreg.io.read_header has checked the whole header (a hostile one is refused in one line).
"""

from __future__ import annotations

import json
import math
import os
import struct
import zipfile
import zlib
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from initreg import io
from initreg.dtypes import EXACT_DTYPES, FLOAT_DTYPES, numpy_dtype, standardize_dtype
from initreg.errors import InitregError, InvalidArgumentError
from initreg.initializers.base import Shape
from initreg.rng import sliced_size
from initreg.spec import flatten
from initreg.write import chunk_indices

Index = tuple[slice, ...]


@dataclass(frozen=True)
class Stored:
    """A tensor as a source holds it: its name, shape and dtype name (any dtype a file may hold)."""

    name: str
    shape: Shape
    dtype: str

    @property
    def size(self) -> int:
        """The number of elements."""
        return math.prod(self.shape)


def pieces(shape: Shape, dtype: str, chunk_bytes: int) -> Iterator[Index]:
    """The indices of consecutive row ranges of <= chunk_bytes each (one whole piece for a 0-d tensor)."""
    if not shape:
        yield ()
        return
    yield from chunk_indices(shape, numpy_dtype(dtype).itemsize, chunk_bytes)


def _dtype_name(value: Any, name: str) -> str:
    try:
        return standardize_dtype(value, FLOAT_DTYPES + EXACT_DTYPES)
    except InitregError as error:
        raise InvalidArgumentError(f"parameter {name!r}: {error}") from None


class Source:
    """A source's tensors and their values; `layout` is the weight layout its shapes follow by default."""

    layout: str | None = None
    tensors: list[Stored]

    def values(self, tensor: Stored, chunk_bytes: int) -> Iterator[tuple[Index, Any]]:
        """(index, ``tensor[index]`` as a flat float64 NumPy array) for each piece, in order."""
        raise NotImplementedError

    def close(self) -> None:
        """Releases what the source holds open."""


class ArraySource(Source):
    """A mapping (nested, as a spec) of NumPy, JAX or torch arrays."""

    def __init__(self, arrays: Mapping[str, Any]) -> None:
        leaves: dict[str, Any] = flatten(arrays)
        shapes = [name for name, leaf in leaves.items() if not hasattr(leaf, "dtype")]
        if shapes:
            raise InvalidArgumentError(f"parameter {shapes[0]!r} is a shape, not an array; valid: arrays to check")
        self.arrays = leaves
        self.tensors = [Stored(name, tuple(leaf.shape), _dtype_name(leaf.dtype, name)) for name, leaf in leaves.items()]

    def values(self, tensor: Stored, chunk_bytes: int) -> Iterator[tuple[Index, Any]]:
        """Pieces of the array, converted piece by piece (a torch tensor is copied to the CPU one piece at a time)."""
        array = self.arrays[tensor.name]
        for index in pieces(tensor.shape, tensor.dtype, chunk_bytes):
            yield index, _float64(array[index])


def _float64(piece: Any) -> Any:
    """A NumPy, JAX or torch array as a flat float64 NumPy array (exact for every float dtype)."""
    import numpy as np

    if type(piece).__module__.startswith("torch"):
        piece = piece.detach()
        if piece.device.type == "meta":
            raise InvalidArgumentError("a tensor on the meta device has no values to check")
        piece = piece.to("cpu", copy=False)
        piece = piece.double() if piece.is_floating_point() else piece
        return piece.numpy().reshape(-1).astype(np.float64, copy=False)
    return np.asarray(piece).reshape(-1).astype(np.float64)


class ModuleSource(ArraySource):
    """A torch module's parameters by `named_parameters()` name (a tied parameter once), torch layout."""

    layout = "torch"

    def __init__(self, module: Any) -> None:
        super().__init__(dict(module.named_parameters()))


class SafetensorsSource(Source):
    """A .safetensors file, read piece by piece at the offsets its header gives."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.tensors = [Stored(t.name, t.shape, t.dtype) for t in io.read_header(path)]  # checks the header
        self.file = open(path, "rb")  # noqa: SIM115 (closed by close())
        (length,) = struct.unpack("<Q", self.file.read(8))
        header = json.loads(self.file.read(length))
        self.offsets = {
            name: 8 + length + entry["data_offsets"][0] for name, entry in header.items() if name != "__metadata__"
        }

    def values(self, tensor: Stored, chunk_bytes: int) -> Iterator[tuple[Index, Any]]:
        """Pieces read from the file in order (little-endian, as safetensors stores them)."""
        import numpy as np

        kind = numpy_dtype(tensor.dtype).newbyteorder("<")
        self.file.seek(self.offsets[tensor.name])
        for index in pieces(tensor.shape, tensor.dtype, chunk_bytes):
            count = sliced_size(tensor.shape, index)
            piece = np.frombuffer(self.file.read(count * kind.itemsize), dtype=kind, count=count)
            yield index, piece.astype(np.float64)

    def close(self) -> None:
        """Closes the file."""
        self.file.close()


class NpzSource(Source):
    """An .npz archive, each member's data streamed from the archive (compressed or not)."""

    def __init__(self, path: Path) -> None:
        self.path = str(path)
        self.tensors = [Stored(t.name, t.shape, t.dtype) for t in io.read_header(path)]  # checks the headers
        self.archive = zipfile.ZipFile(path)

    def values(self, tensor: Stored, chunk_bytes: int) -> Iterator[tuple[Index, Any]]:
        """Pieces read from the member in order; a Fortran-ordered array of rank >= 2 is read whole first.

        A member that cannot be read (damaged data, a bad CRC) is one error naming the array.
        """
        try:
            yield from self._values(tensor, chunk_bytes)
        except (zipfile.BadZipFile, zlib.error, EOFError, ValueError) as error:
            raise InvalidArgumentError(f"array {tensor.name!r} of {self.path!r} cannot be read ({error})") from None

    def _values(self, tensor: Stored, chunk_bytes: int) -> Iterator[tuple[Index, Any]]:
        import numpy as np

        with self.archive.open(tensor.name + ".npy") as member:
            version = np.lib.format.read_magic(member)
            readers = {(1, 0): np.lib.format.read_array_header_1_0, (2, 0): np.lib.format.read_array_header_2_0}
            _, fortran, kind = readers[version](member)
            if fortran and len(tensor.shape) > 1:
                whole = np.frombuffer(member.read(), dtype=kind).reshape(tensor.shape, order="F")
                for index in pieces(tensor.shape, tensor.dtype, chunk_bytes):
                    yield index, whole[index].reshape(-1).astype(np.float64)
                return
            for index in pieces(tensor.shape, tensor.dtype, chunk_bytes):
                count = sliced_size(tensor.shape, index)
                piece = np.frombuffer(member.read(count * kind.itemsize), dtype=kind, count=count)
                yield index, piece.astype(np.float64)

    def close(self) -> None:
        """Closes the archive."""
        self.archive.close()


def open_source(params: Any) -> Source:
    """The Source for a torch module, a mapping of arrays, or a path to a .safetensors or .npz file."""
    if isinstance(params, (str, os.PathLike)):
        path = Path(params)
        if io.file_format(path) == "npz":
            return NpzSource(path)
        return SafetensorsSource(path)
    if hasattr(params, "named_parameters"):
        return ModuleSource(params)
    if isinstance(params, Mapping):
        return ArraySource(params)
    raise InvalidArgumentError(
        f"params is {type(params).__name__}; valid: a torch module, a mapping of arrays, or a .safetensors or .npz path"
    )
