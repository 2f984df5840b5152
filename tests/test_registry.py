"""The registry: names and aliases (Keras's included), get() identifiers, register, errors."""

import keras
import numpy as np
import pytest
from keras.src.initializers import ALL_OBJECTS_DICT

import initreg
from initreg import registry
from initreg.errors import InitregError, InvalidArgumentError, NameClashError, UnknownNameError

KERAS_ONLY = {"STFT", "stft", "STFTInitializer", "Initializer", "initializer"}


def test_get_returns_a_ready_initializer():
    init = registry.get("lecun_normal")
    assert isinstance(init, initreg.LecunNormal)
    assert init((3, 4)).shape == (3, 4)
    assert registry.get("lecun_normal", seed=3).get_config()["seed"] == 3


@pytest.mark.parametrize("name", sorted(set(ALL_OBJECTS_DICT) - KERAS_ONLY))
def test_every_keras_name_and_alias_resolves_to_the_same_class(name):
    assert type(registry.get(name)).__name__ == ALL_OBJECTS_DICT[name].__name__


def test_names_list_every_class_with_its_aliases():
    names = registry.names()
    assert names["lecun_normal"] == ("LecunNormal",)
    assert set(names["random_normal"]) == {"RandomNormal", "normal"}
    assert set(names["orthogonal"]) == {"Orthogonal", "OrthogonalInitializer"}
    assert set(names["zeros"]) == {"Zeros", "zero"}


def test_unknown_name_suggests_close_matches_and_is_a_value_error():
    with pytest.raises(
        UnknownNameError, match="unknown initializer 'lecun_normall'; did you mean 'lecun_normal'"
    ) as info:
        registry.get("lecun_normall")
    assert isinstance(info.value, InitregError) and isinstance(info.value, ValueError)
    with pytest.raises(UnknownNameError, match="unknown initializer 'zzz'; valid: .*lecun_normal"):
        registry.get("zzz")


def test_get_accepts_every_kind_of_identifier():
    instance = initreg.HeNormal(seed=1)
    assert registry.get(None) is None
    assert registry.get(instance) is instance
    assert registry.get(instance, seed=2).get_config()["seed"] == 2
    assert isinstance(registry.get(initreg.Ones), initreg.Ones)
    function = lambda shape, dtype=None: np.zeros(shape)  # noqa: E731
    assert registry.get(function) is function
    assert registry.get({"class_name": "HeNormal", "config": {"seed": 5}}) == initreg.HeNormal(seed=5)
    with pytest.raises(InvalidArgumentError, match="could not interpret initializer identifier 42"):
        registry.get(42)


def test_unknown_config_key_names_the_valid_ones():
    with pytest.raises(InvalidArgumentError, match="LecunNormal got unknown config key 'scale'; valid: seed"):
        registry.get("lecun_normal", scale=2.0)


def test_register_adds_a_name_and_refuses_clashes_unless_forced():
    @registry.register("test_halves", aliases=["TestHalves"])
    class Halves(initreg.Constant):
        def __init__(self) -> None:
            super().__init__(0.5)

        def get_config(self):
            return {}

    try:
        assert registry.get("TestHalves")((2,)).tolist() == [0.5, 0.5]
        assert registry.names()["test_halves"] == ("TestHalves",)
        with pytest.raises(NameClashError, match="'lecun_normal' is already registered"):
            registry.register("lecun_normal")(Halves)
        registry.register("test_halves", force=True)(initreg.Ones)
        assert isinstance(registry.get("test_halves"), initreg.Ones)
        assert isinstance(registry.get("TestHalves"), Halves)  # force replaces only the names it is given
    finally:
        registry.initializers.unregister("test_halves")
        registry.initializers.unregister("TestHalves")
    assert "test_halves" not in registry.initializers and "TestHalves" not in registry.initializers


def test_register_rejects_what_is_not_an_initializer():
    with pytest.raises(InvalidArgumentError, match="not a subclass of initreg.Initializer"):
        registry.register("bad")(dict)


def test_numpy_backend_comes_from_the_entry_point():
    entry = registry.backends.entry("numpy")
    assert entry.origin == "initreg"
    assert registry.get_backend().name == "numpy"
    with pytest.raises(UnknownNameError, match="unknown backend 'numpyy'; did you mean 'numpy'"):
        registry.get_backend("numpyy")


def test_initializers_work_as_keras_layer_kernel_initializers():
    layer = keras.layers.Dense(300, kernel_initializer=initreg.LecunNormal(seed=1))
    layer.build((None, 400))
    kernel = np.asarray(layer.kernel)
    assert kernel.shape == (400, 300)
    assert kernel.std() == pytest.approx((1 / 400) ** 0.5, rel=0.02)
    assert np.abs(kernel).max() <= 2 * (1 / 400) ** 0.5 / 0.87962566103423978


@pytest.mark.parametrize("dtype", [None, "float64", "int32"])
def test_get_of_an_array_makes_that_array_as_keras_get_of_a_tensor_does(dtype):
    array = np.arange(12, dtype=np.float32).reshape(3, 4) / 7
    ours, theirs = registry.get(array), keras.initializers.get(array)
    np.testing.assert_array_equal(ours((3, 4), dtype=dtype), np.asarray(theirs((3, 4), dtype=dtype)))
    assert ours((3, 4), dtype=dtype).dtype == np.asarray(theirs((3, 4), dtype=dtype)).dtype
    with pytest.raises(ValueError):
        theirs((4, 3))
    with pytest.raises(InvalidArgumentError, match=r"shape \(3, 4\); it cannot make shape \(4, 3\)"):
        ours((4, 3))
    with pytest.raises(InvalidArgumentError, match=r"shape \(3, 4\); it cannot make shape \(1, 4\)"):
        ours((1, 4))  # no broadcasting either way


def test_get_of_a_scalar_a_torch_tensor_and_a_jax_array():
    torch = pytest.importorskip("torch")
    jnp = pytest.importorskip("jax.numpy")
    assert registry.get(np.float32(2.5))(()).tolist() == 2.5
    np.testing.assert_array_equal(registry.get(torch.arange(6).reshape(2, 3))((2, 3)), np.arange(6).reshape(2, 3))
    np.testing.assert_array_equal(registry.get(jnp.ones((2, 2)))((2, 2), dtype="bool"), np.ones((2, 2), bool))


def test_the_array_initializer_round_trips_and_slices_like_the_whole():
    init = registry.get(np.array([[1.0, 2.0], [3.0, 4.0]]))
    assert init.get_config() == {"value": [[1.0, 2.0], [3.0, 4.0]], "broadcast": False}
    assert initreg.deserialize(initreg.serialize(init)) == init
    np.testing.assert_array_equal(initreg.init_slice(init, (2, 2), (1,), seed=0, path="w"), [3.0, 4.0])
    assert initreg.Constant([1.0, 2.0]).get_config() == {"value": [1.0, 2.0]}  # Keras's config by default
    with pytest.raises(InvalidArgumentError, match="array identifier takes no config"):
        registry.get(np.zeros(2), seed=1)
    with pytest.raises(InvalidArgumentError, match="`broadcast` must be True or False"):
        initreg.Constant(1.0, broadcast="no")
