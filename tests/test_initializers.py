"""The initializer family against Keras 3 itself: fans, configs, arguments, dtypes, seeds, shapes."""

import math
import random

import keras
import numpy as np
import pytest
from keras.src.initializers.random_initializers import compute_fans as keras_compute_fans

import initreg
from initreg.errors import InitregError, InvalidArgumentError
from initreg.initializers.variance_scaling import compute_fans

FAN_SHAPES = [(), (7,), (3, 5), (3, 3, 4, 8), (2, 3, 5, 6, 7), (1, 1), (0, 4), (5, 0, 2)]
PRESETS = ["LecunNormal", "LecunUniform", "GlorotNormal", "GlorotUniform", "HeNormal", "HeUniform"]
CLASSES = [*PRESETS, "VarianceScaling", "RandomNormal", "RandomUniform", "TruncatedNormal", "Zeros", "Ones"]
CLASSES += ["Constant", "Identity", "Orthogonal"]


@pytest.mark.parametrize("shape", FAN_SHAPES)
def test_fans_equal_keras(shape):
    assert compute_fans(shape) == keras_compute_fans(shape)


@pytest.mark.parametrize(("shape", "axes"), [((4, 5, 6), ([0, 1], [2])), ((4, 5, 6, 7), ([-1], [0, 2]))])
def test_fans_with_axes_equal_keras(shape, axes):
    assert compute_fans(shape, *axes) == keras_compute_fans(shape, *axes)


@pytest.mark.parametrize("shape", [(8, 3), (16, 3, 5, 5), (4, 2, 3, 3, 3), (9,)])
def test_torch_layout_fans_equal_torch(shape):
    torch = pytest.importorskip("torch")
    if len(shape) < 2:
        assert compute_fans(shape, layout="torch") == compute_fans(shape)
        return
    weight = torch.empty(shape)
    expected = torch.nn.init._calculate_fan_in_and_fan_out(weight)
    assert compute_fans(shape, layout="torch") == expected


def test_torch_layout_initializes_torch_weights_with_the_right_std():
    init = initreg.HeNormal(seed=0)
    shape = (256, 128, 3, 3)  # torch Conv2d: out, in, kh, kw
    assert init.target_std(shape, layout="torch") == pytest.approx(math.sqrt(2 / (128 * 9)))
    values = init(shape, layout="torch")
    assert values.std() == pytest.approx(math.sqrt(2 / (128 * 9)), rel=0.01)


def test_layout_errors():
    with pytest.raises(InvalidArgumentError, match="'jax'.*'keras', 'torch'"):
        compute_fans((3, 4), layout="jax")
    with pytest.raises(InvalidArgumentError, match="not both"):
        compute_fans((3, 4), [0], [1], layout="torch")


@pytest.mark.parametrize("mode", ["fan_in", "fan_out", "fan_avg"])
@pytest.mark.parametrize("distribution", ["truncated_normal", "untruncated_normal", "uniform"])
def test_target_std_follows_keras_formulas(mode, distribution):
    shape = (3, 3, 16, 32)
    fan_in, fan_out = keras_compute_fans(shape)
    fan = {"fan_in": fan_in, "fan_out": fan_out, "fan_avg": (fan_in + fan_out) / 2}[mode]
    init = initreg.VarianceScaling(2.5, mode, distribution, seed=0)
    assert init.target_std(shape) == pytest.approx(math.sqrt(2.5 / fan), rel=1e-12)
    values = init(shape)
    assert values.std() == pytest.approx(math.sqrt(2.5 / fan), rel=0.03)
    keras_values = keras.initializers.VarianceScaling(2.5, mode, distribution, seed=0)(shape)
    assert float(np.std(keras_values)) == pytest.approx(math.sqrt(2.5 / fan), rel=0.03)


def test_fan_geo_avg_as_in_jax():
    init = initreg.VarianceScaling(1.0, "fan_geo_avg", "uniform")
    assert init.target_std((8, 32)) == pytest.approx(math.sqrt(1 / 16))


def test_lecun_normal_example_from_the_docs():
    initializer = initreg.LecunNormal()
    values = initializer(shape=(2, 2))
    assert values.shape == (2, 2) and values.dtype == np.float32


def test_presets_are_variance_scaling_with_keras_parameters():
    for name in PRESETS:
        ours, theirs = getattr(initreg, name)(), getattr(keras.initializers, name)()
        assert (ours.scale, ours.mode, ours.distribution) == (theirs.scale, theirs.mode, theirs.distribution)


@pytest.mark.parametrize("name", CLASSES)
def test_default_configs_equal_keras(name):
    arguments = {"value": 0.5} if name == "Constant" else {}
    ours = getattr(initreg, name)(**arguments).get_config()
    theirs = getattr(keras.initializers, name)(**arguments).get_config()
    if name == "Identity":
        assert theirs == {} and ours == {"gain": 1.0}  # Keras loses the gain; we keep it
    else:
        assert ours == theirs


def test_explicit_configs_equal_keras():
    pairs = [
        ("VarianceScaling", {"scale": 2.0, "mode": "fan_avg", "distribution": "uniform", "seed": 4}),
        ("VarianceScaling", {"distribution": "normal"}),
        ("RandomNormal", {"mean": 1.0, "stddev": 2.0, "seed": 3}),
        ("RandomUniform", {"minval": -2.0, "maxval": 3.0, "seed": 1}),
        ("TruncatedNormal", {"mean": 0.5, "stddev": 0.1, "seed": 9}),
        ("Orthogonal", {"gain": 2.0, "seed": 5}),
        ("HeUniform", {"seed": 8, "input_axes": [0], "output_axes": [1]}),
    ]
    for name, arguments in pairs:
        assert (
            getattr(initreg, name)(**arguments).get_config()
            == getattr(keras.initializers, name)(**arguments).get_config()
        )


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        ({"scale": 0.0}, "scale.*positive"),
        ({"scale": -1}, "scale.*positive"),
        ({"mode": "fan_sum"}, "'fan_sum'.*'fan_in', 'fan_out', 'fan_avg', 'fan_geo_avg'"),
        ({"distribution": "cauchy"}, "'cauchy'.*'truncated_normal', 'untruncated_normal', 'uniform'"),
    ],
)
def test_variance_scaling_argument_errors_match_keras_checks(arguments, message):
    with pytest.raises(InvalidArgumentError, match=message):
        initreg.VarianceScaling(**arguments)
    with pytest.raises(ValueError):
        keras.initializers.VarianceScaling(**arguments)


def test_other_argument_errors():
    with pytest.raises(InvalidArgumentError, match="minval"):
        initreg.RandomUniform(1.0, -1.0)
    with pytest.raises(InvalidArgumentError, match="stddev"):
        initreg.RandomNormal(stddev=-1)
    with pytest.raises(InvalidArgumentError, match="seed.*'abc'"):
        initreg.LecunNormal(seed="abc")
    with pytest.raises(InvalidArgumentError, match="gain"):
        initreg.Orthogonal(gain=float("nan"))


@pytest.mark.parametrize("dtype", ["float16", "bfloat16", "float32", "float64", np.float32, np.dtype("float16")])
@pytest.mark.parametrize("name", CLASSES)
def test_every_float_dtype_works(name, dtype):
    arguments = {"value": 0.5} if name == "Constant" else {}
    values = getattr(initreg, name)(**arguments)((6, 4), dtype=dtype)
    assert values.shape == (6, 4)
    assert values.dtype.name == initreg.dtypes.standardize_dtype(dtype)
    assert np.all(np.isfinite(np.asarray(values, dtype=np.float64)))


@pytest.mark.parametrize("dtype", ["int32", "uint8", "bool", "complex64", np.int64, "float8"])
def test_non_float_dtype_is_a_clear_error(dtype):
    with pytest.raises(InvalidArgumentError, match="not a floating dtype.*'float16', 'bfloat16', 'float32', 'float64'"):
        initreg.Zeros()((2, 2), dtype=dtype)


@pytest.mark.parametrize(
    ("shape", "message"),
    [((2, -1), "negative"), ((2.0, 3), "non-integer"), (5, "sequence"), ("ab", "sequence"), ((2, True), "non-integer")],
)
def test_bad_shapes_are_clear_errors(shape, message):
    with pytest.raises(InvalidArgumentError, match=message):
        initreg.LecunNormal()(shape)


def test_numpy_integers_are_valid_dimensions():
    assert initreg.Ones()((np.int64(2), np.int32(3))).shape == (2, 3)


def test_int_seed_repeats_across_calls_and_instances():
    a, b = initreg.HeNormal(seed=12), initreg.HeNormal(seed=12)
    assert np.array_equal(a((30, 20)), a((30, 20)))
    assert np.array_equal(a((30, 20)), b((30, 20)))
    assert not np.array_equal(a((30, 20)), initreg.HeNormal(seed=13)((30, 20)))


def test_seed_none_is_drawn_once_and_config_keeps_none():
    init = initreg.GlorotNormal()
    assert init.get_config()["seed"] is None
    assert np.array_equal(init((5, 5)), init((5, 5)))
    assert not np.array_equal(init((5, 5)), initreg.GlorotNormal()((5, 5)))
    random.seed(1234)
    first = initreg.GlorotNormal()((5, 5))
    random.seed(1234)
    assert np.array_equal(first, initreg.GlorotNormal()((5, 5)))


def test_constant_broadcasts_an_array_value():
    values = initreg.Constant([1.0, 2.0, 3.0])((2, 3))
    assert values.tolist() == [[1, 2, 3], [1, 2, 3]]
    assert initreg.Constant(np.array([[4.0], [5.0]]))((2, 2)).tolist() == [[4, 4], [5, 5]]
    with pytest.raises(InvalidArgumentError, match=r"shape \(3,\) does not broadcast to shape \(2, 2\)"):
        initreg.Constant([1.0, 2.0, 3.0])((2, 2))


def test_constant_equals_keras():
    for value in [0.3, [1.0, -2.0]]:
        assert np.array_equal(initreg.Constant(value)((3, 2)), keras.initializers.Constant(value)((3, 2)))


@pytest.mark.parametrize("shape", [(3, 3), (2, 5), (6, 4)])
def test_identity_equals_keras_for_square_and_rectangular(shape):
    assert np.array_equal(initreg.Identity(2.5)(shape), keras.initializers.Identity(2.5)(shape))


def test_identity_rejects_non_matrices():
    with pytest.raises(InvalidArgumentError, match="2D matrices.*rank 3"):
        initreg.Identity()((2, 2, 2))


@pytest.mark.parametrize("shape", [(4, 4), (7, 3), (3, 7), (2, 3, 5), (3, 3, 2, 8)])
def test_orthogonal_is_orthogonal_and_scaled_by_gain(shape):
    gain = 1.5
    values = initreg.Orthogonal(gain=gain, seed=1)(shape, dtype="float64").reshape(-1, shape[-1])
    rows, cols = values.shape
    gram = values.T @ values if rows >= cols else values @ values.T
    assert np.allclose(gram, gain**2 * np.eye(min(rows, cols)), atol=1e-12)


def test_orthogonal_is_the_sign_corrected_q_of_the_streams_normal_matrix():
    """Keras's algorithm: Q of A = QR with diag(R) > 0, so Q^T A is upper triangular with a positive diagonal."""
    init = initreg.Orthogonal(seed=3)
    q = init((6, 4), dtype="float64")
    normal = initreg.registry.get_backend().draw(initreg.distributions.NormalDist(0, 1), init.key(), (6, 4), "float64")
    r = q.T @ normal
    assert np.allclose(np.tril(r, -1), 0, atol=1e-12)
    assert np.all(np.diag(r) > 0)


def test_orthogonal_rejects_rank_below_two():
    with pytest.raises(InvalidArgumentError, match="at least two-dimensional.*rank 1"):
        initreg.Orthogonal()((5,))


def test_errors_share_the_project_base_class():
    for error in [initreg.errors.UnknownNameError, InvalidArgumentError, initreg.errors.NameClashError]:
        assert issubclass(error, InitregError) and issubclass(error, ValueError)


def test_constant_target_std_and_its_broadcast_error():
    assert initreg.Constant([1.0, 3.0]).target_std((4, 2)) == pytest.approx(1.0)
    assert initreg.Ones().target_std((3, 3)) == 0.0
    with pytest.raises(InvalidArgumentError, match=r"shape \(3,\) does not broadcast to shape \(2, 2\)"):
        initreg.Constant([1.0, 2.0, 3.0]).target_std((2, 2))


@pytest.mark.parametrize("scale", [math.inf, math.nan, -math.inf, 10**400])
def test_variance_scaling_scale_must_be_finite(scale):
    with pytest.raises(InvalidArgumentError, match=rf"scale.*positive, finite.*Received: scale={scale!r}"):
        initreg.VarianceScaling(scale=scale)


@pytest.mark.parametrize(
    ("name", "arguments", "named"),
    [
        ("RandomNormal", {"stddev": math.inf}, "stddev=inf"),
        ("RandomNormal", {"mean": math.nan}, "mean=nan"),
        ("TruncatedNormal", {"mean": 10**400}, "mean=1000"),
        ("RandomUniform", {"maxval": math.inf}, "maxval=inf"),
        ("Identity", {"gain": -math.inf}, "gain=-inf"),
        ("Constant", {"value": math.inf}, "value=inf"),
        ("Constant", {"value": [1.0, math.nan]}, "value=[1.0, nan]"),
        ("Constant", {"value": "hello"}, "value='hello'"),
        ("Constant", {"value": [1, "a"]}, "value=[1, 'a']"),
        ("Constant", {"value": [[1, 2], [3]]}, "value=[[1, 2], [3]]"),
        ("Constant", {"value": None}, "value=None"),
    ],
)
def test_arguments_must_be_finite_numbers_named_in_the_error(name, arguments, named):
    with pytest.raises(InvalidArgumentError) as error:
        getattr(initreg, name)(**arguments)
    assert named in str(error.value)


def test_constant_takes_numbers_bools_and_rectangular_lists_as_keras_does():
    for value in (True, 3, -2.5, [[1, 2], [3, 4]], np.float32(0.5), np.ones((2, 1))):
        values = initreg.Constant(value)((2, 2))
        np.testing.assert_array_equal(values, keras.initializers.Constant(value)((2, 2)))


@pytest.mark.parametrize(
    ("input_axes", "output_axes", "named"),
    [([5], [1], "input_axes has axis 5, but shape (3, 4) has rank 2; valid axes: -2 to 1"),
     ([0], [-3], "output_axes has axis -3, but shape (3, 4) has rank 2; valid axes: -2 to 1")],
)  # fmt: skip
def test_axes_outside_the_shape_are_named_with_the_rank_and_the_valid_range(input_axes, output_axes, named):
    with pytest.raises(InvalidArgumentError) as error:
        compute_fans((3, 4), input_axes, output_axes)
    assert str(error.value) == named
    with pytest.raises(InvalidArgumentError, match="valid axes: -2 to 1"):
        initreg.HeNormal(input_axes=input_axes, output_axes=output_axes)((3, 4))
    assert compute_fans((3, 4, 5), [-1], [0, 1]) == (5, 12)


@pytest.mark.parametrize("axes", ["01", [0.5], [True], 3])
def test_axes_must_be_lists_of_integers(axes):
    with pytest.raises(InvalidArgumentError, match=r"input_axes must be a list of integer axes"):
        initreg.VarianceScaling(input_axes=axes, output_axes=[1])


def test_shapes_beyond_numpy_s_rank_or_an_int64_size_are_refused():
    with pytest.raises(InvalidArgumentError, match="rank 65; valid: at most 64"):
        initreg.Zeros()((1,) * 65)
    with pytest.raises(InvalidArgumentError, match=rf"has {2**64} elements; valid: at most 2\^63 - 1"):
        initreg.Zeros()((2**32, 2**32))
    assert initreg.Zeros()((1,) * 64).shape == (1,) * 64
