"""The CuPy backend.

Everywhere: it reports why it cannot run (no cupy installed, no CUDA driver or device) and refuses
to be used with that reason. Its kernel source is also compiled for the CPU with a C++ compiler (a
few lines stand in for CUDA's built-ins) and checked against the reference, so that the kernel's
arithmetic is tested on every machine. On a GPU: the fused kernel against the NumPy reference
(words bit-identical, uniform samples bit-identical, the rest within a few ulp), slices, the
reference itself on CuPy, and initializers made with backend="cupy".
"""

from __future__ import annotations

import ctypes
import shutil
import subprocess
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest

import initreg
from initreg import registry, rng
from initreg.backends import cupy as cupy_module
from initreg.backends.cupy import CupyBackend, cuda_driver_problem, kernel_source
from initreg.backends.fused_cpu import parameters
from initreg.distributions import Distribution, NormalDist, TruncatedNormalDist, UniformDist
from initreg.errors import BackendUnavailableError

CUPY_REASON = cupy_module.backend.unavailable_reason()
requires_gpu = pytest.mark.skipif(CUPY_REASON is not None, reason=f"cupy backend unavailable: {CUPY_REASON}")
KEY = rng.derive_key(11, "layer.kernel")
DISTRIBUTIONS = [
    UniformDist(-0.3, 0.7),
    NormalDist(0.0, 1.0),
    TruncatedNormalDist(0.0, 0.05),
    NormalDist(0.5, 2.0),
    TruncatedNormalDist(0.1, 0.3, -1.5, 2.5),
    TruncatedNormalDist.between(0.1, 0.7, -0.3, 1.9),
]
PRECISIONS = ["float32", "float64"]
MAX_ULPS = 4
CONFIGS = {"constant": {"value": 0.25}, "identity": {"gain": 2.0}}

# Stand-ins for CUDA's built-ins: one thread in one block walks the whole grid-stride loop.
CPU_SHIM = r"""
#include <math.h>
#define __global__
#define __device__ static inline
struct Dim3 { unsigned int x; };
static const Dim3 threadIdx = {0}, blockIdx = {0}, blockDim = {1}, gridDim = {1};
static inline unsigned int __umulhi(unsigned int a, unsigned int b) {
    return (unsigned int)(((unsigned long long)a * b) >> 32);
}
"""


def ulps_at_scale(actual: np.ndarray, expected: np.ndarray, scale: float) -> float:
    """max |actual - expected| in ulps of max(|expected|, scale), scale being the distribution's std.

    A sample mean + s e carries the few-ulp error of s e; where mean + s e nearly cancels, that error
    is many ulps of the small result, but still a few ulps of s.
    """
    expected = np.asarray(expected)
    magnitude = np.maximum(np.abs(expected), np.asarray(scale, dtype=expected.dtype))
    return float((np.abs(np.asarray(actual, np.float64) - expected) / np.spacing(magnitude)).max(initial=0.0))


def assert_matches_reference(drawn: np.ndarray, expected: np.ndarray, dist: Distribution) -> None:
    """Uniform samples involve no libm call and must be bit-identical; the rest within MAX_ULPS."""
    if isinstance(dist, UniformDist):
        np.testing.assert_array_equal(drawn, expected)
    else:
        assert ulps_at_scale(drawn, expected, dist.std) <= MAX_ULPS


def test_the_backend_is_registered_through_its_entry_point() -> None:
    entry = registry.backends.entry("cupy")
    assert entry.value is cupy_module.backend and entry.origin == "initreg"


@pytest.mark.skipif(CUPY_REASON is None, reason="the cupy backend is available here")
def test_an_unavailable_backend_refuses_with_its_reason() -> None:
    assert CUPY_REASON
    with pytest.raises(BackendUnavailableError, match="'cupy' is unavailable") as raised:
        registry.get_backend("cupy")
    assert CUPY_REASON in str(raised.value)
    with pytest.raises(BackendUnavailableError, match="'cupy' is unavailable"):
        initreg.LecunNormal(seed=1)((3, 4), backend="cupy")


def test_the_reason_names_a_missing_cupy() -> None:
    missing = CupyBackend("cupy", "initreg_no_such_array_library")
    assert "not installed" in (missing.unavailable_reason() or "")
    with pytest.raises(BackendUnavailableError, match="not installed"):
        missing.xp  # noqa: B018 - the property raises


def test_the_reason_names_a_missing_cuda_driver(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(cupy_module, "DRIVER_LIBRARIES", ("libinitreg_no_such_cuda_driver.so",))
    cuda_driver_problem.cache_clear()
    try:
        installed = CupyBackend("cupy", "numpy")  # an installed module, so that the driver is asked
        assert "no CUDA driver" in (installed.unavailable_reason() or "")
    finally:
        cuda_driver_problem.cache_clear()


# --- the kernel source, compiled for the CPU ---


@pytest.fixture(scope="module")
def cpu_kernels(tmp_path_factory: pytest.TempPathFactory) -> ctypes.CDLL:
    compiler = shutil.which("c++") or shutil.which("g++") or shutil.which("clang++")
    if compiler is None:
        pytest.skip("no C++ compiler to build the kernel source for the CPU")
    folder = tmp_path_factory.mktemp("kernels")
    source, library = folder / "kernels.cpp", folder / "kernels.so"
    source.write_text(CPU_SHIM + kernel_source())
    command = [compiler, "-O2", "-std=c++17", "-ffp-contract=off", "-shared", "-fPIC", "-o", str(library), str(source)]
    subprocess.run(command, check=True, capture_output=True)
    return ctypes.CDLL(str(library))


def _pointer(array: np.ndarray) -> ctypes.c_void_p:
    return array.ctypes.data_as(ctypes.c_void_p)


GUARD = 8  # elements after the output that the kernel must leave alone
KEY_ARGUMENTS = (ctypes.c_uint32(KEY[0]), ctypes.c_uint32(KEY[1]))


def cpu_draw(kernels: ctypes.CDLL, dist: Distribution, size: int, dtype: str) -> np.ndarray:
    kind, constants = parameters(dist, dtype)
    out = np.full(size + GUARD, np.nan, dtype=dtype)
    kernel = kernels.draw_f64 if dtype == "float64" else kernels.draw_f32
    kernel(_pointer(out), ctypes.c_uint64(size), *KEY_ARGUMENTS, ctypes.c_int(kind), _pointer(constants))
    assert np.isnan(out[size:]).all(), "the kernel wrote past the end of its output"
    return out[:size]


def cpu_gather(kernels: ctypes.CDLL, dist: Distribution, index: np.ndarray, dtype: str) -> np.ndarray:
    kind, constants = parameters(dist, dtype)
    flat = np.ascontiguousarray(index, dtype=np.uint64).reshape(-1)
    out = np.empty(flat.size, dtype=dtype)
    kernel = kernels.gather_f64 if dtype == "float64" else kernels.gather_f32
    kernel(
        _pointer(out),
        _pointer(flat),
        ctypes.c_uint64(flat.size),
        *KEY_ARGUMENTS,
        ctypes.c_int(kind),
        _pointer(constants),
    )
    return out.reshape(np.shape(index))


@pytest.mark.parametrize(("start", "count"), [(0, 1), (3, 6), (5, 1000), (2**32 - 3, 9)])
def test_cpu_built_kernel_words_are_the_reference_words(cpu_kernels: ctypes.CDLL, start: int, count: int) -> None:
    out = np.empty(count, dtype=np.uint32)
    cpu_kernels.words(_pointer(out), ctypes.c_uint64(start), ctypes.c_uint64(count), *KEY_ARGUMENTS)
    np.testing.assert_array_equal(out, rng.words_range(KEY, start, count, np))


@pytest.mark.parametrize("dtype", PRECISIONS)
@pytest.mark.parametrize("dist", DISTRIBUTIONS, ids=repr)
def test_cpu_built_kernel_draws_the_reference(cpu_kernels: ctypes.CDLL, dist: Distribution, dtype: str) -> None:
    for size in (1, 2, 3, 5, 7, 9, 100_003):  # every tail of a four- or two-sample block, and many samples
        drawn, expected = cpu_draw(cpu_kernels, dist, size, dtype), rng.draw(dist, KEY, (size,), dtype, np)
        assert_matches_reference(drawn, expected, dist)
    assert np.mean(drawn == expected) > 0.9  # and most samples are bit-identical too


@pytest.mark.parametrize("dtype", PRECISIONS)
def test_cpu_built_gather_kernel_gives_slices_of_the_draw(cpu_kernels: ctypes.CDLL, dtype: str) -> None:
    dist, shape = TruncatedNormalDist(0.0, 0.2), (6, 7, 9)
    whole = cpu_draw(cpu_kernels, dist, int(np.prod(shape)), dtype).reshape(shape)
    index = (slice(1, 5), slice(None, None, 3), slice(2, 9))
    sliced = cpu_gather(cpu_kernels, dist, rng.flat_indices(shape, index, np), dtype)
    np.testing.assert_array_equal(sliced, whole[index])
    ragged_tail = np.array([whole.size - 1, 0, whole.size - 2], dtype=np.uint64)
    np.testing.assert_array_equal(cpu_gather(cpu_kernels, dist, ragged_tail, dtype), whole.reshape(-1)[[-1, 0, -2]])


# --- on a GPU ---


@pytest.fixture(scope="module")
def gpu() -> CupyBackend:
    return registry.get_backend("cupy")  # type: ignore[return-value]


@requires_gpu
@pytest.mark.parametrize(("start", "count"), [(0, 1), (3, 6), (5, 100_000), (2**32 - 3, 9)])
def test_gpu_words_are_bit_identical(gpu: CupyBackend, start: int, count: int) -> None:
    np.testing.assert_array_equal(gpu.to_numpy(gpu.words(KEY, start, count)), rng.words_range(KEY, start, count, np))


@requires_gpu
@pytest.mark.parametrize("dtype", PRECISIONS)
@pytest.mark.parametrize("dist", DISTRIBUTIONS, ids=repr)
def test_gpu_draw_matches_the_reference(gpu: CupyBackend, dist: Distribution, dtype: str) -> None:
    shape = (317, 1001)
    drawn = gpu.draw(dist, KEY, shape, dtype)
    assert type(drawn).__module__.startswith("cupy") and drawn.shape == shape and drawn.dtype == np.dtype(dtype)
    expected = rng.draw(dist, KEY, shape, dtype, np)
    assert_matches_reference(gpu.to_numpy(drawn), expected, dist)
    reference_on_gpu = rng.draw(dist, KEY, shape, dtype, gpu.xp)  # the reference itself, on CuPy
    assert ulps_at_scale(gpu.to_numpy(reference_on_gpu), expected, dist.std) <= MAX_ULPS


@requires_gpu
@pytest.mark.parametrize("dtype", PRECISIONS)
def test_gpu_slices_equal_the_slice_of_the_whole(gpu: CupyBackend, dtype: str) -> None:
    dist, shape = TruncatedNormalDist(0.0, 0.2), (33, 17, 9)
    whole = gpu.to_numpy(gpu.draw(dist, KEY, shape, dtype))
    for index in [(slice(1, 30, 2), slice(None), slice(3, 4)), (slice(32, 33), slice(16, 17), slice(8, 9))]:
        np.testing.assert_array_equal(gpu.to_numpy(gpu.draw_slice(dist, KEY, shape, index, dtype)), whole[index])


@requires_gpu
@pytest.mark.parametrize(
    ("name", "shape"),
    [
        ("lecun_normal", (64, 32)),
        ("he_uniform", (3, 3, 8, 16)),
        ("orthogonal", (40, 24)),
        ("constant", (5, 5)),
        ("identity", (4, 6)),
    ],
)
@pytest.mark.parametrize("dtype", ["float16", "float32", "float64"])
def test_gpu_initializers_by_name(name: str, shape: tuple[int, ...], dtype: str) -> None:
    make: Callable[..., Any] = initreg.get(name, **CONFIGS.get(name, {"seed": 5}))  # type: ignore[assignment]
    on_gpu, on_cpu = make(shape, dtype, backend="cupy"), make(shape, dtype)
    assert type(on_gpu).__module__.startswith("cupy") and on_gpu.dtype == np.dtype(dtype)
    tolerance = {"float16": 2e-3, "float32": 2e-6, "float64": 1e-12}[dtype]
    np.testing.assert_allclose(on_gpu.get().astype(np.float64), on_cpu.astype(np.float64), rtol=0, atol=tolerance)
