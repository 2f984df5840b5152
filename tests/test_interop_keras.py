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


# What each weight must get, written from the layer definitions above (Keras's defaults included).
EXPECTED = {
    "lstm/lstm_cell/kernel": "glorot_uniform",
    "lstm/lstm_cell/recurrent_kernel": "orthogonal",
    "gru/gru_cell/kernel": "glorot_uniform",
    "gru/gru_cell/recurrent_kernel": "he_uniform",
    "gru/gru_cell/bias": "zeros",
    "multi_head_attention/query/kernel": "lecun_normal",
    "multi_head_attention/query/bias": "zeros",
    "multi_head_attention/key/kernel": "lecun_normal",
    "multi_head_attention/key/bias": "zeros",
    "multi_head_attention/value/kernel": "lecun_normal",
    "multi_head_attention/value/bias": "zeros",
    "multi_head_attention/attention_output/kernel": "lecun_normal",
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
