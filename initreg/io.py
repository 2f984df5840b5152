"""Writing parameter files (.safetensors, .npz) atomically, and reading their shapes back.

safetensors layout: an 8-byte little-endian header length n, n bytes of JSON
``{name: {"dtype": "F32", "shape": [...], "data_offsets": [begin, end]}, "__metadata__": {...}}``
padded with spaces to a multiple of 8, then each tensor's raw little-endian row-major bytes, in header
order, offsets counted from the end of the header. The header depends only on names, shapes and
dtypes, so it can be written before any data is made, and equal inputs give byte-identical files.

.npz files are zip archives of .npy files, written uncompressed with a fixed timestamp so that they
are byte-identical too. NumPy has no bfloat16, so bfloat16 needs .safetensors.

Every file is written to a temporary name in the target's folder, flushed to disk and renamed over
the target: a reader sees the old file or the whole new one, never a partial file. While a file is
being written, SIGTERM, SIGHUP and SIGQUIT unwind like Ctrl-C (where Python's default handler is in place), so
that the temporary file is removed too. Before anything is written, the planned size is checked against
the free space of the target's folder; a write that fails anyway raises WriteError naming the target.

Headers read back are checked as the safetensors package checks them: every tensor's data_offsets span
exactly its shape's bytes, the spans tile the data from 0 without gap or overlap, and the data ends at
the end of the file; an .npz member's declared shape must fill the member's stored size.

`save` writes arrays that are all in memory; `save_streamed` writes a .safetensors file from pieces of
each tensor made on demand, so that a tree larger than memory can be written holding one piece at a
time. Both give the same bytes for the same values.
"""

from __future__ import annotations

import functools
import json
import math
import os
import secrets
import shutil
import signal
import stat
import struct
import threading
import tokenize
import zipfile
import zlib
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from io import BytesIO
from pathlib import Path
from typing import IO, Any, NoReturn

from initreg.ahead import one_batch_ahead
from initreg.direct_write import staged_writes
from initreg.dtypes import numpy_dtype
from initreg.errors import InitregError, InvalidArgumentError, WriteError, choices
from initreg.initializers.base import MAX_RANK, magnitude
from initreg.memory import byte_size

# NumPy dtype name -> (safetensors dtype, bytes per element)
SAFETENSORS_DTYPES: dict[str, tuple[str, int]] = {
    "bool": ("BOOL", 1),
    "uint8": ("U8", 1),
    "int8": ("I8", 1),
    "uint16": ("U16", 2),
    "int16": ("I16", 2),
    "float16": ("F16", 2),
    "bfloat16": ("BF16", 2),
    "uint32": ("U32", 4),
    "int32": ("I32", 4),
    "float32": ("F32", 4),
    "uint64": ("U64", 8),
    "int64": ("I64", 8),
    "float64": ("F64", 8),
}
FROM_SAFETENSORS = {code: name for name, (code, _) in SAFETENSORS_DTYPES.items()}
# every dtype code the safetensors package reads -> bits per element (some are narrower than a byte)
SAFETENSORS_BITS: dict[str, int] = {
    **{code: 8 * size for code, size in SAFETENSORS_DTYPES.values()},
    "F4": 4, "F6_E2M3": 6, "F6_E3M2": 6, "F8_E5M2": 8, "F8_E4M3": 8, "F8_E8M0": 8, "F8_E4M3FNUZ": 8,
    "F8_E5M2FNUZ": 8, "C64": 64,
}  # fmt: skip
FORMATS = {".safetensors": "safetensors", ".npz": "npz"}
MAX_HEADER_BYTES = 100_000_000  # the limit the safetensors package enforces
MAX_TENSORS = 1_000_000  # the most tensors a model may have, from a file's header or a config (GPT-2 XL has 580)
ZIP_EPOCH = (1980, 1, 1, 0, 0, 0)  # the earliest zip timestamp, written for reproducible archives
HEADER_ALIGNMENT = 8
NPZ_MEMBER_OVERHEAD = 2048  # bytes beyond the data and twice the name: zip headers and the .npy header
NPY_LENGTH_BYTES = {(1, 0): 2, (2, 0): 4}  # the size of the header length field of each .npy format read
TEMPORARY_NAME_BYTES = 230  # 255 less the dot, process id, random part and .tmp of a temporary name
TERMINATING_SIGNALS = tuple(getattr(signal, name) for name in ("SIGTERM", "SIGHUP", "SIGQUIT") if hasattr(signal, name))


@dataclass(frozen=True)
class TensorInfo:
    """A tensor's name, shape and dtype (a NumPy dtype name, or a safetensors code NumPy lacks)."""

    name: str
    shape: tuple[int, ...]
    dtype: str

    @property
    def nbytes(self) -> int:
        """Bytes of its data in a safetensors file."""
        return math.prod(self.shape) * SAFETENSORS_DTYPES[self.dtype][1]


def file_format(path: str | os.PathLike[str], format: str | None = None) -> str:
    """'safetensors' or 'npz': `format` if given, else the path's suffix."""
    if format is None:
        format = FORMATS.get(Path(path).suffix)
        if format is None:
            raise InvalidArgumentError(
                f"cannot tell the format of {os.fspath(path)!r} from its suffix; valid suffixes: {choices(FORMATS)}"
            )
    if format not in FORMATS.values():
        raise InvalidArgumentError(f"unknown file format {format!r}; valid: {choices(FORMATS.values())}")
    return format


@contextmanager
def atomic_file(path: str | os.PathLike[str]) -> Iterator[IO[bytes]]:
    """A binary file that replaces `path` only once the block completes, fsynced; else it vanishes.

    The temporary file is created next to the target (see `replacing`): with the usual permissions
    (0o666 less the umask, as `open` gives) for a new file; readable by its owner only while it is
    written when it replaces a file, whose mode and owner `replacing` then gives it.
    """
    target = Path(path)
    with replacing(target) as temporary:
        mode = 0o600 if target.exists() else 0o666
        descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0), mode)
        with os.fdopen(descriptor, "wb") as file:
            yield file
            file.flush()
            os.fsync(file.fileno())


@contextmanager
def replacing(target: Path) -> Iterator[Path]:
    """A fresh hidden path beside `target` for the block to write (a file or a folder).

    Once the block completes it gets the mode and, where permitted, the owner and group of the file it
    replaces (see `_keep_mode_and_owner`), it is renamed onto `target` (same file system, so the rename
    is atomic) and the rename is fsynced; if the block fails, or SIGTERM, SIGHUP or SIGQUIT arrives
    (see `termination_unwinds`), it is removed. An OSError becomes a WriteError naming `target`, not the
    temporary name. The temporary name keeps at most the first TEMPORARY_NAME_BYTES of the target's,
    so that it is no longer than the longest name file systems take (255 bytes).
    """
    kept = target.name.encode()[:TEMPORARY_NAME_BYTES].decode(errors="ignore")
    temporary = target.with_name(f".{kept}.{os.getpid()}.{secrets.token_hex(4)}.tmp")
    try:
        with termination_unwinds():
            yield temporary
            _keep_mode_and_owner(target, temporary)
            os.replace(temporary, target)
    except BaseException as error:
        with suppress(OSError):  # a failed clean-up must not hide why the write failed
            if temporary.is_dir():
                shutil.rmtree(temporary, ignore_errors=True)
            else:
                temporary.unlink(missing_ok=True)
        if isinstance(error, OSError) and not isinstance(error, InitregError):
            raise WriteError(f"cannot write {os.fspath(target)!r}: {error.strerror or error}") from error
        raise
    _fsync_folder(target.parent)


def _keep_mode_and_owner(old: Path, new: Path) -> None:
    """Gives `new` the permission bits of `old`, if it exists, and its owner and group where permitted.

    Changing the owner takes privileges; the group alone may still be set (to a group of the user's).
    The owner is set first, as a change of owner clears the set-user-ID and set-group-ID bits.
    """
    try:
        status = os.stat(old)
    except FileNotFoundError:
        return
    if hasattr(os, "chown"):
        for user, group in ((status.st_uid, status.st_gid), (-1, status.st_gid)):
            try:
                os.chown(new, user, group)
                break
            except PermissionError:
                continue
    os.chmod(new, stat.S_IMODE(status.st_mode))


def exit_on_signal(signum: int, frame: Any) -> NoReturn:
    """A signal handler that unwinds like Ctrl-C, exiting with status 128 + signum."""
    raise SystemExit(128 + signum)


@contextmanager
def termination_unwinds() -> Iterator[None]:
    """Inside the block SIGTERM, SIGHUP and SIGQUIT raise SystemExit(128 + signum), so that `finally` and `except` run.

    Only in the main thread, and for each signal only while it has Python's default handler (which
    ends the process at once); a handler the program installed itself is left alone.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    defaults = [signum for signum in TERMINATING_SIGNALS if signal.getsignal(signum) == signal.SIG_DFL]
    for signum in defaults:
        signal.signal(signum, exit_on_signal)
    try:
        yield
    finally:
        for signum in defaults:
            signal.signal(signum, signal.SIG_DFL)


def free_space_for(path: str | os.PathLike[str], nbytes: int) -> None:
    """Raises WriteError, naming both sizes, unless the folder of `path` has `nbytes` free.

    The folder may not exist yet: its nearest existing ancestor is asked (``shutil.disk_usage``). A
    file system that reports no size at all (such as /proc) is not checked: writing there tells.
    """
    folder = Path(os.path.abspath(path)).parent
    while not folder.exists() and folder != folder.parent:
        folder = folder.parent
    usage = shutil.disk_usage(folder)
    free = usage.free
    if usage.total and nbytes > free:
        raise WriteError(
            f"not enough space for {os.fspath(path)!r}: it needs {byte_size(nbytes)}, "
            f"{str(folder)!r} has {byte_size(free)} free"
        )


def _fsync_folder(folder: Path) -> None:
    """Makes a rename in `folder` durable (POSIX; elsewhere folders cannot be opened)."""
    if os.name != "posix":
        return
    descriptor = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)


def safetensors_header(tensors: Iterable[TensorInfo], metadata: Mapping[str, str] | None = None) -> bytes:
    """The length prefix and JSON header for `tensors`, stored contiguously in the given order."""
    header: dict[str, Any] = {}
    if metadata:
        if not all(isinstance(k, str) and isinstance(v, str) for k, v in metadata.items()):
            raise InvalidArgumentError(f"safetensors metadata must map strings to strings; got {metadata!r}")
        header["__metadata__"] = dict(metadata)
    offset = 0
    for tensor in tensors:
        if not tensor.name or tensor.name == "__metadata__" or tensor.name in header:
            raise InvalidArgumentError(f"tensor name {tensor.name!r} is empty, reserved or repeated")
        if tensor.dtype not in SAFETENSORS_DTYPES:
            raise InvalidArgumentError(
                f"tensor {tensor.name!r} has dtype {tensor.dtype!r}, which safetensors cannot hold; "
                f"valid: {choices(SAFETENSORS_DTYPES)}"
            )
        end = offset + tensor.nbytes
        header[tensor.name] = {
            "dtype": SAFETENSORS_DTYPES[tensor.dtype][0],
            "shape": list(tensor.shape),
            "data_offsets": [offset, end],
        }
        offset = end
    text = json.dumps(header, separators=(",", ":"), ensure_ascii=False).encode()
    text += b" " * (-(len(text) + 8) % HEADER_ALIGNMENT)
    return struct.pack("<Q", len(text)) + text


def _little_endian(array: Any) -> Any:
    """A C-contiguous, little-endian NumPy array with `array`'s values."""
    import numpy as np

    array = np.asarray(array, order="C")  # unlike ascontiguousarray, keeps 0-d arrays 0-d
    if array.dtype.byteorder == ">":
        array = array.astype(array.dtype.newbyteorder("<"))
    return array


def _write_safetensors(
    file: IO[bytes], infos: Sequence[TensorInfo], arrays: Mapping[str, Any], metadata: Mapping[str, str] | None
) -> None:
    import numpy as np

    header = safetensors_header(infos, metadata)
    with staged_writes(file, _safetensors_size(header, infos)) as write:
        write(memoryview(header))
        for array in arrays.values():
            write(memoryview(array.reshape(-1).view(np.uint8)))


def _checked_bytes(tensor: TensorInfo, pieces: Iterable[Any]) -> Iterator[memoryview]:
    """The bytes of `tensor`'s pieces one after another, checking their dtype and that they fill it exactly."""
    import numpy as np

    expected = numpy_dtype(tensor.dtype).newbyteorder("<")  # compared as a dtype: .name is slow
    written = 0
    for piece in pieces:
        array = _little_endian(np.asarray(piece))
        del piece
        if array.dtype != expected:
            raise InvalidArgumentError(
                f"a piece of tensor {tensor.name!r} has dtype {array.dtype.name!r}; valid: {tensor.dtype!r}"
            )
        if written + array.nbytes > tensor.nbytes:
            raise InvalidArgumentError(
                f"the pieces of tensor {tensor.name!r} hold more than its {tensor.nbytes} bytes (shape {tensor.shape})"
            )
        written += array.nbytes
        yield memoryview(array.reshape(-1).view(np.uint8))
        del array
    if written != tensor.nbytes:
        raise InvalidArgumentError(
            f"the pieces of tensor {tensor.name!r} hold {written} of its {tensor.nbytes} bytes (shape {tensor.shape})"
        )


def _write_npz(file: IO[bytes], arrays: Mapping[str, Any]) -> None:
    import numpy as np

    with zipfile.ZipFile(file, "w", compression=zipfile.ZIP_STORED) as archive:
        for name, array in arrays.items():
            if array.dtype.kind not in "biuf":
                raise InvalidArgumentError(
                    f"array {name!r} has dtype {array.dtype.name!r}, which .npz cannot hold faithfully; "
                    "write .safetensors instead"
                )
            entry = zipfile.ZipInfo(f"{name}.npy", date_time=ZIP_EPOCH)
            with archive.open(entry, "w", force_zip64=True) as member:
                np.lib.format.write_array(member, array, allow_pickle=False)


def save(
    arrays: Mapping[str, Any],
    path: str | os.PathLike[str],
    format: str | None = None,
    *,
    metadata: Mapping[str, str] | None = None,
) -> Path:
    """Writes named arrays to `path` atomically and returns it.

    format: "safetensors" or "npz"; by default taken from the suffix. `metadata` (strings) goes
    into the safetensors header and is not written to .npz. Arrays are anything `numpy.asarray` takes.
    The file's size is checked against the free space first; a failed write raises WriteError.
    """
    import numpy as np

    chosen = file_format(path, format)
    prepared = {}
    for name, array in arrays.items():
        if not isinstance(name, str) or not name:
            raise InvalidArgumentError(f"array names must be non-empty strings; got {name!r}")
        prepared[name] = _little_endian(np.asarray(array))
    if chosen == "npz":
        free_space_for(path, npz_size(prepared))
        with atomic_file(path) as file:
            _write_npz(file, prepared)
        return Path(path)
    infos = [TensorInfo(name, tuple(array.shape), array.dtype.name) for name, array in prepared.items()]
    free_space_for(path, planned_size(infos, chosen, metadata))
    with atomic_file(path) as file:
        _write_safetensors(file, infos, prepared, metadata)
    return Path(path)


def planned_size(tensors: Sequence[TensorInfo], format: str, metadata: Mapping[str, str] | None = None) -> int:
    """The bytes a file of `tensors` takes: exactly for "safetensors", an upper bound for "npz"."""
    if format == "npz":
        return npz_size({tensor.name: tensor for tensor in tensors})
    return _safetensors_size(safetensors_header(tensors, metadata), tensors)


def _safetensors_size(header: bytes, tensors: Iterable[TensorInfo]) -> int:
    """The bytes of a .safetensors file of `tensors` whose header is `header`."""
    return len(header) + sum(tensor.nbytes for tensor in tensors)


def npz_size(arrays: Mapping[str, Any]) -> int:
    """An upper bound on the bytes of an .npz of `arrays` (anything with .nbytes): data plus headers."""
    return sum(array.nbytes + NPZ_MEMBER_OVERHEAD + 2 * len(name.encode()) for name, array in arrays.items())


def save_streamed(
    tensors: Sequence[TensorInfo],
    pieces: Callable[[TensorInfo], Iterable[Any]],
    path: str | os.PathLike[str],
    *,
    metadata: Mapping[str, str] | None = None,
) -> Path:
    """Writes a .safetensors file atomically from pieces of its tensors, made on demand; returns `path`.

    The header is written first: it needs only the names, shapes and dtypes of `tensors`, stored in
    that order. Then, tensor by tensor, ``pieces(tensor)`` yields arrays (anything `numpy.asarray`
    takes) of the tensor's dtype whose values, in row-major order one after another, are the tensor's
    row-major values: a range of rows of a row-major tensor is a contiguous range of its bytes, so
    each piece is written at its offset as it comes, and dropped. The pieces are asked for in a worker
    thread, one batch ahead (see `initreg.ahead`): the next pieces are made while the last ones are
    written, and a piece is written before the one after the next batch is asked for, so that about two
    pieces (or two batches of BATCH_BYTES) are held at a time. For the same values the file is
    byte-identical to `save`'s. The file's size is checked against the free space before the first
    piece is asked for. A large file is written past the page cache (`initreg.direct_write`).
    """
    if file_format(path) != "safetensors":
        raise InvalidArgumentError(f"streamed writing makes .safetensors files; got {os.fspath(path)!r}")
    header = safetensors_header(tensors, metadata)
    size = _safetensors_size(header, tensors)
    free_space_for(path, size)
    with atomic_file(path) as file, staged_writes(file, size) as write:
        write(memoryview(header))
        ordered = (data for tensor in tensors for data in _checked_bytes(tensor, pieces(tensor)))
        for data in one_batch_ahead(ordered, len):
            write(data)
            del data  # dropped before the next is asked for: a piece's memory may be reused
    return Path(path)


def _reject_constant(name: str) -> NoReturn:
    raise ValueError(f"{name} is not valid JSON")


def _read_safetensors_header(file: IO[bytes], where: str, file_size: int) -> list[TensorInfo]:
    """The tensors of a safetensors header, checked as the safetensors package checks them."""
    prefix = file.read(8)
    length = struct.unpack("<Q", prefix)[0] if len(prefix) == 8 else -1
    if not 0 < length <= MAX_HEADER_BYTES:
        raise InvalidArgumentError(f"{where} is not a safetensors file (bad header length)")
    if 8 + length > file_size:
        raise InvalidArgumentError(
            f"{where} is not a safetensors file: its header length is {length} bytes, "
            f"but only {file_size - 8} follow the length"
        )
    try:
        header = json.loads(file.read(length), parse_constant=_reject_constant)
    except RecursionError as error:
        raise InvalidArgumentError(
            f"{where} is not a safetensors file (its JSON header is nested too deeply)"
        ) from error
    except ValueError as error:
        raise InvalidArgumentError(f"{where} is not a safetensors file (bad JSON header: {error})") from error
    if not isinstance(header, dict):
        raise InvalidArgumentError(f"{where} is not a safetensors file (its header is not a JSON object)")
    _check_count(len(header) - ("__metadata__" in header), where)
    metadata = header.pop("__metadata__", None) or {}
    if not isinstance(metadata, dict) or not all(isinstance(value, str) for value in metadata.values()):
        raise InvalidArgumentError(f"{where}: __metadata__ must map strings to strings")
    spans = []
    tensors = []
    for name, entry in header.items():
        tensor, span = _header_entry(name, entry, where)
        tensors.append(tensor)
        spans.append((span, name))
    end, last = 0, None
    for (begin, stop), name in sorted(spans):
        if begin != end:
            what = "overlaps the data before it" if begin < end else "leaves a gap after the data before it"
            raise InvalidArgumentError(
                f"{where}: tensor {name!r} starts at byte {begin} of the data, where {end} was expected; it {what}"
            )
        end, last = stop, name
    stored = file_size - 8 - length
    if end != stored:
        ending = "no tensor" if last is None else f"tensor {last!r}, the last in the data,"
        raise InvalidArgumentError(
            f"{where}: {ending} ends at byte {end} of the data, but the file holds {stored} bytes of data"
        )
    return tensors


def _header_entry(name: str, entry: Any, where: str) -> tuple[TensorInfo, tuple[int, int]]:
    """One tensor of a safetensors header and its data span, each checked against the others."""
    if not isinstance(entry, dict) or not {"dtype", "shape", "data_offsets"} <= entry.keys():
        raise InvalidArgumentError(f"{where}: tensor {name!r} needs dtype, shape and data_offsets; got {entry!r}")
    code, shape, offsets = str(entry["dtype"]), entry["shape"], entry["data_offsets"]
    if code not in SAFETENSORS_BITS:
        raise InvalidArgumentError(
            f"{where}: tensor {name!r} has dtype {entry['dtype']!r}; valid: {choices(SAFETENSORS_BITS)}"
        )
    if not isinstance(shape, list) or not all(type(d) is int and d >= 0 for d in shape) or len(shape) > MAX_RANK:
        raise InvalidArgumentError(
            f"{where}: tensor {name!r} has shape {entry['shape']!r}; valid: a list of at most {MAX_RANK} "
            "non-negative integers"
        )
    if not (isinstance(offsets, list) and len(offsets) == 2 and all(type(o) is int for o in offsets)) or not (
        0 <= offsets[0] <= offsets[1]
    ):
        raise InvalidArgumentError(
            f"{where}: tensor {name!r} has data_offsets {offsets!r}; valid: [begin, end], integers, 0 <= begin <= end"
        )
    bits = math.prod(shape) * SAFETENSORS_BITS[code]
    span = offsets[1] - offsets[0]
    if bits != 8 * span:
        needs = f"{magnitude(bits // 8)} bytes" if bits % 8 == 0 else f"{bits} bits, not a whole number of bytes"
        raise InvalidArgumentError(
            f"{where}: tensor {name!r} of dtype {code} and shape {shape} needs {needs}, "
            f"but its data_offsets {offsets} hold {span}"
        )
    return TensorInfo(name, tuple(shape), FROM_SAFETENSORS.get(code, code)), (offsets[0], offsets[1])


def _read_npz_header(file: IO[bytes], where: str) -> list[TensorInfo]:
    tensors = []
    try:
        with zipfile.ZipFile(file) as archive:
            members = [member for member in archive.infolist() if member.filename.endswith(".npy")]
            _check_count(len(members), where)
            for member in members:
                tensors.append(_npz_member(archive, member, where))
    except InitregError:
        raise
    except (zipfile.BadZipFile, zipfile.LargeZipFile, ValueError, NotImplementedError, RuntimeError, EOFError,
            zlib.error) as error:  # fmt: skip
        raise InvalidArgumentError(f"{where} is not an .npz file or cannot be read ({error})") from error
    return tensors


def _npz_member(archive: zipfile.ZipFile, member: zipfile.ZipInfo, where: str) -> TensorInfo:
    """The tensor an .npz member's .npy header declares, checked against the member's stored size."""
    name = member.filename.removesuffix(".npy")
    with archive.open(member) as file:
        shape, dtype = _npy_header(file, f"{where}: array {name!r}")
        data_bytes = member.file_size - file.tell()
    if len(shape) > MAX_RANK or not all(type(d) is int and d >= 0 for d in shape) or dtype.hasobject:
        raise InvalidArgumentError(
            f"{where}: array {name!r} has shape {shape!r} and dtype {dtype}; valid: at most {MAX_RANK} "
            "non-negative dimensions, no Python objects"
        )
    needed = math.prod(shape) * dtype.itemsize
    if needed != data_bytes:
        raise InvalidArgumentError(
            f"{where}: array {name!r} of dtype {dtype} and shape {list(shape)} needs {magnitude(needed)} "
            f"bytes, but its member stores {data_bytes}"
        )
    return TensorInfo(name, tuple(shape), dtype.name)


def _npy_header(file: IO[bytes], subject: str) -> tuple[tuple[Any, ...], Any]:
    """(shape, dtype) of the .npy header at the start of `file`; a header NumPy cannot parse raises naming `subject`.

    NumPy reads the header's Python literal with ``ast.literal_eval`` and, for format 1.0 and 2.0, retries
    a header it cannot parse through ``tokenize`` (for Python 2's ``1L``): a malformed header can raise
    SyntaxError, tokenize.TokenError, or, deeply nested, RecursionError or MemoryError, besides ValueError.
    Equal headers are parsed once (`_parsed_npy_header`): archives of many like tensors repeat them.
    """
    import numpy as np

    version = np.lib.format.read_magic(file)
    if version not in NPY_LENGTH_BYTES:
        raise InvalidArgumentError(f"{subject} has .npy format {version}; valid: 1.0, 2.0")
    prefix = file.read(NPY_LENGTH_BYTES[version])
    length = int.from_bytes(prefix, "little") if len(prefix) == NPY_LENGTH_BYTES[version] else 0
    header = prefix + file.read(length)
    try:
        return _parsed_npy_header(version, header)
    except (SyntaxError, tokenize.TokenError, RecursionError, MemoryError, TypeError) as error:
        problem = f"{type(error).__name__}: {error}"
        raise InvalidArgumentError(f"{subject} has a malformed .npy header ({problem})") from error


@functools.lru_cache(maxsize=256)
def _parsed_npy_header(version: tuple[int, int], header: bytes) -> tuple[tuple[Any, ...], Any]:
    """(shape, dtype) of an .npy header (its length field and text) of `version`, parsed by NumPy."""
    import numpy as np

    readers = {(1, 0): np.lib.format.read_array_header_1_0, (2, 0): np.lib.format.read_array_header_2_0}
    shape, _, dtype = readers[version](BytesIO(header))
    return shape, dtype


def _check_count(count: int, where: str) -> None:
    """Raises if a file declares more than MAX_TENSORS tensors, before any of them is read."""
    if count > MAX_TENSORS:
        raise InvalidArgumentError(f"{where} declares {count:,} tensors; valid: at most {MAX_TENSORS:,}")


FILE_KINDS = (
    (stat.S_ISDIR, "a folder"),
    (stat.S_ISFIFO, "a FIFO"),
    (stat.S_ISCHR, "a character device"),
    (stat.S_ISBLK, "a block device"),
    (stat.S_ISSOCK, "a socket"),
)


@contextmanager
def _regular_file(path: Path, where: str) -> Iterator[IO[bytes]]:
    """`path` opened for reading if it is a regular file (after symlinks); anything else raises naming what it is.

    The path is opened without blocking (a FIFO with no writer would block the open) and the opened
    descriptor is then checked, so that the path cannot change between the check and the open.
    """
    flags = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_BINARY", 0)
    descriptor = os.open(path, flags)
    mode = os.fstat(descriptor).st_mode
    if not stat.S_ISREG(mode):
        os.close(descriptor)
        kind = next((kind for test, kind in FILE_KINDS if test(mode)), "not a regular file")
        raise InvalidArgumentError(f"{where} is {kind}; valid: a regular file (or a symlink to one)")
    with os.fdopen(descriptor, "rb") as file:
        yield file


def read_header(path: str | os.PathLike[str]) -> list[TensorInfo]:
    """The names, shapes and dtypes stored in a .safetensors or .npz file, without reading the data.

    `path` must be a regular file or a symlink to one, declaring at most MAX_TENSORS tensors.
    """
    source = Path(path)
    where = repr(os.fspath(path))
    chosen = file_format(source)
    try:
        with _regular_file(source, where) as file:
            if chosen == "npz":
                return _read_npz_header(file, where)
            return _read_safetensors_header(file, where, os.fstat(file.fileno()).st_size)
    except OSError as error:
        raise InvalidArgumentError(f"cannot read {where}: {error.strerror or error}") from error
