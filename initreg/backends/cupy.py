"""The CuPy backend: arrays made directly on the GPU from the same random stream.

A fused CUDA kernel (compiled once per process through NVRTC) computes, per thread, one Philox4x32-10
block, x = 2u - 1 from its words and the transform of ``initreg.rng``, and stores four float32 or two
float64 samples; a second kernel does the same for the flat indices of a slice. The kernel is built
with ``--fmad=false`` so that a * b + c rounds twice, as NumPy does: words are bit-identical to the
reference, uniform samples too, and samples through erfinv differ by a few ulp (CUDA's log versus
NumPy's). Everything else (Constant, Orthogonal's QR, ...) runs on the reference path with CuPy >= 14,
whose main namespace follows NumPy 2's array API.

Listing this backend imports neither CuPy nor anything heavy: availability is read from the import
system (is CuPy installed?) and from the CUDA driver through ctypes (is there a device?).
"""

from __future__ import annotations

import ctypes
import importlib.util
import math
from typing import Any

from initreg import rng
from initreg.backends.base import Array, Backend
from initreg.distributions import Distribution
from initreg.dtypes import compute_dtype
from initreg.errors import BackendUnavailableError
from initreg.lazy import locked_cached_property, once
from initreg.special import DOUBLE_CENTRAL, DOUBLE_MIDDLE, DOUBLE_TAIL, SINGLE_CENTRAL, SINGLE_TAIL

DRIVER_LIBRARIES = ("libcuda.so.1", "libcuda.so", "nvcuda.dll")
CUDA_ERROR_NO_DEVICE = 100
THREADS_PER_BLOCK = 256
MAX_BLOCKS = 1 << 16  # kernels loop over the rest (grid-stride)
COMPILE_OPTIONS = ("--fmad=false", "-std=c++17")
SAMPLES_PER_THREAD = {"float32": 4, "float64": 2}  # one Philox block: four words
SUFFIX = {"float32": "f32", "float64": "f64"}


@once
def cuda_driver_problem() -> str | None:
    """None when the CUDA driver sees a device, else why not. Asks libcuda itself through ctypes."""
    for name in DRIVER_LIBRARIES:
        try:
            driver = ctypes.CDLL(name)
            break
        except OSError:
            continue
    else:
        return "no CUDA driver (libcuda) can be loaded: this machine has no NVIDIA GPU driver"
    status = driver.cuInit(0)
    if status == CUDA_ERROR_NO_DEVICE:
        return "the CUDA driver found no CUDA device"
    if status != 0:
        return f"the CUDA driver failed to initialize (cuInit returned CUDA error {status})"
    count = ctypes.c_int(0)
    status = driver.cuDeviceGetCount(ctypes.byref(count))
    if status != 0 or count.value == 0:
        return "the CUDA driver found no CUDA device"
    return None


def _literal(value: float, precision: str) -> str:
    """An exact C++ hex literal of `value` rounded to `precision`, as NumPy rounds a Python scalar."""
    if precision == "float64":
        return float(value).hex()
    import numpy as np

    return float(np.float32(value)).hex() + "f"


def _horner_source(coefficients: tuple[float, ...], precision: str) -> str:
    """special.horner as C++ statements on `t` into `p`: p = c[0]; p = c[i] + p * t; ..."""
    lines = [f"p = {_literal(coefficients[0], precision)};"]
    lines += [f"p = {_literal(c, precision)} + p * t;" for c in coefficients[1:]]
    return " ".join(lines)


def _erfinv_source() -> str:
    """special.erfinv in float32 (two branches) and float64 (three), from its coefficient tables."""
    return f"""
__device__ float giles_erfinv(float x) {{
    float w = -logf((1.0f - x) * (1.0f + x)), p, t;
    if (w < 5.0f) {{ t = w - 2.5f; {_horner_source(SINGLE_CENTRAL, "float32")} }}
    else {{ t = sqrtf(w) - 3.0f; {_horner_source(SINGLE_TAIL, "float32")} }}
    return p * x;
}}
__device__ double giles_erfinv(double x) {{
    double w = -log((1.0 - x) * (1.0 + x)), p, t;
    if (w < 6.25) {{ t = w - 3.125; {_horner_source(DOUBLE_CENTRAL, "float64")} }}
    else if (w < 16.0) {{ t = sqrt(w) - 3.25; {_horner_source(DOUBLE_MIDDLE, "float64")} }}
    else {{ t = sqrt(w) - 5.0; {_horner_source(DOUBLE_TAIL, "float64")} }}
    return p * x;
}}
"""


_STREAM_SOURCE = """
typedef unsigned int u32;
typedef unsigned long long u64;

/* Philox4x32-10 of counter (block mod 2^32, block div 2^32, STREAM, 0): rng.philox4x32. */
__device__ void philox(u64 block, u32 k0, u32 k1, u32 out[4]) {
    u32 c0 = (u32)block, c1 = (u32)(block >> 32), c2 = STREAM, c3 = 0;
    #pragma unroll
    for (int round = 0; round < ROUNDS; ++round) {
        u32 hi0 = __umulhi(M0, c0), lo0 = M0 * c0, hi1 = __umulhi(M1, c2), lo1 = M1 * c2;
        c0 = hi1 ^ c1 ^ k0; c1 = lo1; c2 = hi0 ^ c3 ^ k1; c3 = lo0;
        k0 += W0; k1 += W1;
    }
    out[0] = c0; out[1] = c1; out[2] = c2; out[3] = c3;
}

/* rng.symmetric_unit: x = (2k + 1 - 2^m) 2^-m, exact. */
__device__ float unit_f32(u32 word) {
    int k = (int)(word >> 8);
    return (float)(2 * k + (1 - (1 << 24))) * 0x1p-24f;
}
__device__ double unit_f64(u32 high, u32 low) {
    long long k = ((long long)high << 21) | (long long)(low >> 11);
    return (double)(2 * k + (1 - (1LL << 53))) * 0x1p-53;
}

/* Aligned groups of samples, stored with one 16-byte write. */
struct alignas(16) float_x4 { float v[4]; };
struct alignas(16) double_x2 { double v[2]; };

/* np.clip of one value. */
template <typename real> __device__ real clip(real value, real low, real high) {
    value = value < low ? low : value;
    return value > high ? high : value;
}

/* rng.transform; q holds rng.transform_constants for `kind`, in the compute precision. */
template <typename real> __device__ real sample(int kind, const real* q, real x) {
    if (kind == UNIFORM) return clip<real>(q[0] + q[1] * x, q[2], q[3]);
    if (kind == NORMAL) return q[0] + q[1] * giles_erfinv(x);
    real z = clip<real>(q[2] * giles_erfinv(q[0] + q[1] * x), q[3], q[4]);
    return clip<real>(q[5] + q[6] * z, q[7], q[8]);
}

#define GRID_STRIDE(j, count) \\
    for (u64 j = (u64)blockIdx.x * blockDim.x + threadIdx.x; j < (count); j += (u64)blockDim.x * gridDim.x)

/* Elements 4j .. 4j+3 of a float32 tensor of n elements from block j. */
extern "C" __global__ void draw_f32(float* out, u64 n, u32 k0, u32 k1, int kind, const float* q) {
    GRID_STRIDE(j, (n + 3) / 4) {
        u32 w[4];
        philox(j, k0, k1, w);
        if (4 * j + 3 < n) {
            reinterpret_cast<float_x4*>(out)[j] = float_x4{{
                sample(kind, q, unit_f32(w[0])), sample(kind, q, unit_f32(w[1])),
                sample(kind, q, unit_f32(w[2])), sample(kind, q, unit_f32(w[3]))}};
        } else {
            for (u64 lane = 0; 4 * j + lane < n; ++lane) out[4 * j + lane] = sample(kind, q, unit_f32(w[lane]));
        }
    }
}

/* Elements 2j and 2j+1 of a float64 tensor of n elements from block j (two words each). */
extern "C" __global__ void draw_f64(double* out, u64 n, u32 k0, u32 k1, int kind, const double* q) {
    GRID_STRIDE(j, (n + 1) / 2) {
        u32 w[4];
        philox(j, k0, k1, w);
        double first = sample(kind, q, unit_f64(w[0], w[1]));
        if (2 * j + 1 < n) {
            reinterpret_cast<double_x2*>(out)[j] = double_x2{{first, sample(kind, q, unit_f64(w[2], w[3]))}};
        } else {
            out[2 * j] = first;
        }
    }
}

/* out[i] = element index[i] of a float32 tensor. */
extern "C" __global__ void gather_f32(float* out, const u64* index, u64 n, u32 k0, u32 k1, int kind, const float* q) {
    GRID_STRIDE(i, n) {
        u32 w[4];
        philox(index[i] >> 2, k0, k1, w);
        out[i] = sample(kind, q, unit_f32(w[index[i] & 3]));
    }
}

/* out[i] = element index[i] of a float64 tensor: words 2e and 2e+1 are lanes 2(e & 1) and 2(e & 1) + 1. */
extern "C" __global__ void gather_f64(double* out, const u64* index, u64 n, u32 k0, u32 k1, int kind, const double* q) {
    GRID_STRIDE(i, n) {
        u32 w[4];
        philox(index[i] >> 1, k0, k1, w);
        u32 lane = 2 * (u32)(index[i] & 1);
        out[i] = sample(kind, q, unit_f64(w[lane], w[lane + 1]));
    }
}

/* Words start .. start+n-1 of the stream: rng.words_range. */
extern "C" __global__ void words(u32* out, u64 start, u64 n, u32 k0, u32 k1) {
    GRID_STRIDE(i, n) {
        u32 w[4];
        philox((start + i) >> 2, k0, k1, w);
        out[i] = w[(start + i) & 3];
    }
}
"""


def kernel_source() -> str:
    """The CUDA C++ source of the kernels, with the constants of initreg.rng and initreg.special."""
    constants = {
        "STREAM": f"{rng.MAIN_STREAM}u",
        "ROUNDS": str(rng.PHILOX_ROUNDS),
        "M0": f"{rng.PHILOX_M0:#x}u",
        "M1": f"{rng.PHILOX_M1:#x}u",
        "W0": f"{rng.PHILOX_W0:#x}u",
        "W1": f"{rng.PHILOX_W1:#x}u",
        "UNIFORM": str(rng.UNIFORM),
        "NORMAL": str(rng.NORMAL),
    }
    defines = "".join(f"#define {name} {value}\n" for name, value in constants.items())
    return defines + _erfinv_source() + _STREAM_SOURCE


class CupyBackend(Backend):
    """CuPy arrays on the current CUDA device, drawn by a fused kernel."""

    def unavailable_reason(self) -> str | None:
        """Why CuPy cannot run here (not installed; no CUDA driver or device), or None; cupy is not imported."""
        if importlib.util.find_spec(self.module) is None:
            return "cupy is not installed (pip install 'initreg[cupy]', or the cupy wheel for your CUDA version)"
        return cuda_driver_problem()

    @locked_cached_property
    def xp(self) -> Any:
        """The cupy module, imported on first use; BackendUnavailableError says why it cannot be."""
        reason = self.unavailable_reason()
        if reason:
            raise BackendUnavailableError(f"backend {self.name!r} is unavailable: {reason}")
        try:
            import cupy
        except ImportError as error:
            raise BackendUnavailableError(
                f"backend {self.name!r} is unavailable: cannot import cupy: {error}"
            ) from error
        return cupy

    @locked_cached_property
    def _kernels(self) -> Any:
        return self.xp.RawModule(code=kernel_source(), options=COMPILE_OPTIONS)

    def _launch(self, kernel: str, threads: int, *arguments: Any) -> None:
        blocks = min(MAX_BLOCKS, -(-threads // THREADS_PER_BLOCK))
        self._kernels.get_function(kernel)((blocks,), (THREADS_PER_BLOCK,), arguments)

    def _stream_arguments(self, dist: Distribution, key: rng.Key, dtype: str) -> tuple[Any, ...]:
        """key0, key1, the distribution code and its constants on the device."""
        import numpy as np

        kind, constants = rng.transform_constants(dist, dtype)
        values = np.array(constants, dtype=compute_dtype(dtype))
        return np.uint32(key[0]), np.uint32(key[1]), np.int32(kind), self.xp.asarray(values)

    def draw(self, dist: Distribution, key: rng.Key, shape: tuple[int, ...], dtype: str) -> Array:
        """The whole tensor from one launch of the fused kernel: the reference's words and transforms."""
        import numpy as np

        precision = compute_dtype(dtype)
        size = math.prod(shape)
        out = self.xp.empty((size,), dtype=precision)
        if size:
            threads = -(-size // SAMPLES_PER_THREAD[precision])
            self._launch(
                f"draw_{SUFFIX[precision]}", threads, out, np.uint64(size), *self._stream_arguments(dist, key, dtype)
            )
        return self.cast(self.xp.reshape(out, shape), dtype)

    def draw_slice(
        self, dist: Distribution, key: rng.Key, shape: tuple[int, ...], index: tuple[slice, ...], dtype: str
    ) -> Array:
        """tensor[index], each element made from its flat index by the gather kernel; the rest is never made."""
        import numpy as np

        precision = compute_dtype(dtype)
        flat = rng.flat_indices(shape, index, self.xp)  # a fresh, C-contiguous uint64 array
        out = self.xp.empty(flat.shape, dtype=precision)
        if out.size:
            arguments = self._stream_arguments(dist, key, dtype)
            self._launch(f"gather_{SUFFIX[precision]}", out.size, out, flat, np.uint64(out.size), *arguments)
        return self.cast(out, dtype)

    def words(self, key: rng.Key, start: int, count: int) -> Array:
        """Words start .. start+count-1 of the main stream, computed on the device."""
        import numpy as np

        out = self.xp.empty((count,), dtype=self.xp.uint32)
        if count:
            self._launch("words", count, out, np.uint64(start), np.uint64(count), np.uint32(key[0]), np.uint32(key[1]))
        return out

    def cast(self, array: Array, dtype: str) -> Array:
        """`array` as `dtype`; the array itself when it already is (draws return fresh arrays)."""
        return array.astype(self.dtype(dtype), copy=False)

    def to_numpy(self, array: Array) -> Any:
        """A NumPy copy of a device array (`cupy.asnumpy`)."""
        return self.xp.asnumpy(array)


backend = CupyBackend("cupy", "cupy")
