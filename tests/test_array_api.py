"""The reference random stream is portable: it runs unchanged under array-api-strict.

array-api-strict implements only the array API standard and rejects everything else (NumPy-only
functions, implicit dtype mixes, ...). A Backend over it must give NumPy's words bit for bit and
NumPy's samples within a few ulp (here they are computed by the same libm, so they agree exactly,
but the contract is a few ulp), and every initializer must run through it.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

import initreg
from initreg import rng
from initreg.backends.base import Backend
from initreg.distributions import Distribution, NormalDist, TruncatedNormalDist, UniformDist
from initreg.errors import InvalidArgumentError

xps = pytest.importorskip("array_api_strict")
STRICT_ARRAY = type(xps.asarray(0.0))

KEY = rng.derive_key(2024, "encoder.layers.0.kernel")
MAX_ULPS = 2
DISTRIBUTIONS = [UniformDist(-2.0, 0.5), NormalDist(0.0, 0.3), NormalDist(1.5, 2.0), TruncatedNormalDist(0.0, 1.0)]
PRECISIONS = ["float32", "float64"]


@pytest.fixture(scope="module")
def strict() -> Backend:
    return Backend("array_api_strict", "array_api_strict")


@pytest.fixture(scope="module")
def numpy_reference() -> Backend:
    """The reference stream on NumPy (the "numpy" backend itself may take a fused fast path)."""
    return Backend("numpy_reference", "numpy")


def ulps(actual: np.ndarray, expected: np.ndarray) -> int:
    """max distance in units in the last place: the count of floats between actual and expected."""
    signed = {np.dtype(np.float32): np.int32, np.dtype(np.float64): np.int64}[expected.dtype]
    assert actual.dtype == expected.dtype

    def ordered(values: np.ndarray) -> np.ndarray:
        bits = values.view(signed).astype(np.int64)
        return np.where(bits < 0, -(bits & np.iinfo(signed).max), bits)  # -0.0 and 0.0 both map to 0

    return int(np.abs(ordered(actual) - ordered(expected)).max(initial=0))


def as_numpy(array: Any) -> np.ndarray:
    assert isinstance(array, STRICT_ARRAY), f"expected an array_api_strict array, got {type(array)}"
    return np.asarray(array)


@pytest.mark.parametrize(("start", "count"), [(0, 1), (1, 7), (6, 4099), (2**34 - 2, 5)])
def test_words_are_bit_identical(strict: Backend, start: int, count: int) -> None:
    words = as_numpy(strict.words(KEY, start, count))
    assert words.dtype == np.uint32
    np.testing.assert_array_equal(words, rng.words_range(KEY, start, count, np))


@pytest.mark.parametrize("dtype", PRECISIONS)
@pytest.mark.parametrize("dist", DISTRIBUTIONS, ids=repr)
def test_every_distribution_agrees_with_numpy(
    strict: Backend, numpy_reference: Backend, dist: Distribution, dtype: str
) -> None:
    shape = (129, 31)
    drawn = as_numpy(strict.draw(dist, KEY, shape, dtype))
    expected = numpy_reference.draw(dist, KEY, shape, dtype)
    assert drawn.shape == shape and drawn.dtype == np.dtype(dtype)
    assert ulps(drawn, expected) <= MAX_ULPS


@pytest.mark.parametrize("dtype", PRECISIONS)
def test_slices_agree_with_numpy(strict: Backend, numpy_reference: Backend, dtype: str) -> None:
    dist, shape = TruncatedNormalDist(0.1, 0.02), (9, 10, 11)
    index = (slice(2, 9, 3), slice(None), slice(10, 11))
    sliced = as_numpy(strict.draw_slice(dist, KEY, shape, index, dtype))
    assert ulps(sliced, numpy_reference.draw(dist, KEY, shape, dtype)[index]) <= MAX_ULPS


@pytest.mark.parametrize("dtype", PRECISIONS)
@pytest.mark.parametrize(
    ("name", "config", "shape"),
    [
        ("lecun_normal", {"seed": 1}, (40, 30)),
        ("lecun_uniform", {"seed": 2}, (40, 30)),
        ("glorot_normal", {"seed": 3}, (3, 3, 8, 16)),
        ("glorot_uniform", {"seed": 4}, (3, 3, 8, 16)),
        ("he_normal", {"seed": 5}, (5, 7, 2)),
        ("he_uniform", {"seed": 6}, (64,)),
        (
            "variance_scaling",
            {"scale": 0.3, "mode": "fan_geo_avg", "distribution": "untruncated_normal", "seed": 7},
            (12, 20),
        ),
        ("random_normal", {"mean": 0.5, "stddev": 0.1, "seed": 8}, (17, 3)),
        ("random_uniform", {"minval": -1.0, "maxval": 3.0, "seed": 9}, (17, 3)),
        ("truncated_normal", {"stddev": 0.2, "seed": 10}, (17, 3)),
        ("constant", {"value": 0.75}, (4, 5)),
        ("constant", {"value": [1.0, 2.0, 3.0]}, (2, 3)),
        ("zeros", {}, (3, 2)),
        ("ones", {}, (3, 2)),
        ("identity", {"gain": 1.5}, (4, 6)),
        ("orthogonal", {"gain": 2.0, "seed": 11}, (30, 12)),
        ("orthogonal", {"seed": 12}, (3, 4, 20)),
    ],
)
def test_initializers_run_through_array_api_strict(
    strict: Backend, numpy_reference: Backend, name: str, config: dict[str, Any], shape: tuple[int, ...], dtype: str
) -> None:
    init = initreg.get(name, **config)
    assert isinstance(init, initreg.Initializer)
    made = as_numpy(init(shape, dtype, backend=strict))
    expected = init(shape, dtype, backend=numpy_reference)
    assert made.shape == shape and made.dtype == np.dtype(dtype)
    if name == "orthogonal":  # a QR decomposition: compare as numbers, not bits
        np.testing.assert_allclose(made, expected, rtol=0, atol=50 * np.finfo(dtype).eps)
    else:
        assert ulps(made, expected) <= MAX_ULPS


def test_a_constant_that_does_not_broadcast_is_an_initreg_error(strict: Backend) -> None:
    with pytest.raises(InvalidArgumentError, match="does not broadcast"):
        initreg.Constant([1.0, 2.0, 3.0])((2, 2), backend=strict)


def test_dtypes_outside_the_standard_are_refused_by_name(strict: Backend) -> None:
    with pytest.raises(InvalidArgumentError, match="bfloat16"):
        initreg.LecunNormal(seed=0)((2, 2), "bfloat16", backend=strict)
