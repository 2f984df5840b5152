"""The registry: names and aliases (Keras's included), get() identifiers, register, errors."""

import warnings

import keras
import numpy as np
import pytest
from keras.src.initializers import ALL_OBJECTS_DICT

import initreg
from initreg import registry
from initreg.errors import InitregError, InvalidArgumentError, NameClashError, UnknownNameError

KERAS_ONLY = {"STFT", "stft", "STFTInitializer", "Initializer", "initializer"}


def test_get_returns_a_ready_initializer():
    init = initreg.get("lecun_normal")
    assert isinstance(init, initreg.LecunNormal)
    assert init((3, 4)).shape == (3, 4)
    assert initreg.get("lecun_normal", seed=3).get_config()["seed"] == 3


@pytest.mark.parametrize("name", sorted(set(ALL_OBJECTS_DICT) - KERAS_ONLY))
def test_every_keras_name_and_alias_resolves_to_the_same_class(name):
    assert type(initreg.get(name)).__name__ == ALL_OBJECTS_DICT[name].__name__


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
        initreg.get("lecun_normall")
    assert isinstance(info.value, InitregError) and isinstance(info.value, ValueError)
    with pytest.raises(UnknownNameError, match="unknown initializer 'zzz'; valid: .*lecun_normal"):
        initreg.get("zzz")


def test_get_accepts_every_kind_of_identifier():
    instance = initreg.HeNormal(seed=1)
    assert initreg.get(None) is None
    assert initreg.get(instance) is instance
    assert initreg.get(instance, seed=2).get_config()["seed"] == 2
    assert isinstance(initreg.get(initreg.Ones), initreg.Ones)
    function = lambda shape, dtype=None: np.zeros(shape)  # noqa: E731
    assert initreg.get(function) is function
    assert initreg.get({"class_name": "HeNormal", "config": {"seed": 5}}) == initreg.HeNormal(seed=5)
    with pytest.raises(InvalidArgumentError, match="could not interpret initializer identifier 42"):
        initreg.get(42)


def test_unknown_config_key_names_the_valid_ones():
    with pytest.raises(InvalidArgumentError, match="LecunNormal got unknown config key 'scale'; valid: seed"):
        initreg.get("lecun_normal", scale=2.0)


def test_register_adds_a_name_and_refuses_clashes_unless_forced():
    @initreg.register("test_halves", aliases=["TestHalves"])
    class Halves(initreg.Constant):
        def __init__(self) -> None:
            super().__init__(0.5)

        def get_config(self):
            return {}

    try:
        assert initreg.get("TestHalves")((2,)).tolist() == [0.5, 0.5]
        assert registry.names()["test_halves"] == ("TestHalves",)
        with pytest.raises(NameClashError, match="'lecun_normal' is already registered"):
            initreg.register("lecun_normal")(Halves)
        initreg.register("test_halves", force=True)(initreg.Ones)
        assert isinstance(initreg.get("test_halves"), initreg.Ones)
        assert isinstance(initreg.get("TestHalves"), Halves)  # force replaces only the names it is given
    finally:
        registry.initializers.unregister("test_halves")
        registry.initializers.unregister("TestHalves")
    assert "test_halves" not in registry.initializers and "TestHalves" not in registry.initializers


def test_register_rejects_what_is_not_an_initializer():
    with pytest.raises(InvalidArgumentError, match="not a subclass of initreg.Initializer"):
        initreg.register("bad")(dict)


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
    ours, theirs = initreg.get(array), keras.initializers.get(array)
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
    assert initreg.get(np.float32(2.5))(()).tolist() == 2.5
    np.testing.assert_array_equal(initreg.get(torch.arange(6).reshape(2, 3))((2, 3)), np.arange(6).reshape(2, 3))
    np.testing.assert_array_equal(initreg.get(jnp.ones((2, 2)))((2, 2), dtype="bool"), np.ones((2, 2), bool))


def test_the_array_initializer_round_trips_and_slices_like_the_whole():
    init = initreg.get(np.array([[1.0, 2.0], [3.0, 4.0]]))
    assert init.get_config() == {"value": [[1.0, 2.0], [3.0, 4.0]], "broadcast": False}
    assert initreg.deserialize(initreg.serialize(init)) == init
    np.testing.assert_array_equal(initreg.init_slice(init, (2, 2), (1,), seed=0, path="w"), [3.0, 4.0])
    assert initreg.Constant([1.0, 2.0]).get_config() == {"value": [1.0, 2.0]}  # Keras's config by default
    with pytest.raises(InvalidArgumentError, match="array identifier takes no config"):
        initreg.get(np.zeros(2), seed=1)
    with pytest.raises(InvalidArgumentError, match="`broadcast` must be True or False"):
        initreg.Constant(1.0, broadcast="no")


def test_initreg_get_is_the_one_get_and_registry_get_its_alias():
    assert registry.get is initreg.get is initreg.initializers.get
    assert registry.register is initreg.register and registry.get_backend is initreg.backends.get_backend


CELL = """
import initreg


@initreg.register("test_cell_init", aliases={aliases!r})
class CellInit(initreg.Constant):
    def __init__(self) -> None:
        super().__init__({value})

    def get_config(self):
        return {{}}
"""


def run_cell(value: float, aliases: tuple[str, ...] = ()) -> type:
    """Defines CellInit as a notebook cell does: the same module and qualname each time it runs."""
    namespace = {"__name__": "notebook_cell"}
    exec(CELL.format(value=value, aliases=list(aliases)), namespace)
    return namespace["CellInit"]


def test_running_a_registering_cell_again_replaces_the_entry_with_a_warning():
    first = run_cell(0.5, aliases=("TestCellInit",))
    try:
        with pytest.warns(
            registry.ReplacedWarning, match=r"notebook_cell\.CellInit registered again as 'test_cell_init'"
        ):
            second = run_cell(0.25)
        assert second is not first and registry.initializers.get("test_cell_init") is second
        with warnings.catch_warnings():
            warnings.simplefilter("error", registry.ReplacedWarning)
            with pytest.raises(registry.ReplacedWarning):
                run_cell(0.125)
        assert registry.initializers.get("test_cell_init") is second  # the refused run changed nothing
        assert initreg.get("test_cell_init")((2,)).tolist() == [0.25, 0.25]
        assert "TestCellInit" not in registry.initializers  # the old definition's names all go with it

        class CellInit(initreg.Constant):  # another class under the name: a clash, not a new version
            pass

        with pytest.raises(NameClashError, match="'test_cell_init' is already registered"):
            initreg.register("test_cell_init")(CellInit)
        assert registry.initializers.get("test_cell_init") is second
    finally:
        registry.initializers.unregister("test_cell_init")


def test_a_built_in_name_is_not_replaced_by_a_class_of_another_qualified_name():
    class LecunNormal(initreg.LecunNormal):  # same class name, another module and qualname
        pass

    with pytest.raises(NameClashError, match="'lecun_normal' is already registered"):
        initreg.register("lecun_normal")(LecunNormal)
    assert registry.initializers.get("lecun_normal") is initreg.LecunNormal


def test_get_builds_an_initializer_from_a_structured_config_object():
    from omegaconf import OmegaConf

    from initreg import schemas

    node = OmegaConf.structured(schemas.node("variance_scaling"))
    node.scale, node.mode, node.distribution, node.seed = 2.0, "fan_out", "uniform", 7
    made = initreg.get(OmegaConf.to_object(node))
    assert made == initreg.VarianceScaling(scale=2.0, mode="fan_out", distribution="uniform", seed=7)
    assert initreg.get(OmegaConf.to_object(node), seed=8).get_config()["seed"] == 8


def test_get_reads_any_dataclass_instance_by_its_fields_and_refuses_a_dataclass_class():
    import dataclasses

    @dataclasses.dataclass
    class Uniform:
        name: str = "random_uniform"
        minval: float = -0.5
        maxval: float = 0.5
        seed: int = 3

    assert initreg.get(Uniform()) == initreg.RandomUniform(minval=-0.5, maxval=0.5, seed=3)
    with pytest.raises(InvalidArgumentError, match=r"is a dataclass; pass an instance of it, such as .*Uniform\(\)"):
        initreg.get(Uniform)
