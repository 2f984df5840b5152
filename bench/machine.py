"""The machine a benchmark ran on, for the first line of its table."""

from __future__ import annotations

import os
import platform


def cpu_model() -> str:
    """The CPU's model name and core count, e.g. 'AMD EPYC, 2 cores'."""
    model = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as cpuinfo:
            model = next(line.split(":", 1)[1].strip() for line in cpuinfo if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    return f"{model}, {os.cpu_count()} cores"


def vector_bits() -> int:
    """The widest integer SIMD registers the CPU has: 512 (AVX-512F), 256 (AVX2), else 128."""
    try:
        with open("/proc/cpuinfo") as cpuinfo:
            flags = next(line.split(":", 1)[1].split() for line in cpuinfo if line.startswith("flags"))
    except (OSError, StopIteration):
        return 128
    return 512 if "avx512f" in flags else 256 if "avx2" in flags else 128


def load() -> str:
    """The 1-minute load average against the core count, e.g. 'load 1.9 on 2 cores'."""
    return f"load {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores"
