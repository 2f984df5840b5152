"""Moments of drawn values (initreg.moments, initreg.backends.fused_moments) against exact float64 sums.

The fill with moments (fused_cpu.fill_with_moments) writes the plain draw's bytes and measures them as
the fused pass does, bit for bit, in both builds of its kernel.

The reference is math.fsum: its mean is within 1 ulp and its m2 within 4 ulp of the exact ones, so each
test allows the fused pass's stated bound, (533 + k + 2 kappa) u relative for the variance with k blocks
and kappa = max|x| / std, plus that.
"""

import math

import ml_dtypes
import numpy as np
import pytest

pytest.importorskip("numba")

from initreg import moments as moments_module
from initreg.backends import fused_cpu, fused_moments, kernel_cache
from initreg.distributions import NormalDist, TruncatedNormalDist, UniformDist
from initreg.moments import Moments, piece_moments
from initreg.rng import derive_key

U = 2.0**-53
DTYPES = [np.float16, ml_dtypes.bfloat16, np.float32, np.float64]
SIZES = [1, 2, 7, 8, 4095, 4096, 4097, 3 * 4096 + 5, 1_000_003]


def exact(values):
    """(count, mean, m2) of `values` through math.fsum (float64)."""
    flat = values.astype(np.float64).reshape(-1)
    mean = math.fsum(flat) / flat.size
    return flat.size, mean, math.fsum((flat - mean) ** 2)


def assert_within_the_bound(found, values):
    count, mean, m2 = exact(values)
    flat = values.astype(np.float64).reshape(-1)
    blocks = -(-count // fused_moments.BLOCK)
    assert found[0] == count
    assert abs(found[1] - mean) <= (blocks + 4) * U * np.abs(flat).max()
    std = math.sqrt(m2 / count)
    kappa = np.abs(flat).max() / std if std else 0.0
    assert abs(found[2] - m2) <= ((533 + blocks + 2 * kappa) + 4) * U * m2


def sample(size, dtype, offset=0.25, scale=0.02, seed=0):
    return (offset + scale * np.random.default_rng(seed).standard_normal(size)).astype(dtype)


@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: np.dtype(d).name)
@pytest.mark.parametrize("size", SIZES)
def test_the_fused_pass_is_within_its_bound_of_exact_sums(size, dtype):
    values = sample(size, dtype)
    assert_within_the_bound(fused_moments.moments(values), values)


@pytest.mark.parametrize("shape", [(3, 5, 7), (4096, 3), (1, 1), (2, 0, 3)])
def test_any_shape_is_measured_as_its_flat_values(shape):
    values = sample(math.prod(shape), np.float32).reshape(shape)
    if values.size == 0:
        assert fused_moments.moments(values) == (0, 0.0, 0.0)
        return
    assert_within_the_bound(fused_moments.moments(values), values)
    strided = sample(2 * values.size, np.float32)[::2].reshape(shape)  # not contiguous
    assert_within_the_bound(fused_moments.moments(strided), strided)


@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: np.dtype(d).name)
def test_a_constant_tensor_has_its_value_as_mean_and_no_spread(dtype):
    constant = np.full(3 * 4096 + 11, 0.1, dtype=dtype)
    count, mean, m2 = fused_moments.moments(constant)
    c = float(constant[0])
    if dtype == np.float64:  # k c for k <= 512 is not always exact in float64
        assert abs(mean - c) <= 8 * U * c and 0.0 <= m2 <= (4096 * U * c) ** 2 * count
    else:  # narrower values times k <= 512 are exact: so are the sums
        assert (mean, m2) == (c, 0.0)


def test_the_serial_and_parallel_builds_give_identical_moments(monkeypatch):
    values = sample(kernel_cache.PARALLEL_FROM * 3 + 17, np.float32, seed=3)
    monkeypatch.setattr(kernel_cache, "PARALLEL_FROM", 2**62)
    serial = fused_moments.moments(values)
    monkeypatch.setattr(kernel_cache, "PARALLEL_FROM", 0)
    assert fused_moments.moments(values) == serial


def test_inf_or_nan_makes_the_mean_not_finite():
    for bad in (np.inf, -np.inf, np.nan):
        values = sample(10_000, np.float32)
        values[5000] = bad
        assert not math.isfinite(fused_moments.moments(values)[1])
    assert not math.isfinite(fused_moments.moments(np.array([np.inf, -np.inf], np.float32))[1])


def test_other_dtypes_are_refused():
    with pytest.raises(TypeError, match=r"moments of a int32 array; valid: float16, bfloat16, float32, float64"):
        fused_moments.moments(np.arange(5, dtype=np.int32))


@pytest.mark.parametrize("fused", [True, False], ids=["fused", "numpy"])
def test_pieces_merged_equal_the_whole_within_the_bound(fused, monkeypatch):
    if not fused:
        monkeypatch.setattr(moments_module, "fused_kernels", lambda *_: None)
        monkeypatch.setattr(moments_module, "MOMENT_BLOCK", 1000)
    else:  # loaded, as after a large draw, so that small pieces take the fused pass too
        assert moments_module.fused_kernels() is not None
    pieces = [sample(n, np.float32, offset=o, seed=n) for n, o in [(5000, 0.0), (1, 3.0), (70_001, -0.5), (0, 0.0)]]
    total = Moments()
    for piece in pieces:
        total.add(piece)
    whole = np.concatenate(pieces)
    assert_within_the_bound((total.count, total.mean, total.m2), whole)
    assert total.std == pytest.approx(float(np.std(whole.astype(np.float64))), rel=1e-12)
    assert piece_moments(whole)[0] == whole.size


def test_no_values_have_a_nan_std():
    assert math.isnan(Moments().std)


DISTRIBUTIONS = {
    "uniform": UniformDist(-0.3, 0.7),
    "normal": NormalDist(0.1, 0.02),
    "truncated": TruncatedNormalDist(-0.2, 0.5, -1.5, 2.5),
}


@pytest.mark.parametrize("build", ["serial", "parallel"])
@pytest.mark.parametrize("dist", DISTRIBUTIONS.values(), ids=DISTRIBUTIONS.keys())
@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize(("first", "size"), [(0, 1), (3, 4095), (5, 16_385), (0, 3 * 16_384), (123_457, 300_001)])
def test_the_fill_with_moments_writes_the_draw_and_measures_it_as_the_fused_pass(
    build, dist, dtype, first, size, monkeypatch
):
    monkeypatch.setattr(kernel_cache, "PARALLEL_FROM", 0 if build == "parallel" else 2**62)
    key = derive_key(7, "w")
    out = np.full(size, np.nan, dtype)
    found = fused_cpu.fill_with_moments(out, dist, key, first)
    drawn = fused_cpu.draw(dist, key, (first + size,), dtype)[first:]
    assert out.tobytes() == drawn.tobytes()
    assert found == fused_moments.moments(drawn)
    assert_within_the_bound(found, drawn)


def test_the_fill_with_moments_of_nothing_is_empty_and_bad_outputs_are_refused():
    assert fused_cpu.fill_with_moments(np.empty(0, np.float32), NormalDist(0.0, 1.0), (1, 2), 0) == (0, 0.0, 0.0)
    for bad, named in [
        (np.empty(4, np.float16), "float32 or float64 array; got float16"),
        (np.empty((2, 2), np.float32), "flat C-contiguous"),
        (np.empty(8, np.float32)[::2], "flat C-contiguous"),
    ]:
        with pytest.raises(ValueError, match=named):
            fused_cpu.fill_with_moments(bad, NormalDist(0.0, 1.0), (1, 2), 0)
    frozen = np.empty(4, np.float32)
    frozen.flags.writeable = False
    with pytest.raises(ValueError, match="writeable array; got a read-only one"):
        fused_cpu.fill_with_moments(frozen, NormalDist(0.0, 1.0), (1, 2), 0)
