"""DeltaOrthogonal against jax.nn.initializers.delta_orthogonal, and its own contract."""

from __future__ import annotations

import math

import numpy as np
import pytest
from initreg_extra import DeltaOrthogonal

import initreg
from initreg import rng
from initreg.errors import InvalidArgumentError

SHAPES = [(3, 4, 6), (3, 3, 5, 5), (5, 2, 8, 16), (3, 3, 3, 2, 7), (4, 4, 3, 3)]


def centre(shape: tuple[int, ...]) -> tuple[int, ...]:
    return tuple((k - 1) // 2 for k in shape[:-2])


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("scale", [1.0, 0.3])
def test_same_structure_as_jax(shape: tuple[int, ...], scale: float) -> None:
    jax = pytest.importorskip("jax")
    theirs = np.asarray(jax.nn.initializers.delta_orthogonal(scale=scale)(jax.random.key(0), shape, "float32"))
    ours = DeltaOrthogonal(scale=scale, seed=1)(shape)
    assert ours.shape == theirs.shape and ours.dtype == theirs.dtype
    np.testing.assert_array_equal(ours != 0, theirs != 0)  # the same single non-zero centre tap
    for kernel in (ours, theirs):
        tap = kernel[centre(shape)].astype(np.float64)
        np.testing.assert_allclose(tap @ tap.T, scale**2 * np.eye(shape[-2]), atol=1e-5)  # orthogonal rows
    assert math.isclose(
        float(np.sqrt(np.mean(ours.astype(np.float64) ** 2))), DeltaOrthogonal(scale).target_std(shape), rel_tol=1e-5
    )


@pytest.mark.parametrize("shape", [(3, 3), (2, 2, 2, 2, 2, 2), (3, 6, 4)])
def test_refuses_what_jax_refuses(shape: tuple[int, ...]) -> None:
    jax = pytest.importorskip("jax")
    with pytest.raises(ValueError):
        jax.nn.initializers.delta_orthogonal()(jax.random.key(0), shape, "float32")
    with pytest.raises(InvalidArgumentError, match=r"3, 4 or 5 dimensions|fan_in <= fan_out"):
        DeltaOrthogonal(seed=0)(shape)


def test_the_centre_tap_is_initreg_orthogonal_from_the_parameters_stream() -> None:
    shape, key = (3, 3, 4, 6), rng.derive_key(9, "conv.kernel")
    numpy = initreg.registry.get_backend("numpy")
    kernel = DeltaOrthogonal(scale=2.0).generate(shape, "float32", key=key, backend=numpy)
    expected = initreg.Orthogonal(gain=2.0).generate((4, 6), "float32", key=key, backend=numpy)
    np.testing.assert_array_equal(kernel[1, 1], expected)


def test_reproducible_by_seed() -> None:
    shape = (3, 3, 8, 8)
    np.testing.assert_array_equal(DeltaOrthogonal(seed=3)(shape), DeltaOrthogonal(seed=3)(shape))
    assert not np.array_equal(DeltaOrthogonal(seed=3)(shape), DeltaOrthogonal(seed=4)(shape))


def test_torch_layout_stores_the_same_tap_transposed() -> None:
    keras_kernel = DeltaOrthogonal(seed=5)((3, 5, 4, 6))
    torch_kernel = DeltaOrthogonal(seed=5)((6, 4, 3, 5), layout="torch")
    np.testing.assert_array_equal(torch_kernel[:, :, 1, 2], keras_kernel[1, 2].T)
    assert np.count_nonzero(torch_kernel) == np.count_nonzero(keras_kernel)
    with pytest.raises(InvalidArgumentError, match="fan_in <= fan_out"):
        DeltaOrthogonal(seed=5)((4, 6, 3, 3), layout="torch")


@pytest.mark.parametrize("dtype", ["float16", "bfloat16", "float64"])
def test_dtypes(dtype: str) -> None:
    kernel = DeltaOrthogonal(seed=6)((3, 3, 4, 4), dtype)
    assert kernel.dtype.name == dtype
    tap = kernel[1, 1].astype(np.float64)
    np.testing.assert_allclose(tap @ tap.T, np.eye(4), atol=2e-2)


def test_runs_on_any_array_api_backend() -> None:
    pytest.importorskip("array_api_strict")
    from initreg.backends.base import Backend

    strict = Backend("array_api_strict", "array_api_strict")
    for layout, shape in (("keras", (3, 3, 4, 6)), ("torch", (6, 4, 3))):
        made = DeltaOrthogonal(seed=8)(shape, backend=strict, layout=layout)
        np.testing.assert_allclose(np.asarray(made), DeltaOrthogonal(seed=8)(shape, layout=layout), atol=1e-6)
