"""Statistics of the stream: Kolmogorov-Smirnov against the exact laws, and stds of large draws."""

import math

import numpy as np
import pytest
from scipy import stats

import initreg
from initreg.distributions import NormalDist, TruncatedNormalDist, UniformDist

SHAPE = (1000, 1000)  # a million draws: KS detects a CDF error of ~0.002; std error ~0.1%


def ks_pvalue(values, cdf):
    return stats.kstest(np.asarray(values, dtype=np.float64).ravel(), cdf).pvalue


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_truncated_normal_matches_the_exact_truncated_law(dtype):
    init = initreg.LecunNormal(seed=1)
    values = init(SHAPE, dtype=dtype)
    sigma = math.sqrt(1 / SHAPE[0]) / 0.87962566103423978
    assert ks_pvalue(values, stats.truncnorm(-2, 2, scale=sigma).cdf) > 1e-3
    assert np.abs(values).max() <= 2 * sigma
    assert values.std() == pytest.approx(math.sqrt(1 / SHAPE[0]), rel=4e-3)


def test_ks_rejects_a_wrong_scale():
    """The KS check above is sensitive: a 1% wrong stddev fails it."""
    values = initreg.LecunNormal(seed=1)(SHAPE)
    sigma = math.sqrt(1 / SHAPE[0]) / 0.87962566103423978
    assert ks_pvalue(values, stats.truncnorm(-2, 2, scale=1.01 * sigma).cdf) < 1e-6


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_uniform_matches_the_exact_uniform_law(dtype):
    values = initreg.GlorotUniform(seed=2)(SHAPE, dtype=dtype)
    limit = math.sqrt(6 / (SHAPE[0] + SHAPE[1]))
    assert ks_pvalue(values, stats.uniform(-limit, 2 * limit).cdf) > 1e-3
    assert values.min() >= -limit and values.max() < limit
    assert values.std() == pytest.approx(limit / math.sqrt(3), rel=4e-3)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_normal_matches_the_exact_normal_law(dtype):
    values = initreg.RandomNormal(mean=0.25, stddev=3.0, seed=3)(SHAPE, dtype=dtype)
    assert ks_pvalue(values, stats.norm(0.25, 3.0).cdf) > 1e-3
    assert values.std() == pytest.approx(3.0, rel=4e-3)
    assert values.mean() == pytest.approx(0.25, abs=0.01)


def test_untruncated_variance_scaling_reaches_the_tails():
    values = initreg.VarianceScaling(2.0, "fan_out", "untruncated_normal", seed=4)(SHAPE)
    std = math.sqrt(2 / SHAPE[1])
    assert ks_pvalue(values, stats.norm(0, std).cdf) > 1e-3
    assert np.abs(values).max() > 4 * std


def test_truncated_std_formula_gives_the_keras_constant():
    assert TruncatedNormalDist(0.0, 1.0).std == pytest.approx(0.87962566103423978, rel=1e-15)
    assert float(stats.truncnorm(-2, 2).std()) == pytest.approx(0.87962566103423978, rel=1e-12)
    assert UniformDist(-1, 1).std == pytest.approx(1 / math.sqrt(3))
    assert NormalDist(0, 2).std == 2


@pytest.mark.parametrize("dtype", ["float16", "bfloat16", "float32", "float64"])
@pytest.mark.parametrize("stddev", [0.0123, 1.0, 0.3])
def test_truncated_values_never_leave_their_bounds_after_the_cast(dtype, stddev):
    values = initreg.TruncatedNormal(mean=0.1, stddev=stddev, seed=5)((400, 500), dtype=dtype)
    wide = np.asarray(values, dtype=np.float64)
    assert wide.min() >= 0.1 - 2 * stddev and wide.max() <= 0.1 + 2 * stddev
    # and the bounds are reached closely: the clip is not cutting visibly into the distribution
    assert wide.max() > 0.1 + 1.9 * stddev


@pytest.mark.parametrize("dtype", ["float16", "bfloat16"])
def test_uniform_never_reaches_maxval_after_the_cast(dtype):
    values = np.asarray(initreg.RandomUniform(-1.0, 1.0, seed=6)((500, 500), dtype=dtype), dtype=np.float64)
    assert values.min() >= -1.0 and values.max() < 1.0


@pytest.mark.parametrize("dtype", ["float16", "bfloat16", "float32", "float64"])
def test_absolute_bounds_are_kept_exactly_after_the_cast(dtype):
    """mean + ((a - mean) / std) * std rounds past a = -0.3 in float64; the written bounds are what clips."""
    values = initreg.TruncatedNormal(0.1, 0.7, seed=5, a=-0.3, b=1.9)((400, 500), dtype=dtype)
    wide = np.asarray(values, dtype=np.float64)
    assert wide.min() >= -0.3 and wide.max() <= 1.9
    assert wide.min() < -0.29 and wide.max() > 1.85


def test_the_absolute_bounds_would_round_past_a_without_support():
    dist = TruncatedNormalDist(0.1, 0.7, (-0.3 - 0.1) / 0.7, (1.9 - 0.1) / 0.7)
    assert dist.bounds[0] < -0.3  # what the `support` field is there for
    assert TruncatedNormalDist.between(0.1, 0.7, -0.3, 1.9).bounds == (-0.3, 1.9)
