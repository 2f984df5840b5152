"""The initializer family against Keras 3 itself: fans, configs, arguments, dtypes, seeds, shapes."""

import math
import random
import warnings

import keras
import numpy as np
import pytest
from keras.src.initializers.random_initializers import compute_fans as keras_compute_fans

import initreg
from initreg.errors import InitregError, InvalidArgumentError
from initreg.initializers.base import RandomInitializer
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


@pytest.mark.parametrize("dtype", ["int32", "uint8", "bool", np.int64])
@pytest.mark.parametrize("name", ["LecunNormal", "RandomUniform", "TruncatedNormal", "Orthogonal", "Identity"])
def test_only_constants_make_integer_and_bool_dtypes(name, dtype):
    message = "not a floating dtype.*only the constants.*valid here: 'float16', 'bfloat16', 'float32', 'float64'$"
    with pytest.raises(InvalidArgumentError, match=message):
        getattr(initreg, name)()((2, 2), dtype=dtype)
    with pytest.raises(InvalidArgumentError, match=message):
        initreg.init_slice(name, (2, 2), (), seed=0, path="w", dtype=dtype)


@pytest.mark.parametrize("dtype", ["complex64", "float8", "int4"])
def test_other_dtypes_are_a_clear_error(dtype):
    with pytest.raises(InvalidArgumentError, match=f"'{dtype}' is not a dtype initreg can produce.*'bool', 'int8'"):
        initreg.Zeros()((2, 2), dtype=dtype)


@pytest.mark.parametrize("dtype", ["bool", "int8", "int16", "int32", "int64", "uint8", "uint16", "uint32", "uint64"])
@pytest.mark.parametrize(
    ("name", "value"), [("Zeros", None), ("Ones", None), ("Constant", 3.7), ("Constant", [0.0, 2.5])]
)
def test_constants_make_integer_and_bool_dtypes_as_keras_does(name, value, dtype):
    arguments = {} if value is None else {"value": value}
    ours = getattr(initreg, name)(**arguments)((3, 2), dtype=dtype)
    theirs = np.asarray(getattr(keras.initializers, name)(**arguments)((3, 2), dtype=dtype))
    assert ours.dtype == np.dtype(dtype) and theirs.dtype == np.dtype(dtype)
    np.testing.assert_array_equal(ours, theirs)
    np.testing.assert_array_equal(
        initreg.init_slice(
            name if value is None else {"class_name": name, "config": arguments},
            (3, 2),
            (slice(1, 3),),
            seed=0,
            path="w",
            dtype=dtype,
        ),
        ours[1:3],
    )


def test_integer_constants_keep_every_bit_and_refuse_values_that_do_not_fit():
    assert initreg.Constant(2**62 + 1)((2,), dtype="int64").tolist() == [2**62 + 1] * 2
    assert initreg.Constant([-1.9, 1.9])((2,), dtype="int32").tolist() == [-1, 1]  # toward zero, as Keras casts
    for value, dtype, message in [
        (300, "int8", r"300 does not fit int8; valid: -128 \.\. 127"),
        (-1, "uint8", "does not fit uint8; valid: 0 .. 255"),
        (2.0**63, "int64", "does not fit int64"),
        (float("nan"), "int32", "must be a finite number. Received: value=nan"),
        ([1.0, float("inf")], "int16", r"must hold finite numbers. Received: value=\[1.0, inf\]"),
    ]:
        with pytest.raises(InvalidArgumentError, match=message):
            initreg.Constant(value)((2,), dtype=dtype)
    assert initreg.Constant(2.5)((1,), dtype="bool").tolist() == [True]


def test_a_keras_layer_adds_integer_and_bool_weights_with_initreg_constants():
    class State(keras.layers.Layer):
        def build(self, input_shape):
            self.codes = self.add_weight(shape=(4, 3), dtype="int8", initializer=initreg.Constant(-5), trainable=False)
            self.count = self.add_weight(shape=(), dtype="int32", initializer=initreg.Zeros(), trainable=False)
            self.mask = self.add_weight(shape=(3,), dtype="bool", initializer=initreg.Ones(), trainable=False)

        def call(self, x):
            return x

    layer = State()
    layer.build((None, 4))
    assert keras.backend.standardize_dtype(layer.codes.dtype) == "int8"
    np.testing.assert_array_equal(keras.ops.convert_to_numpy(layer.codes), np.full((4, 3), -5, np.int8))
    assert keras.ops.convert_to_numpy(layer.count).dtype == np.int32 and int(layer.count.numpy()) == 0
    assert keras.ops.convert_to_numpy(layer.mask).tolist() == [True] * 3


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
    with pytest.raises(InvalidArgumentError, match=rf"scale.*positive float.*Received: scale={scale!r}.*finite"):
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


# Truncation: cutoff (relative to the mean) and absolute bounds [a, b]


def test_truncated_std_factor_is_keras_literal_at_two_and_scipy_elsewhere():
    scipy_stats = pytest.importorskip("scipy.stats")
    from initreg.initializers.variance_scaling import truncated_std_factor

    assert truncated_std_factor(2.0) == 0.87962566103423978  # Keras's literal, bit for bit
    assert truncated_std_factor(2.0) == pytest.approx(float(scipy_stats.truncnorm.std(-2, 2)), rel=1e-15)
    for cutoff in [0.5, 1.0, 3.0, 4.5]:
        assert truncated_std_factor(cutoff) == pytest.approx(
            float(scipy_stats.truncnorm.std(-cutoff, cutoff)), rel=1e-13
        )


@pytest.mark.parametrize("cutoff", [1.0, 3.0])
def test_truncated_normal_cutoff_is_scipys_truncnorm(cutoff):
    scipy_stats = pytest.importorskip("scipy.stats")
    mean, stddev = 0.5, 2.0
    init = initreg.TruncatedNormal(mean, stddev, seed=7, cutoff=cutoff)
    values = init((200_000,), dtype="float64")
    assert values.min() >= mean - cutoff * stddev and values.max() <= mean + cutoff * stddev
    expected = scipy_stats.truncnorm(-cutoff, cutoff, loc=mean, scale=stddev)
    assert init.target_std((3,)) == pytest.approx(float(expected.std()), rel=1e-13)
    assert scipy_stats.kstest(values, expected.cdf).pvalue > 1e-3
    assert scipy_stats.kstest(values, scipy_stats.truncnorm(-2, 2, loc=mean, scale=stddev).cdf).pvalue < 1e-10


@pytest.mark.parametrize(
    ("mean", "std", "a", "b"), [(0.0, 1.0, -2.0, 2.0), (0.1, 0.7, -0.3, 1.9), (0.0, 0.02, -0.04, 0.04)]
)
def test_truncated_normal_absolute_bounds_are_torchs_trunc_normal(mean, std, a, b):
    torch = pytest.importorskip("torch")
    scipy_stats = pytest.importorskip("scipy.stats")
    init = initreg.TruncatedNormal(mean, std, seed=3, a=a, b=b)
    for dtype in ["float32", "float64"]:
        values = init((100_000,), dtype=dtype)
        assert values.min() >= a and values.max() <= b  # the written bounds themselves, never rounded past
    values = init((100_000,), dtype="float64")
    torch.manual_seed(0)
    theirs = torch.nn.init.trunc_normal_(torch.empty(100_000, dtype=torch.float64), mean, std, a, b).numpy()
    assert scipy_stats.ks_2samp(values, theirs).pvalue > 1e-3
    expected = scipy_stats.truncnorm((a - mean) / std, (b - mean) / std, loc=mean, scale=std)
    assert scipy_stats.kstest(values, expected.cdf).pvalue > 1e-3
    assert init.target_std((5,)) == pytest.approx(float(expected.std()), rel=1e-12)


def test_variance_scaling_cutoff_keeps_the_target_std_and_cuts_at_cutoff_sigma():
    scipy_stats = pytest.importorskip("scipy.stats")
    shape, cutoff = (400, 500), 3.0
    init = initreg.VarianceScaling(2.0, "fan_in", "truncated_normal", seed=1, cutoff=cutoff)
    target = math.sqrt(2.0 / 400)
    sigma = target / float(scipy_stats.truncnorm.std(-cutoff, cutoff))
    assert init.target_std(shape) == pytest.approx(target, rel=1e-13)
    values = init(shape, dtype="float64")
    assert np.abs(values).max() <= cutoff * sigma
    assert np.abs(values).max() > 2.5 * sigma  # not cut at Keras's 2 sigma
    assert values.std() == pytest.approx(target, rel=0.01)
    assert initreg.HeNormal(seed=1, cutoff=cutoff).distribution_for(shape) == init.distribution_for(shape)


def test_default_truncation_is_unchanged_and_keras_reads_the_config():
    import json

    for ours, theirs in [
        (initreg.TruncatedNormal(0.5, 0.1, seed=9), keras.initializers.TruncatedNormal(0.5, 0.1, seed=9)),
        (initreg.VarianceScaling(seed=2), keras.initializers.VarianceScaling(seed=2)),
        (initreg.LecunNormal(seed=3), keras.initializers.LecunNormal(seed=3)),
    ]:
        assert json.dumps(ours.get_config()) == json.dumps(theirs.get_config())
        rebuilt = keras.initializers.deserialize(initreg.serialize(ours))
        assert type(rebuilt) is type(theirs) and rebuilt.get_config() == theirs.get_config()
    assert initreg.TruncatedNormal(seed=1).distribution_for((3,)) == initreg.distributions.TruncatedNormalDist(
        0.0, 0.05
    )


@pytest.mark.parametrize(
    ("init", "extra"),
    [
        (initreg.TruncatedNormal(seed=1, cutoff=3.0), {"cutoff": 3.0}),
        (initreg.TruncatedNormal(0.1, 0.7, seed=1, a=-0.3, b=1.9), {"a": -0.3, "b": 1.9}),
        (initreg.VarianceScaling(seed=1, cutoff=2.5), {"cutoff": 2.5}),
        (initreg.GlorotNormal(seed=1, cutoff=1.5), {"cutoff": 1.5}),
    ],
    ids=repr,
)
def test_non_default_truncation_is_in_the_config_and_round_trips(init, extra):
    config = init.get_config()
    assert {key: config[key] for key in extra} == extra
    rebuilt = type(init).from_config(config)
    assert rebuilt == init and np.array_equal(rebuilt((7, 5)), init((7, 5)))
    assert initreg.deserialize(initreg.serialize(init)) == init


@pytest.mark.parametrize(
    ("cls", "arguments", "message"),
    [
        ("TruncatedNormal", {"cutoff": 0.0}, r"`cutoff` must be > 0.*cutoff=0.0"),
        ("TruncatedNormal", {"cutoff": -1}, r"`cutoff` must be > 0"),
        ("TruncatedNormal", {"cutoff": float("inf")}, "`cutoff` must be a finite number"),
        ("TruncatedNormal", {"cutoff": "2"}, "`cutoff` must be a finite number"),
        ("TruncatedNormal", {"a": -1.0}, "`a` and `b` must be given together"),
        ("TruncatedNormal", {"a": 1.0, "b": 1.0}, "`a` must be below `b`"),
        ("TruncatedNormal", {"a": -1.0, "b": float("nan")}, "`b` must be a finite number"),
        ("TruncatedNormal", {"a": -1.0, "b": 1.0, "cutoff": 3.0}, "either `cutoff`.*or `a` and `b`"),
        ("TruncatedNormal", {"stddev": 0.0, "a": -1.0, "b": 1.0}, "`stddev` must be > 0 with absolute bounds"),
        ("TruncatedNormal", {"stddev": 0.01, "a": 1.0, "b": 2.0}, "probability is 0"),
        ("VarianceScaling", {"cutoff": float("nan")}, "`cutoff` must be a finite number"),
        ("VarianceScaling", {"distribution": "uniform", "cutoff": 3.0}, "only to distribution='truncated_normal'"),
        ("HeUniform", {"cutoff": 3.0}, "only to distribution='truncated_normal'"),
    ],
)
def test_bad_truncation_arguments_are_clear_errors(cls, arguments, message):
    with pytest.raises(InvalidArgumentError, match=message):
        getattr(initreg, cls)(**arguments)


@pytest.mark.parametrize("shape", [(16, 3, 3, 3), (64, 8, 3, 3), (8, 4, 5), (6, 10), (10, 6)])
def test_orthogonal_in_torch_layout_is_torchs_orthogonal(shape):
    """torch.nn.init.orthogonal_ makes weight.view(out, -1) (semi-)orthogonal; so does layout="torch"."""
    torch = pytest.importorskip("torch")
    gain = 1.5
    theirs = torch.nn.init.orthogonal_(torch.empty(shape, dtype=torch.float64), gain=gain).view(shape[0], -1).numpy()
    ours = initreg.Orthogonal(gain=gain, seed=1)(shape, dtype="float64", layout="torch").reshape(shape[0], -1)
    for matrix in (theirs, ours):
        rows, cols = matrix.shape
        gram = matrix @ matrix.T if rows <= cols else matrix.T @ matrix
        np.testing.assert_allclose(gram, gain**2 * np.eye(min(rows, cols)), atol=1e-12)
    rows, cols = ours.shape
    rms = float(np.sqrt(np.mean(theirs**2)))  # exact for an orthogonal matrix: gain / sqrt(max(rows, cols))
    assert initreg.Orthogonal(gain=gain).target_std(shape, layout="torch") == pytest.approx(rms, rel=1e-9)
    if len(shape) > 2:  # the Keras reading of the same shape is another matrix, not orthogonal in torch's view
        keras_read = initreg.Orthogonal(gain=gain, seed=1)(shape, dtype="float64").reshape(shape[0], -1)
        gram = keras_read @ keras_read.T if rows <= cols else keras_read.T @ keras_read
        assert np.abs(gram - gain**2 * np.eye(min(rows, cols))).max() > 0.1


def test_orthogonal_refuses_an_unknown_layout():
    with pytest.raises(InvalidArgumentError, match="unknown layout 'tf'.*'keras', 'torch'"):
        initreg.Orthogonal()((3, 3), layout="tf")


@pytest.mark.parametrize(
    "make",
    [
        lambda: initreg.VarianceScaling(cutoff=1e-7)((4, 4)),
        lambda: initreg.TruncatedNormal(cutoff=1e-8).target_std((3,)),
        lambda: initreg.TruncatedNormal(mean=0.0, stddev=1.0, a=0.0, b=2e-8).target_std((3,)),
    ],
)
def test_truncation_whose_std_cannot_be_computed_precisely_is_refused(make):
    with pytest.raises(InvalidArgumentError, match=r"cannot be computed to 1e-09: the bounds are too close together"):
        make()


def test_every_truncated_std_accepted_is_within_1e_7_of_scipys():
    scipy_stats = pytest.importorskip("scipy.stats")
    from initreg.distributions import TruncatedNormalDist

    accepted = 0
    for center in (0.0, 0.5, 1.0, 2.0, 3.0, 4.0, 5.0, 6.0, -3.0, -5.0):
        for width in (1e-4, 1e-3, 1e-2, 0.1, 0.5, 1.0, 2.0, 4.0):
            low, high = center - width / 2, center + width / 2
            try:
                std = TruncatedNormalDist(0.0, 1.0, low, high).std
            except InvalidArgumentError:
                continue
            accepted += 1
            assert std == pytest.approx(float(scipy_stats.truncnorm.std(low, high)), rel=1e-7), (low, high)
    assert accepted >= 30  # the usual bounds are all accepted: the check refuses only ill-conditioned ones


SCALAR_KINDS = ["numpy scalar", "0-d numpy", "0-d torch", "0-d jax"]


def other_library_scalar(kind, number):
    """`number` as a NumPy scalar or a 0-d array of NumPy, torch or JAX (int32 for ints, else float32)."""
    dtype = "int32" if isinstance(number, int) else "float32"
    if kind == "numpy scalar":
        return np.dtype(dtype).type(number)
    if kind == "0-d numpy":
        return np.array(number, dtype=dtype)
    if kind == "0-d torch":
        torch = pytest.importorskip("torch")
        return torch.tensor(number, dtype=getattr(torch, dtype))
    jnp = pytest.importorskip("jax.numpy")
    return jnp.array(number, dtype=dtype)


NUMERIC_ARGUMENTS = [
    ("RandomNormal", {"mean": 0.5, "stddev": 1.5}),
    ("RandomUniform", {"minval": -0.25, "maxval": 0.75}),
    ("TruncatedNormal", {"mean": 0.5, "stddev": 2.0, "cutoff": 3.0}),
    ("TruncatedNormal", {"mean": 0.5, "stddev": 2.0, "a": -1.0, "b": 2.5}),
    ("VarianceScaling", {"scale": 2.5, "cutoff": 1.5}),
    ("HeNormal", {"cutoff": 3.0}),
    ("Orthogonal", {"gain": 1.25}),
    ("Identity", {"gain": -0.5}),
    ("Constant", {"value": 0.75}),
    ("Constant", {"value": 3}),
]


@pytest.mark.parametrize("kind", SCALAR_KINDS)
@pytest.mark.parametrize(("name", "arguments"), NUMERIC_ARGUMENTS)
def test_numeric_arguments_take_real_scalars_of_other_libraries(kind, name, arguments):
    """JAX's testAccidentalUpcasting passes np.float32 and 0-d arrays; the config stays plain Python numbers."""
    cls = getattr(initreg, name)
    seeded = {"seed": 7} if issubclass(cls, RandomInitializer) else {}
    theirs = cls(**{key: other_library_scalar(kind, value) for key, value in arguments.items()}, **seeded)
    plain = cls(**arguments, **seeded)
    config = theirs.get_config()
    assert config == plain.get_config()
    assert all(type(config[key]) is type(plain.get_config()[key]) for key in arguments)
    np.testing.assert_array_equal(theirs((4, 4)), plain((4, 4)))


def test_constant_keeps_an_integer_scalar_an_int_in_its_config_as_keras_does():
    config = initreg.Constant(np.int64(3)).get_config()
    assert config == keras.initializers.Constant(3).get_config() and type(config["value"]) is int


@pytest.mark.parametrize("kind", SCALAR_KINDS)
def test_seeds_take_integer_scalars_of_other_libraries(kind):
    init = initreg.RandomNormal(seed=other_library_scalar(kind, 11))
    assert init.get_config()["seed"] == 11 and type(init.get_config()["seed"]) is int
    assert np.array_equal(init((3, 3)), initreg.RandomNormal(seed=11)((3, 3)))
    with pytest.raises(InvalidArgumentError, match="seed must be an integer"):
        initreg.RandomNormal(seed=other_library_scalar(kind, 11.0))


def refused_scalars():
    """Values that are not finite real scalars, from each library, with the text their refusal shows."""
    torch = pytest.importorskip("torch")
    jnp = pytest.importorskip("jax.numpy")
    return [
        (np.array([0.5]), "array([0.5])"),  # one element, but 1-d: not a scalar
        (torch.tensor([0.5]), "tensor([0.5000])"),
        (jnp.array([0.5]), "Array([0.5]"),
        (np.bool_(True), "True"),
        (torch.tensor(True), "tensor(True)"),
        (np.complex64(0.5), "0.5+0j"),
        (jnp.array(0.5 + 1j), "Array(0.5+1.j"),
        (np.array(np.nan), "array(nan)"),
        (torch.tensor(float("inf")), "tensor(inf)"),
        (jnp.array(-np.inf), "Array(-inf"),
    ]


@pytest.mark.parametrize(("name", "argument"), [("RandomNormal", "mean"), ("RandomUniform", "maxval"),
                                                ("TruncatedNormal", "cutoff"), ("Identity", "gain"),
                                                ("VarianceScaling", "scale")])  # fmt: skip
def test_non_scalars_bools_complex_and_non_finite_scalars_are_refused_by_name(name, argument):
    for value, shown in refused_scalars():
        with pytest.raises(InvalidArgumentError) as error:
            getattr(initreg, name)(**{argument: value})
        assert f"`{argument}`" in str(error.value) and shown in str(error.value)
        assert "valid: a finite real scalar" in str(error.value)


def test_one_sided_axes_are_checked_against_the_rank_warned_about_and_otherwise_ignored_as_keras_does():
    assert compute_fans((3, 4, 5), [0], None) == keras_compute_fans((3, 4, 5), [0], None) == compute_fans((3, 4, 5))
    with pytest.warns(UserWarning, match=r"input_axes=\[5\] without output_axes: one-sided axes are ignored.*as Keras"):
        init = initreg.VarianceScaling(input_axes=[5], seed=1)
    with pytest.raises(InvalidArgumentError, match=r"input_axes has axis 5, but shape \(3, 4\) has rank 2; valid axes"):
        init((3, 4))
    with pytest.raises(InvalidArgumentError, match=r"output_axes has axis -3, .* valid axes: -2 to 1"):
        compute_fans((3, 4), None, [-3])
    with pytest.warns(UserWarning, match=r"output_axes=\[0\] without input_axes"):
        one_sided = initreg.HeNormal(output_axes=[0], seed=1)
    for layout in (None, "torch"):
        expected = initreg.HeNormal(seed=1)((6, 2, 3), layout=layout)
        np.testing.assert_array_equal(one_sided((6, 2, 3), layout=layout), expected)


def test_axes_on_both_sides_or_none_give_no_warning():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        initreg.VarianceScaling(input_axes=[0], output_axes=[1])
        initreg.GlorotUniform()


def _keras_error(make):
    """The message of the ValueError Keras itself raises in `make()`."""
    with pytest.raises(ValueError) as error:
        make()
    return str(error.value)


def test_variance_scaling_refuses_a_negative_scale_in_keras_words():
    """Keras's own test matches "Argument `scale` must be positive float."; initreg's message starts with it."""
    theirs = _keras_error(lambda: keras.initializers.VarianceScaling(scale=-1.0))
    with pytest.raises(InvalidArgumentError) as ours:
        initreg.VarianceScaling(scale=-1.0)
    assert str(ours.value).startswith(theirs) and "Argument `scale` must be positive float." in theirs


def test_get_of_an_array_refuses_another_shape_in_keras_words():
    """Keras's own test matches "Expected `shape` to be" for get(tensor) called with another shape."""
    array = np.arange(9, dtype=np.float32).reshape(3, 3)
    theirs = _keras_error(lambda: keras.initializers.get(array)(shape=(10, 10)))
    with pytest.raises(InvalidArgumentError) as ours:
        initreg.get(array)(shape=(10, 10))
    assert str(ours.value).startswith(theirs) and "Expected `shape` to be (3, 3)" in theirs


def test_scalars_without_a_value_are_refused_by_name_not_with_the_library_error():
    """A traced JAX scalar (inside jit) or a torch meta tensor has no value to read: a clear error, not theirs."""
    torch = pytest.importorskip("torch")
    jax = pytest.importorskip("jax")
    with pytest.raises(InvalidArgumentError, match=r"`stddev` must be a finite number.*device='meta'"):
        initreg.RandomNormal(stddev=torch.tensor(0.5, device="meta"))
    refusals = []

    @jax.jit
    def construct(scale):
        with pytest.raises(InvalidArgumentError) as error:
            initreg.VarianceScaling(scale=scale)
        refusals.append(str(error.value))
        return scale

    construct(jax.numpy.array(2.0))
    assert len(refusals) == 1 and "Received: scale=" in refusals[0] and "Tracer" in refusals[0]
