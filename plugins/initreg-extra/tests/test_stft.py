"""STFT against keras.initializers.STFT (Keras 3 on its NumPy backend)."""

from __future__ import annotations

import numpy as np
import pytest
from initreg_extra import STFT

import initreg
from initreg.errors import InvalidArgumentError

CASES = [
    ("real", "hann", "density", False),
    ("imag", "hann", "density", False),
    ("real", "hamming", "spectrum", True),
    ("imag", "blackman", None, True),
    ("real", None, None, False),
    ("imag", [0.25, 0.5, 1.0, 1.0, 0.5, 0.25, 0.1, 0.1], "density", False),  # frame_length 8
]


@pytest.mark.parametrize(("side", "window", "scaling", "periodic"), CASES)
@pytest.mark.parametrize("shape", [(8, 1, 5), (8, 1, 17), (64, 1, 33)], ids=str)
def test_matches_keras(
    side: str, window: object, scaling: str | None, periodic: bool, shape: tuple[int, int, int]
) -> None:
    keras = pytest.importorskip("keras")
    if isinstance(window, list):
        shape = (len(window), *shape[1:])  # type: ignore[assignment]
    theirs = np.asarray(keras.initializers.STFT(side, window, scaling, periodic)(shape, "float64"))
    ours = STFT(side, window, scaling, periodic)(shape, "float64")  # type: ignore[arg-type]
    ours32 = STFT(side, window, scaling, periodic)(shape)  # type: ignore[arg-type]
    # Keras rounds its phase 2 pi t k / n_fft (up to pi (T - 1)) to float32 even for float64, an error of
    # up to pi T 2^-24 radians; windows and scalings are at most 1 here
    tolerance = 4 * np.pi * shape[0] * 2.0**-24
    np.testing.assert_allclose(ours, theirs, rtol=0, atol=tolerance)
    np.testing.assert_allclose(ours32, theirs, rtol=0, atol=tolerance)


@pytest.mark.parametrize("side", ["real", "imag"])
def test_float64_values_are_exact_dft_terms(side: str) -> None:
    """Without a window: cos/sin(-2 pi t k / n_fft), here from the complex exponential in float64."""
    frames, bins = 40, 9
    n_fft = 2 * (bins - 1)
    t, k = np.arange(frames)[:, None], np.arange(bins)[None, :]
    exact = np.exp(-2j * np.pi * t * k / n_fft)
    expected = exact.real if side == "real" else exact.imag
    ours = STFT(side, window=None, scaling=None)((frames, 1, bins), "float64")[:, 0, :]
    np.testing.assert_allclose(ours, expected, rtol=0, atol=1e-13)


def test_channels_repeat_the_kernel() -> None:
    kernel = STFT()((16, 3, 9))
    assert kernel.shape == (16, 3, 9)
    np.testing.assert_array_equal(kernel[:, 0], kernel[:, 2])


def test_errors_name_the_bad_value() -> None:
    with pytest.raises(InvalidArgumentError, match="'complex'"):
        STFT(side="complex")
    with pytest.raises(InvalidArgumentError, match="'l2'"):
        STFT(scaling="l2")
    with pytest.raises(InvalidArgumentError, match="'no_such_window'"):
        STFT(window="no_such_window")
    with pytest.raises(InvalidArgumentError, match=r"frame_length=8"):
        STFT(window=[1.0, 2.0])((8, 1, 5))
    with pytest.raises(InvalidArgumentError, match="fft_bins >= 2"):
        STFT()((8, 5))


def test_target_std_is_the_std_of_the_values() -> None:
    shape = (32, 2, 17)
    assert np.isclose(STFT().target_std(shape), np.std(initreg.get("stft")(shape, "float64")))


@pytest.mark.parametrize("name", ["STFT", "STFTInitializer", "stft"])
def test_keras_names_get_and_deserialize_to_the_plugin(name: str) -> None:
    keras = pytest.importorskip("keras")
    assert type(initreg.get(name)) is STFT
    theirs = keras.initializers.STFT("imag", "hamming", "spectrum", True)
    config = keras.initializers.serialize(theirs)
    ours = initreg.deserialize({**config, "class_name": name})
    assert type(ours) is STFT and ours.get_config() == theirs.get_config()
    shape = (16, 1, 9)
    np.testing.assert_allclose(ours(shape, "float64"), np.asarray(theirs(shape, "float64")), atol=1e-5)
    rebuilt = keras.initializers.deserialize({**initreg.serialize(ours), "module": "keras.initializers"})
    assert rebuilt.get_config() == theirs.get_config()
