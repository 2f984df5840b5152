"""The NumPy reference (initreg.rng on NumPy) and the fused CPU kernels give the same bits, everywhere.

Every float operation of the kernels is the reference's, in its order, and both take log from
``special.log``'s constants (the kernels split q through its bits, the reference through frexp, or
without one by exact scalings): so a tensor may come from either, whatever its size. Pinned here for
every distribution code and dtype over millions of elements, through both builds of the kernels, for
slices, words and the batched draw, and on the inputs where the two splits or erfinv's branches could
part: x next to -1 and 1, q at every exponent and next to the split's threshold, w at and next to 5,
6.25 and 16, and q = 0.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pytest

numba = pytest.importorskip("numba")

from initreg import init_tree, rng, special  # noqa: E402
from initreg.backends import fused_cpu, kernel_cache  # noqa: E402
from initreg.backends import numpy as numpy_backend_module  # noqa: E402
from initreg.backends.base import Backend  # noqa: E402
from initreg.backends.numpy import NumpyBackend, fused_kernels  # noqa: E402
from initreg.backends.numpy import backend as numpy_backend  # noqa: E402
from initreg.distributions import Distribution, NormalDist, TruncatedNormalDist, UniformDist  # noqa: E402
from initreg.spec import flatten  # noqa: E402

KEY = rng.derive_key(1806, "decoder.layers.3.mlp.kernel")
DISTRIBUTIONS = [
    UniformDist(-0.3, 0.7),
    NormalDist(0.5, 2.0),
    TruncatedNormalDist(0.0, 0.05),
    TruncatedNormalDist(1.0, 3.0, -1.0, 0.5),  # asymmetric, inside one tail
    TruncatedNormalDist(0.0, 1.0, 0.0, 8.0),  # e_mid + e_half x rounds to 1 in float32: q = 0
    TruncatedNormalDist.between(0.1, 0.7, -0.3, 1.9),  # absolute bounds
]
ELEMENTS = {"float32": 3 << 20, "float64": 3 << 19}  # per case: 3.1M and 1.6M elements
BUILDS = {"serial": 2**62, "parallel": 0}  # PARALLEL_FROM that makes every call run that build


def same_bits(actual: np.ndarray, expected: np.ndarray) -> bool:
    return actual.dtype == expected.dtype and actual.shape == expected.shape and actual.tobytes() == expected.tobytes()


class NumpyReference(NumpyBackend):
    """The NumPy backend's dtypes and casts with Backend's draws: the reference stream, never the kernels."""

    draw, draw_slice, words = Backend.draw, Backend.draw_slice, Backend.words


@pytest.fixture(scope="module")
def reference() -> Backend:
    return NumpyReference("numpy_reference", "numpy")


@pytest.mark.parametrize("dist", DISTRIBUTIONS, ids=repr)
@pytest.mark.parametrize("precision", ["float32", "float64"])
def test_whole_tensors_are_bit_identical_in_both_builds(dist, precision, monkeypatch):
    shape = (ELEMENTS[precision] // 1024, 1024)
    expected = rng.draw(dist, KEY, shape, precision, np)
    for build, parallel_from in BUILDS.items():
        monkeypatch.setattr(kernel_cache, "PARALLEL_FROM", parallel_from)
        assert same_bits(fused_cpu.draw(dist, KEY, shape, precision), expected), build


@pytest.mark.parametrize("dist", DISTRIBUTIONS, ids=repr)
@pytest.mark.parametrize("dtype", ["float16", "bfloat16"])
def test_narrow_dtypes_are_bit_identical(dist, dtype, reference):
    """float16 and bfloat16 are computed in float32 and cast: the same cast of the same bits."""
    shape = (ELEMENTS["float32"] // 4,)
    assert same_bits(numpy_backend.draw(dist, KEY, shape, dtype), reference.draw(dist, KEY, shape, dtype))


@pytest.mark.parametrize("dist", DISTRIBUTIONS, ids=repr)
@pytest.mark.parametrize("dtype", ["bfloat16", "float32", "float64"])
def test_slices_are_bit_identical(dist, dtype, reference):
    shape = (37, 3 * fused_cpu.TILE + 11)
    for index in [(slice(3, 30, 4), slice(5, None, 3)), (slice(None, None, -2), slice(7, 2 * fused_cpu.TILE, 1))]:
        expected = reference.draw_slice(dist, KEY, shape, index, dtype)
        assert same_bits(numpy_backend.draw_slice(dist, KEY, shape, index, dtype), expected), index


@pytest.mark.parametrize(("start", "count"), [(0, 5 << 20), (4 * 2**32 - 6, 3 * fused_cpu.TILE + 7), (3, 1)])
def test_words_are_bit_identical(start, count, reference):
    assert same_bits(numpy_backend.words(KEY, start, count), reference.words(KEY, start, count))


@pytest.mark.parametrize("dist", DISTRIBUTIONS, ids=repr)
@pytest.mark.parametrize("precision", ["float32", "float64"])
def test_the_batched_draw_is_bit_identical(dist, precision):
    """fused_cpu.draw_many (the batched small tensors of init_tree) against each tensor's reference draw."""
    keys = [rng.derive_key(5, f"layers.{i}.bias") for i in range(300)]
    shapes = [(1 + i % 17, 1 + i % 5) for i in range(300)]
    drawn = fused_cpu.draw_many(dist, keys, shapes, precision)
    for key, shape, values in zip(keys, shapes, drawn, strict=True):
        assert same_bits(values, rng.draw(dist, key, shape, precision, np))


@numba.njit(error_model="numpy")
def _kernel_logs(q32: np.ndarray, q64: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    log32, log64 = np.empty_like(q32), np.empty_like(q64)
    for i in range(q32.shape[0]):
        log32[i] = fused_cpu._log32(q32[i])
    for i in range(q64.shape[0]):
        log64[i] = fused_cpu._log64(q64[i])
    return log32, log64


def every_exponent(precision: str) -> np.ndarray:
    """q = m 2^e for every normal exponent e <= 0, with m next to 1, to 2 sqrt(1/2) (the split's threshold),
    to 2 and random; plus 0 and 1."""
    dtype = np.dtype(precision)
    info = np.finfo(dtype)
    threshold = np.array(2.0 * (special.SQRT_HALF_32 if precision == "float32" else special.SQRT_HALF_64), dtype)
    near = [np.array(1.0, dtype), threshold, np.array(2.0, dtype)]
    mantissas = [np.nextafter(m, m + direction) for m in near for direction in (-1, 0, 1)]
    mantissas = [m for m in mantissas if 1.0 <= m < 2.0]
    mantissas += list(np.random.default_rng(11).uniform(1.0, 2.0, 20).astype(dtype))
    exponents = np.arange(info.minexp, 1)
    q = np.ldexp(np.array(mantissas, dtype)[:, None], exponents[None, :]).reshape(-1).astype(dtype)
    return np.concatenate([q[q <= 1.0], np.array([0.0, 1.0], dtype)])


def test_log_is_bit_identical_at_every_exponent_and_on_every_q_a_draw_can_give():
    q32 = np.concatenate([every_exponent("float32"), symmetric_q(24, np.float32)])
    q64 = np.concatenate([every_exponent("float64"), symmetric_q(53, np.float64)])
    log32, log64 = _kernel_logs(q32, q64)
    assert same_bits(log32, special.log(q32, np))
    assert same_bits(log64, special.log(q64, np))
    assert log32[q32 == 0.0][0] == pytest.approx(special.MIN_EXPONENT_32 * math.log(2.0), rel=1e-7)
    assert log64[q64 == 0.0][0] == pytest.approx(special.MIN_EXPONENT_64 * math.log(2.0), rel=1e-15)
    positive = q64 > 0.0
    assert (np.abs(log64[positive] - np.log(q64[positive])) <= 2 * np.spacing(np.abs(np.log(q64[positive])))).all()


def units(k: np.ndarray, bits: int, dtype: Any) -> np.ndarray:
    """x = (2k + 1 - 2^bits) 2^-bits, as symmetric_unit gives it (exact)."""
    return ((2 * k.astype(np.int64) + 1 - 2**bits).astype(np.float64) * 2.0**-bits).astype(dtype)


def symmetric_q(bits: int, dtype: Any) -> np.ndarray:
    """(1 - x)(1 + x) for the 4000 x next to -1 and to 1 and 200,000 random ones."""
    ends = np.concatenate([np.arange(2000), np.random.default_rng(bits).integers(0, 2**bits, 200_000)])
    x = units(np.concatenate([ends, 2**bits - 1 - ends]), bits, dtype)
    return (1 - x) * (1 + x)


def near_w(w: float, bits: int, dtype: Any) -> np.ndarray:
    """The 2001 x of symmetric_unit on each side of the x where -log((1 - x)(1 + x)) = w, and their negatives."""
    x = math.sqrt(-math.expm1(-w))
    k = round((x * 2**bits + 2**bits - 1) / 2)
    x = units(np.arange(k - 1000, k + 1001), bits, dtype)
    return np.concatenate([x, -x])


@numba.njit(error_model="numpy")
def _kernel_erfinv(x32: np.ndarray, x64: np.ndarray, e_mid: float, e_half: float) -> None:
    fused_cpu._erfinv32(x32, np.float32(e_mid), np.float32(e_half))
    fused_cpu._erfinv64(x64, e_mid, e_half)


@pytest.mark.parametrize(("e_mid", "e_half"), [(0.0, 1.0), (0.5, 0.5), (-0.25, 0.75)])
def test_erfinv_is_bit_identical_next_to_one_and_at_each_branch_boundary(e_mid, e_half):
    """x next to -1 and 1 and where w crosses 5 (float32), 6.25 and 16 (float64), as the normal takes
    erfinv of x and the truncated normal of e_mid + e_half x ((0.5, 0.5) reaches 1 in float32: q = 0)."""
    x32 = np.concatenate([units(np.concatenate([np.arange(5000), 2**24 - 1 - np.arange(5000)]), 24, np.float32),
                          near_w(5.0, 24, np.float32)])  # fmt: skip
    ends = np.concatenate([np.arange(5000), 2**53 - 1 - np.arange(5000)])
    x64 = np.concatenate([units(ends, 53, np.float64), near_w(6.25, 53, np.float64), near_w(16.0, 53, np.float64)])
    w32 = -np.log((1.0 - x32.astype(np.float64)) * (1.0 + x32))
    w64 = -np.log((1.0 - x64) * (1.0 + x64))
    assert (w32 < 5.0).any() and (w32 >= 5.0).any()
    assert (w64 < 6.25).any() and ((w64 >= 6.25) & (w64 < 16.0)).any() and (w64 >= 16.0).any()
    kernel32, kernel64 = x32.copy(), x64.copy()
    _kernel_erfinv(kernel32, kernel64, e_mid, e_half)
    e32 = np.float32(e_mid) + np.float32(e_half) * x32
    assert same_bits(kernel32, special.erfinv(e32, np))
    assert same_bits(kernel64, special.erfinv(e_mid + e_half * x64, np))
    if e_mid == 0.5:
        assert (e32 == 1.0).any() and np.isfinite(kernel32).all()


class WithoutFrexp:
    """NumPy without frexp, as an array-API-standard namespace is: special.split then scales instead."""

    def __getattr__(self, name: str) -> Any:
        if name == "frexp":
            raise AttributeError(name)
        return getattr(np, name)


@pytest.mark.parametrize("precision", ["float32", "float64"])
def test_the_split_by_scaling_is_the_split_by_frexp(precision):
    q = np.concatenate([every_exponent(precision), symmetric_q(24 if precision == "float32" else 53, precision)])
    by_frexp, by_scaling = special.split(q, np), special.split(q, WithoutFrexp())
    assert all(same_bits(a, b) for a, b in zip(by_frexp, by_scaling, strict=True))
    m, exponent = by_frexp
    positive = q > 0
    assert same_bits(np.ldexp(m[positive], exponent[positive].astype(np.int32)), q[positive])


def test_a_namespace_without_frexp_draws_the_same_bits():
    dist: Distribution = TruncatedNormalDist(0.0, 1.0, -1.0, 3.0)
    for precision in ["float32", "float64"]:
        expected = fused_cpu.draw(dist, KEY, (50_000,), precision)
        assert same_bits(rng.draw(dist, KEY, (50_000,), precision, WithoutFrexp()), expected)


def test_a_tree_drawn_before_the_kernels_load_is_the_tree_they_draw(monkeypatch):
    """A process's first small trees come from the reference, tensor by tensor; later ones from the kernels'
    batched draw (``drawing.generate_all``): the same bytes."""
    spec = {"block": [{"kernel": (3 + i % 5, 7), "bias": (i % 9,), "double": (4, 2), "half": (5,)} for i in range(40)]}
    rules = {
        "kernels": {"match": "*.kernel", "init": "lecun_normal"},
        "biases": {"match": "*.bias", "init": {"name": "random_uniform", "minval": -1, "maxval": 2}},
        "doubles": {"match": "*.double", "init": "glorot_normal", "dtype": "float64"},
        "halves": {"match": "*.half", "init": "he_uniform", "dtype": "bfloat16"},
    }
    assert fused_kernels() is not None
    batched = flatten(init_tree(spec, rules, seed=4))
    monkeypatch.setattr(numpy_backend_module, "_imported", [])  # as in a fresh process
    monkeypatch.setattr(numpy_backend_module, "_reference_work", [0])
    monkeypatch.setattr(fused_cpu, "draw_many", lambda *a: pytest.fail("the kernels drew a small tree"))
    monkeypatch.setattr(fused_cpu, "draw", lambda *a: pytest.fail("the kernels drew a small tree"))
    by_reference = flatten(init_tree(spec, rules, seed=4))
    assert numpy_backend_module._imported == []
    assert by_reference.keys() == batched.keys()
    assert all(same_bits(by_reference[path], values) for path, values in batched.items())
