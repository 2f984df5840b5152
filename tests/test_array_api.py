"""The reference random stream is portable: it runs unchanged under array-api-strict, torch and CuPy.

array-api-strict implements only the array API standard and rejects everything else (NumPy-only
functions, implicit dtype mixes, ...). A Backend over it must give NumPy's words bit for bit and
NumPy's samples within a few ulp (here they are computed by the same libm, so they agree exactly,
but the contract is a few ulp), and every initializer must run through it. The reference itself
(Philox, words, slices of every distribution, the auxiliary stream) must also run on torch through
initreg-torch's namespace, whose unsigned integers lack shifts and additions, and on CuPy where it can.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

import initreg
from initreg import registry, rng
from initreg.backends.base import Backend
from initreg.distributions import Distribution, NormalDist, TruncatedNormalDist, UniformDist
from initreg.errors import BackendUnavailableError, InvalidArgumentError, UnknownNameError
from tests.test_rng import PHILOX_KNOWN_ANSWERS

xps = pytest.importorskip("array_api_strict")
STRICT_ARRAY = type(xps.asarray(0.0))

KEY = rng.derive_key(2024, "encoder.layers.0.kernel")
MAX_ULPS = 2
DISTRIBUTIONS = [UniformDist(-2.0, 0.5), NormalDist(0.0, 0.3), NormalDist(1.5, 2.0), TruncatedNormalDist(0.0, 1.0)]
PRECISIONS = ["float32", "float64"]
NUMPY_MATH = ("numpy", "array_api_strict")  # namespaces computing with NumPy's own functions
MAX_LIBM_ULPS = 10  # another libm's log, through erfinv: tests/test_fused_cpu.py explains the bound


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


@pytest.fixture(scope="module", params=["numpy", "array_api_strict", "torch", "cupy"])
def namespace(request: pytest.FixtureRequest) -> Backend:
    """A Backend whose `xp` the reference runs on: NumPy and array-api-strict themselves, torch through
    initreg-torch's namespace, CuPy; skipped where the backend cannot run here."""
    if request.param in ("numpy", "array_api_strict"):
        return Backend(request.param, request.param)
    try:
        return registry.get_backend(request.param)
    except (UnknownNameError, BackendUnavailableError) as error:
        pytest.skip(str(error))


@pytest.mark.parametrize(("counter", "key", "expected"), PHILOX_KNOWN_ANSWERS)
def test_philox_known_answers_on_every_namespace(namespace: Backend, counter, key, expected) -> None:  # type: ignore[no-untyped-def]
    xp = namespace.xp
    lanes = rng.philox4x32([xp.asarray([c], dtype=xp.int64) for c in counter], key, xp)
    assert tuple(int(namespace.to_numpy(lane)[0]) for lane in lanes) == expected


@pytest.mark.parametrize("stream", [rng.MAIN_STREAM, 1])
@pytest.mark.parametrize(("start", "count"), [(0, 1), (3, 10), (6, 4099), (2**34 - 2, 5), (2**64 - 7, 7)])
def test_reference_words_are_numpys_on_every_namespace(namespace: Backend, start: int, count: int, stream: int) -> None:
    xp = namespace.xp
    expected = rng.words_range(KEY, start, count, np, stream)
    words = namespace.to_numpy(rng.words_range(KEY, start, count, xp, stream))
    assert words.dtype == np.uint32
    np.testing.assert_array_equal(words, expected)
    if start < 2**63 - count:  # words_at takes int64 indices
        index = xp.asarray([start + count - 1, start], dtype=xp.int64)
        np.testing.assert_array_equal(namespace.to_numpy(rng.words_at(KEY, index, xp, stream)), expected[[-1, 0]])


@pytest.mark.parametrize("stream", [rng.MAIN_STREAM, 1])
@pytest.mark.parametrize("dtype", PRECISIONS)
@pytest.mark.parametrize("dist", DISTRIBUTIONS, ids=repr)
def test_reference_slices_are_numpys_on_every_namespace(
    namespace: Backend, dist: Distribution, dtype: str, stream: int
) -> None:
    shape, index = (9, 10, 11), (slice(2, 9, 3), slice(None, None, -4), slice(10, 11))
    expected = rng.draw_slice(dist, KEY, shape, index, dtype, np, stream)
    assert expected.shape == (3, 3, 1)
    sliced = namespace.to_numpy(rng.draw_slice(dist, KEY, shape, index, dtype, namespace.xp, stream))
    assert_samples_agree(sliced, expected, dist, namespace.name)
    if stream == rng.MAIN_STREAM:
        whole = namespace.to_numpy(rng.draw(dist, KEY, shape, dtype, namespace.xp))
        assert_samples_agree(whole, rng.draw(dist, KEY, shape, dtype, np), dist, namespace.name)


def ulps_at_scale(actual: np.ndarray, expected: np.ndarray, dist: Distribution) -> float:
    """max |actual - expected| in ulps at the scale of the formula's terms: max(|expected|, |mean or midpoint|)."""
    offset = 0.5 * (dist.low + dist.high) if isinstance(dist, UniformDist) else dist.mean
    scale = np.maximum(np.abs(expected.astype(np.float64)), abs(offset))
    info = np.finfo(expected.dtype)
    exponent = np.floor(np.log2(np.maximum(scale, float(info.smallest_normal))))
    return float((np.abs(actual.astype(np.float64) - expected) / 2.0 ** (exponent - info.nmant)).max(initial=0.0))


def assert_samples_agree(actual: np.ndarray, expected: np.ndarray, dist: Distribution, namespace: str) -> None:
    """Bit-identical for uniforms and under NumPy's own math; within MAX_LIBM_ULPS otherwise (DESIGN.md)."""
    assert actual.shape == expected.shape and actual.dtype == expected.dtype
    if isinstance(dist, UniformDist) or namespace in NUMPY_MATH:
        np.testing.assert_array_equal(actual, expected)
    else:
        assert ulps_at_scale(actual, expected, dist) <= MAX_LIBM_ULPS


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
