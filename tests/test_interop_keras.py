"""Keras 3 (numpy backend): re-initializing a model or its JSON from the initializers its layers name."""

import numpy as np
import pytest

keras = pytest.importorskip("keras")

from initreg import init_slice  # noqa: E402
from initreg.errors import InitregError  # noqa: E402
from initreg.interop.keras import reinitialize, weight_inits  # noqa: E402

UNITS = 6


@pytest.fixture(autouse=True)
def fresh_layer_names():
    """Layer names (and so weight paths) start from "dense", "lstm", ... in every test."""
    keras.utils.clear_session()


def _model():
    keras.utils.clear_session()
    inputs = keras.Input((10, 8))
    x = keras.layers.LSTM(UNITS, return_sequences=True)(inputs)
    x = keras.layers.GRU(5, return_sequences=True, recurrent_initializer="he_uniform")(x)
    x = keras.layers.MultiHeadAttention(2, 4, kernel_initializer="lecun_normal")(x, x)
    x = keras.layers.LayerNormalization()(x)
    x = keras.layers.Conv1D(4, 3, bias_initializer=keras.initializers.RandomNormal(1.0, 0.5))(x)
    x = keras.layers.BatchNormalization()(x)
    x = keras.layers.SeparableConv1D(3, 2, pointwise_initializer="he_normal")(x)
    x = keras.layers.Flatten()(x)
    outputs = keras.layers.Dense(3, kernel_initializer=keras.initializers.TruncatedNormal(stddev=0.3))(x)
    return keras.Model(inputs, outputs)


# What each weight must get, written from the layer definitions above (Keras's defaults included); the
# attention's einsum kernels get the axes of their equations, as Keras's own build gives them.
PROJECTION = {"class_name": "LecunNormal", "config": {"input_axes": [0], "output_axes": [1, 2]}}
EXPECTED = {
    "lstm/lstm_cell/kernel": "glorot_uniform",
    "lstm/lstm_cell/recurrent_kernel": "orthogonal",
    "gru/gru_cell/kernel": "glorot_uniform",
    "gru/gru_cell/recurrent_kernel": "he_uniform",
    "gru/gru_cell/bias": "zeros",
    "multi_head_attention/query/kernel": PROJECTION,
    "multi_head_attention/query/bias": "zeros",
    "multi_head_attention/key/kernel": PROJECTION,
    "multi_head_attention/key/bias": "zeros",
    "multi_head_attention/value/kernel": PROJECTION,
    "multi_head_attention/value/bias": "zeros",
    "multi_head_attention/attention_output/kernel": {
        "class_name": "LecunNormal",
        "config": {"input_axes": [0, 1], "output_axes": [2]},
    },
    "multi_head_attention/attention_output/bias": "zeros",
    "layer_normalization/gamma": "ones",
    "layer_normalization/beta": "zeros",
    "conv1d/kernel": "glorot_uniform",
    "conv1d/bias": {"class_name": "RandomNormal", "config": {"mean": 1.0, "stddev": 0.5}},
    "batch_normalization/gamma": "ones",
    "batch_normalization/beta": "zeros",
    "batch_normalization/moving_mean": "zeros",
    "batch_normalization/moving_variance": "ones",
    "separable_conv1d/depthwise_kernel": "glorot_uniform",
    "separable_conv1d/pointwise_kernel": "he_normal",
    "separable_conv1d/bias": "zeros",
    "dense/kernel": {"class_name": "TruncatedNormal", "config": {"stddev": 0.3}},
    "dense/bias": "zeros",
}


def _weights(model):
    return {weight.path: np.asarray(value) for weight, value in zip(model.weights, model.get_weights(), strict=True)}


def test_every_weight_comes_from_the_stream_of_its_path_with_its_layers_initializer():
    model = reinitialize(_model(), seed=3)
    weights = _weights(model)
    assert set(weights) == {*EXPECTED, "lstm/lstm_cell/bias"}
    for path, initializer in EXPECTED.items():
        expected = init_slice(initializer, weights[path].shape, (), seed=3, path=path)
        np.testing.assert_array_equal(weights[path], expected, err_msg=path)


def test_an_lstm_bias_has_its_forget_gate_at_one_as_keras_unit_forget_bias_does():
    bias = _weights(reinitialize(_model(), seed=0))["lstm/lstm_cell/bias"]
    expected = np.zeros(4 * UNITS, np.float32)
    expected[UNITS : 2 * UNITS] = 1.0
    np.testing.assert_array_equal(bias, expected)


def test_the_json_of_a_model_is_reinitialized_to_the_same_values():
    model = _model()
    from_model = _weights(reinitialize(model, seed=5))
    from_json = _weights(reinitialize(model.to_json(), seed=5))
    assert from_json.keys() == from_model.keys()
    for path, values in from_model.items():
        np.testing.assert_array_equal(from_json[path], values, err_msg=path)


def test_a_sequential_model_keys_weights_without_its_own_name_so_its_json_agrees():
    model = keras.Sequential([keras.Input((5,), dtype="int32"), keras.layers.Embedding(50, 4), keras.layers.PReLU()])
    assert [entry.path for entry in weight_inits(model)] == [w.path.split("/", 1)[1] for w in model.weights]
    from_model = reinitialize(model, seed=1).get_weights()
    from_json = reinitialize(model.to_json(), seed=1).get_weights()
    for a, b in zip(from_model, from_json, strict=True):
        np.testing.assert_array_equal(a, b)
    embeddings = init_slice(
        {"class_name": "RandomUniform", "config": {"minval": -0.05, "maxval": 0.05}},
        (50, 4),
        (),
        1,
        "embedding/embeddings",
    )
    np.testing.assert_array_equal(from_model[0], embeddings)
    np.testing.assert_array_equal(from_model[1], np.zeros((5, 4), np.float32))


def test_the_values_follow_the_seed_and_are_reproducible():
    first = _weights(reinitialize(_model(), seed=7))
    again = _weights(reinitialize(_model(), seed=7))
    other = _weights(reinitialize(_model(), seed=8))
    for path in ("dense/kernel", "lstm/lstm_cell/recurrent_kernel", "conv1d/bias"):
        np.testing.assert_array_equal(first[path], again[path])
        assert not np.array_equal(first[path], other[path])


def test_two_layers_with_one_seeded_initializer_get_different_values():
    seeded = keras.initializers.GlorotUniform(seed=1)
    model = keras.Sequential(
        [
            keras.Input((16,)),
            keras.layers.Dense(16, kernel_initializer=seeded),
            keras.layers.Dense(16, kernel_initializer=seeded),
        ]
    )
    first, _, second, _ = reinitialize(model, seed=0).get_weights()
    assert not np.array_equal(first, second)


def test_statistics_match_the_ones_keras_gives_the_same_layers():
    model = keras.Sequential(
        [
            keras.Input((20, 20, 64)),
            keras.layers.Conv2D(96, 3, kernel_initializer="he_normal"),
            keras.layers.Flatten(),
            keras.layers.Dense(300),
        ]
    )
    keras_values = _weights(model)
    ours = _weights(reinitialize(model, seed=2))
    for path in ("sequential/conv2d/kernel", "sequential/dense/kernel"):
        assert ours[path].std() == pytest.approx(keras_values[path].std(), rel=0.03), path
    fan_in, fan_out = model.weights[2].shape
    limit = np.sqrt(6.0 / (fan_in + fan_out))
    assert limit * 0.99 < np.abs(ours["sequential/dense/kernel"]).max() <= limit


@keras.saving.register_keras_serializable(package="tests")
class Halves(keras.initializers.Initializer):
    def __call__(self, shape, dtype=None):
        return keras.ops.full(shape, 0.5, dtype=dtype)


def test_an_initializer_initreg_does_not_know_is_an_error_naming_the_weight():
    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2, kernel_initializer=Halves())])
    with pytest.raises(InitregError, match=r"'dense/kernel'.*kernel_initializer.*'Halves'"):
        reinitialize(model, seed=0)


def test_a_weight_no_initializer_is_named_for_is_an_error_unless_relaxed():
    normalization = keras.layers.Normalization()
    model = keras.Sequential([keras.Input((3,)), normalization, keras.layers.Dense(2)])
    normalization.adapt(np.arange(12.0).reshape(4, 3))
    before = _weights(model)
    with pytest.raises(InitregError, match=r"normalization/mean.*strict=False"):
        reinitialize(model, seed=0)
    after = _weights(reinitialize(model, seed=0, strict=False))
    for path in before:
        if "normalization" in path:
            np.testing.assert_array_equal(after[path], before[path])
        else:
            assert not np.array_equal(after[path], before[path]) or not before[path].any()


def test_bad_models_are_refused_by_name():
    with pytest.raises(InitregError, match="no weights"):
        reinitialize(keras.Sequential([keras.layers.Dense(3)]), seed=0)
    with pytest.raises(InitregError, match="dict"):
        reinitialize({"class_name": "Sequential"}, seed=0)


# Keras's own serialization keeps initreg's classes (registered on import of initreg.interop.keras)

import json  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402

import initreg  # noqa: E402

SEEDED = [
    initreg.LecunNormal(seed=1),
    initreg.HeUniform(seed=2, input_axes=[0], output_axes=[1]),
    initreg.VarianceScaling(2.0, "fan_avg", "untruncated_normal", seed=3),
    initreg.GlorotNormal(seed=4, cutoff=3.0),
    initreg.TruncatedNormal(0.1, 0.7, seed=5, a=-0.3, b=1.9),
    initreg.RandomUniform(-1.0, 2.0, seed=6),
    initreg.Orthogonal(2.0, seed=7),
    initreg.Constant([1.0, 2.0]),
    initreg.Identity(3.0),
    initreg.Zeros(),
]


def _dense_model(initializer):
    keras.utils.clear_session()
    inputs = keras.Input((4,))
    outputs = keras.layers.Dense(2, kernel_initializer=initializer, bias_initializer=initreg.Constant([0.5, 0.25]))(
        inputs
    )
    return keras.Model(inputs, outputs)


def _same_initializer(found, expected):
    assert type(found) is type(expected), f"{type(found)} is not {type(expected)}"
    assert found.get_config() == expected.get_config()
    shape = (2, 2) if isinstance(expected, initreg.Constant | initreg.Identity) else (6, 4)
    np.testing.assert_array_equal(found(shape), expected(shape))


@pytest.mark.parametrize("init", SEEDED, ids=repr)
def test_keras_serialize_and_deserialize_keep_the_initreg_class(init):
    config = keras.saving.serialize_keras_object(init)
    assert config["registered_name"] == f"initreg>{type(init).__name__}"
    _same_initializer(keras.saving.deserialize_keras_object(json.loads(json.dumps(config))), init)
    _same_initializer(keras.initializers.deserialize(config), init)
    _same_initializer(keras.initializers.get(config), init)
    _same_initializer(initreg.deserialize(config), init)  # initreg reads Keras's form too


@pytest.mark.parametrize("init", SEEDED[:5], ids=repr)
def test_a_layer_config_a_model_json_and_clone_model_keep_the_initreg_class(init):
    layer = keras.layers.Dense(3, kernel_initializer=init)
    _same_initializer(keras.layers.Dense.from_config(layer.get_config()).kernel_initializer, init)
    model = _dense_model(init)
    for copy in (keras.models.model_from_json(model.to_json()), keras.models.clone_model(model)):
        dense = copy.layers[-1]
        _same_initializer(dense.kernel_initializer, init)
        _same_initializer(dense.bias_initializer, initreg.Constant([0.5, 0.25]))


def test_a_keras_file_reloads_with_the_initreg_class_and_seed_in_a_fresh_process(tmp_path):
    path = tmp_path / "model.keras"
    _dense_model(initreg.GlorotNormal(seed=11)).save(path)
    script = (
        "import os; os.environ['KERAS_BACKEND'] = 'numpy'\n"
        "import keras, initreg, initreg.interop.keras\n"
        f"model = keras.saving.load_model({str(path)!r})\n"
        "init = model.layers[-1].kernel_initializer\n"
        "print(type(init).__module__, type(init).__name__, init.seed)\n"
    )
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True)
    assert result.stdout.split() == ["initreg.initializers.variance_scaling", "GlorotNormal", "11"]
    reloaded = keras.saving.load_model(path)
    _same_initializer(reloaded.layers[-1].kernel_initializer, initreg.GlorotNormal(seed=11))


def test_the_registration_lists_every_class_and_refuses_a_taken_name():
    from initreg.interop.keras import register_with_keras

    registered = register_with_keras()
    assert registered["initreg>LecunNormal"] is initreg.LecunNormal
    assert keras.saving.get_registered_object("initreg>Orthogonal") is initreg.Orthogonal
    assert all(keras.saving.get_registered_name(cls) == name for name, cls in registered.items())
    assert keras.initializers.deserialize(initreg.serialize(initreg.LecunNormal(seed=1))).__class__ is (
        keras.initializers.LecunNormal  # initreg.serialize still writes Keras's own form, for Keras's class
    )
    keras.saving.get_custom_objects()["initreg>Zeros"] = Halves
    try:
        with pytest.raises(initreg.errors.NameClashError, match="'initreg>Zeros' is taken by .*Halves"):
            register_with_keras()
    finally:
        keras.saving.get_custom_objects()["initreg>Zeros"] = initreg.Zeros


# Layers that hand fan axes to a VarianceScaling: EinsumDense and MultiHeadAttention


def test_multi_head_attention_gives_initreg_lecun_normal_the_query_axes_as_keras_does():
    query = np.zeros((2, 5, 32), np.float32)
    ours = keras.layers.MultiHeadAttention(num_heads=8, key_dim=16, kernel_initializer=initreg.LecunNormal(seed=0))
    theirs = keras.layers.MultiHeadAttention(
        num_heads=8, key_dim=16, kernel_initializer=keras.initializers.LecunNormal(seed=0)
    )
    ours(query, query)
    theirs(query, query)
    kernel = np.asarray(ours._query_dense.kernel.numpy())
    assert kernel.shape == (32, 8, 16)
    keras_std = float(np.std(theirs._query_dense.kernel.numpy()))
    assert keras_std == pytest.approx(1 / np.sqrt(32), rel=0.03)  # Keras's ~0.179: fan_in = 32, not 8 * 32
    assert float(kernel.std()) == pytest.approx(keras_std, rel=0.03)
    expected = initreg.LecunNormal(seed=0, input_axes=[0], output_axes=[1, 2])
    np.testing.assert_array_equal(kernel, expected((32, 8, 16)))


def test_einsum_dense_gives_every_variance_scaling_its_axes():
    layer = keras.layers.EinsumDense(
        "abc,cde->abde", output_shape=(None, 4, 64), kernel_initializer=initreg.HeUniform(2)
    )
    layer.build((None, 3, 50))
    kernel = np.asarray(layer.kernel.numpy())
    limit = np.sqrt(6 / 50)  # fan_in 50, where the shape alone (50, 4, 64) would give 4 * 50
    assert np.abs(kernel).max() <= limit and np.abs(kernel).max() > 0.99 * limit


def test_reinitialize_gives_einsum_kernels_the_axes_of_their_equation():
    inputs = keras.Input((5, 32))
    outputs = keras.layers.MultiHeadAttention(8, 16, kernel_initializer=initreg.LecunNormal())(inputs, inputs)
    model = reinitialize(keras.Model(inputs, outputs), seed=1)
    weights = _weights(model)
    for path, axes in [
        ("multi_head_attention/query/kernel", ([0], [1, 2])),
        ("multi_head_attention/attention_output/kernel", ([0, 1], [2])),
    ]:
        init = {"class_name": "LecunNormal", "config": {"input_axes": axes[0], "output_axes": axes[1]}}
        expected = init_slice(init, weights[path].shape, (), seed=1, path=path)
        np.testing.assert_array_equal(weights[path], expected, err_msg=path)
