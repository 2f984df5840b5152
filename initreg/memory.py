"""The memory a draw needs, estimated before anything is allocated, against the memory available.

A tensor drawn whole on the NumPy backend needs its values in the compute dtype (float32, or float64
for float64), plus the cast to the output dtype where that differs, plus the draw's temporaries: a
sixteenth of the compute array on the fused path, REFERENCE_BYTES_PER_COMPUTE_BYTE times it on the
reference path (NumPy without numba). Orthogonal and Identity state their own needs (`peak_bytes`; see
``initreg.drawing.draw_peak_bytes``).
The available memory is the least of the system's MemAvailable and the room left under the process's
cgroup limit, if one is set. Draws needing less than MIN_CHECKED_BYTES are not checked, so that trees
of many small tensors pay nothing.
"""

from __future__ import annotations

import math
import os
from pathlib import Path

from initreg.dtypes import compute_dtype, numpy_dtype
from initreg.errors import OutOfMemoryError

Shape = tuple[int, ...]

MIN_CHECKED_BYTES = 16 << 20  # 16 MiB
MAX_BYTES_PER_ELEMENT = 128  # per output element no estimate exceeds: 8 (1 + 12) a draw, 9 x 8 + 8 Orthogonal's QR
REFERENCE_BYTES_PER_COMPUTE_BYTE = 12  # measured: up to 11.25 (a float32 normal's first draw)
FUSED_BYTES_PER_COMPUTE_BYTE = 1 / 16  # measured: 0.03 (the threads' tiles and the rows' start indices)
CGROUP_FILES = (  # (limit, usage): cgroup v2, then v1; a v1 limit above 2^60 means none is set
    ("/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory.current"),
    ("/sys/fs/cgroup/memory/memory.limit_in_bytes", "/sys/fs/cgroup/memory/memory.usage_in_bytes"),
)
NO_CGROUP_LIMIT = 1 << 60


def itemsize(dtype: str) -> int:
    """Bytes per element of the canonical dtype `dtype`."""
    return int(numpy_dtype(dtype).itemsize)


def elementwise_peak_bytes(shape: Shape, dtype: str, fused: bool) -> int:
    """Bytes a draw of `shape` holds at its peak: n c (1 + t) + (n o if o's dtype is not c's).

    n elements, c bytes each in the compute dtype, o in `dtype`, t = FUSED_BYTES_PER_COMPUTE_BYTE on the
    fused path and REFERENCE_BYTES_PER_COMPUTE_BYTE on the reference path.
    """
    size, compute = math.prod(shape), compute_dtype(dtype)
    temporaries = FUSED_BYTES_PER_COMPUTE_BYTE if fused else REFERENCE_BYTES_PER_COMPUTE_BYTE
    cast = 0 if compute == dtype else size * itemsize(dtype)
    return math.ceil(size * itemsize(compute) * (1 + temporaries)) + cast


def available_bytes() -> int | None:
    """The memory this process can still allocate: min(MemAvailable, cgroup limit - usage); None if unknown."""
    known = [room for room in (_system_available(), _cgroup_room()) if room is not None]
    return min(known) if known else None


def _system_available() -> int | None:
    """/proc/meminfo's MemAvailable, else the free physical pages (os.sysconf), else None."""
    try:
        with open("/proc/meminfo", encoding="ascii") as file:
            for line in file:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (AttributeError, ValueError, OSError):
        return None


def _cgroup_room() -> int | None:
    """The bytes left under this process's cgroup memory limit, or None without a limit."""
    for limit_file, usage_file in CGROUP_FILES:
        try:
            limit_text = Path(limit_file).read_text().strip()
            usage = int(Path(usage_file).read_text())
        except (OSError, ValueError):
            continue
        if limit_text == "max" or int(limit_text) >= NO_CGROUP_LIMIT:
            return None
        return max(0, int(limit_text) - usage)
    return None


def require(nbytes: int, what: str) -> None:
    """Raises OutOfMemoryError, naming `what`, the need and the memory available, if `nbytes` exceeds it."""
    if nbytes < MIN_CHECKED_BYTES:
        return
    available = available_bytes()
    if available is not None and nbytes > available:
        raise OutOfMemoryError(
            f"{what} needs about {byte_size(nbytes)} of memory at its peak, but {byte_size(available)} is available"
        )


def byte_size(nbytes: int) -> str:
    """Bytes exactly, and in decimal units: '4000000000000000 bytes (4.0 PB)'."""
    value, unit = float(nbytes), "bytes"
    for larger in ("kB", "MB", "GB", "TB", "PB", "EB"):
        if value < 1000:
            break
        value, unit = value / 1000, larger
    return f"{nbytes} bytes" + ("" if unit == "bytes" else f" ({value:.1f} {unit})")
