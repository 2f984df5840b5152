"""Configs and dicts: get_config/from_config, the Keras 3 format, tf.keras 2.x dicts, JSON, Keras itself."""

import json

import keras
import numpy as np
import pytest

import initreg
from initreg.errors import InvalidArgumentError

EXAMPLES = [
    initreg.VarianceScaling(2.0, "fan_avg", "uniform", seed=4, input_axes=[0], output_axes=[1]),
    initreg.LecunNormal(seed=3),
    initreg.LecunUniform(),
    initreg.GlorotNormal(seed=1),
    initreg.GlorotUniform(),
    initreg.HeNormal(seed=0),
    initreg.HeUniform(seed=-5),
    initreg.RandomNormal(1.0, 2.0, seed=7),
    initreg.RandomUniform(-1.0, 3.0),
    initreg.TruncatedNormal(0.5, 0.01, seed=2),
    initreg.Zeros(),
    initreg.Ones(),
    initreg.Constant(0.25),
    initreg.Constant([[1.0, 2.0]]),
    initreg.Identity(3.0),
    initreg.Orthogonal(0.5, seed=8),
]


@pytest.mark.parametrize("init", EXAMPLES, ids=repr)
def test_config_round_trips(init):
    again = type(init).from_config(init.get_config())
    assert again == init
    assert np.array_equal(again((4, 2)), init((4, 2))) or init.get_config().get("seed", 0) is None


@pytest.mark.parametrize("init", EXAMPLES, ids=repr)
def test_serialized_dict_round_trips_through_json(init):
    text = json.dumps(initreg.serialize(init))
    again = initreg.deserialize(json.loads(text))
    assert again == init
    assert initreg.registry.get(json.loads(text)) == init


def test_serialize_writes_the_keras_3_format():
    assert initreg.serialize(initreg.LecunNormal(seed=3)) == {
        "module": "keras.initializers",
        "class_name": "LecunNormal",
        "config": {"seed": 3, "input_axes": None, "output_axes": None},
        "registered_name": None,
    }


@pytest.mark.parametrize("init", [e for e in EXAMPLES if not isinstance(e, initreg.Identity)], ids=repr)
def test_keras_deserializes_our_dicts_into_the_matching_initializer(init):
    theirs = keras.initializers.deserialize(initreg.serialize(init))
    assert type(theirs).__name__ == type(init).__name__
    assert theirs.get_config() == init.get_config()


def test_keras_deserializes_identity_and_keeps_what_it_can():
    theirs = keras.initializers.deserialize(initreg.serialize(initreg.Identity(1.0)))
    assert isinstance(theirs, keras.initializers.Identity)


@pytest.mark.parametrize("init", [e for e in EXAMPLES if not isinstance(e, initreg.Identity)], ids=repr)
def test_we_read_keras_3_dicts(init):
    keras_init = getattr(keras.initializers, type(init).__name__).from_config(init.get_config())
    assert initreg.deserialize(keras.initializers.serialize(keras_init)) == init


def test_we_read_keras_serialized_array_constants():
    keras_dict = keras.initializers.serialize(keras.initializers.Constant(np.array([1.0, 2.0])))
    assert initreg.deserialize(keras_dict)((2, 2)).tolist() == [[1, 2], [1, 2]]


@pytest.mark.parametrize(
    ("legacy", "expected"),
    [
        (
            {"class_name": "VarianceScaling", "config": {"scale": 1.0, "mode": "fan_avg", "distribution": "uniform",
                                                         "seed": None, "dtype": "float32"}},
            initreg.VarianceScaling(1.0, "fan_avg", "uniform"),
        ),
        (
            {"class_name": "VarianceScaling", "config": {"scale": 2.0, "mode": "fan_in", "distribution": "normal",
                                                         "seed": 1}},
            initreg.VarianceScaling(2.0, "fan_in", "truncated_normal", seed=1),
        ),
        ({"class_name": "GlorotUniform", "config": {"seed": None, "dtype": "float32"}}, initreg.GlorotUniform()),
        ({"class_name": "Zeros", "config": {"dtype": "float32"}}, initreg.Zeros()),
        ({"class_name": "RandomNormal", "config": {"mean": 0.0, "stddev": 0.02, "seed": None}},
         initreg.RandomNormal(stddev=0.02)),
        ({"class_name": "Orthogonal", "config": {"gain": 1.0, "seed": None}}, initreg.Orthogonal()),
    ],
)  # fmt: skip
def test_we_read_tf_keras_2_dicts_and_drop_their_dtype(legacy, expected):
    assert initreg.deserialize(legacy) == expected
    assert initreg.registry.get(legacy) == expected


def test_bad_dicts_are_clear_errors():
    with pytest.raises(InvalidArgumentError, match="expected a dict with a 'class_name'"):
        initreg.deserialize({"config": {}})
    with pytest.raises(initreg.errors.UnknownNameError, match="'LecunNormall'; did you mean 'LecunNormal'"):
        initreg.deserialize({"class_name": "LecunNormall", "config": {}})
    with pytest.raises(InvalidArgumentError, match="config' of 'Zeros' must be a dict"):
        initreg.deserialize({"class_name": "Zeros", "config": [1]})


def _keras_tensor(value, dtype="float32", kind="__tensor__"):
    """A Constant's dict holding a tensor as Keras serializes one."""
    return {
        "class_name": "Constant",
        "config": {"value": {"class_name": kind, "config": {"value": value, "dtype": dtype}}},
    }


def test_a_keras_serialized_tensor_is_read_with_its_dtype_checked():
    keras_dict = keras.initializers.serialize(keras.initializers.Constant(keras.ops.convert_to_tensor([0.5, -2.0])))
    assert keras_dict["config"]["value"]["class_name"] == "__tensor__"
    assert initreg.deserialize(keras_dict)((2,)).tolist() == [0.5, -2.0]
    assert initreg.get(_keras_tensor(True, "bool", "__numpy__"))((2,), dtype="bool").tolist() == [True, True]


@pytest.mark.parametrize(
    ("tensor", "named"),
    [
        ({"class_name": "__tensor__", "config": {}}, r"a serialized __tensor__ needs a 'config' dict with a 'value'"),
        ({"class_name": "__tensor__"}, r"needs a 'config' dict with a 'value' .* Received: value=\{'class_name'"),
        ({"class_name": "__numpy__", "config": [[1.0]]}, r"a serialized __numpy__ needs a 'config' dict"),
        ({"class_name": "__tensor__", "config": {"dtype": "float32"}}, r"needs a 'config' dict with a 'value'"),
        (_keras_tensor([1.0], "float99")["config"]["value"], r"'dtype' of a serialized __tensor__ is 'float99'; valid: "
                                                              r"'float16', 'bfloat16', 'float32'"),
        (_keras_tensor([1.0], "complex64")["config"]["value"], r"'dtype' .* is 'complex64'; valid:"),
        (_keras_tensor("1.0")["config"]["value"], r"'value' of a serialized __tensor__ must be a number or a nested "
                                                  r"list of numbers. Received: '1.0'"),
        (_keras_tensor({"a": 1})["config"]["value"], r"'value' of a serialized __tensor__ .* Received: \{'a': 1\}"),
        (_keras_tensor(None)["config"]["value"], r"'value' of a serialized __tensor__ .* Received: None"),
        (_keras_tensor([[1.0, 2.0], [3.0]])["config"]["value"], r"array of numbers. Received: value=\[\[1.0, 2.0\], "),
    ],
)  # fmt: skip
def test_a_malformed_serialized_tensor_is_one_clear_error(tensor, named):
    config = {"class_name": "Constant", "config": {"value": tensor}}
    for make in (lambda: initreg.get(config), lambda: initreg.deserialize(config), lambda: initreg.Constant(tensor)):
        with pytest.raises(InvalidArgumentError, match=named):
            make()
