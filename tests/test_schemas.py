"""Structured configs built from constructors (initreg.schemas), and Hydra nodes as initializer configs.

The dataclass of any constructor: types, Optional, lists, dicts, Literal and config_choices as ChoiceNodes,
unknown annotations as Any, required arguments as ???, non-plain defaults left out; every registered
initializer's node instantiates to what `initreg.get` gives; dataclasses are cached, rebuilt for a
re-registered name, built once under concurrency and importable by name (for pickling). Then
`initreg.get`, the tree functions and torch's `initialize` read DictConfig nodes and rules directly.
"""

from __future__ import annotations

import dataclasses
import json
import pickle
import subprocess
import sys
import threading
import types
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any, ClassVar, Literal, Optional

import numpy as np
import pytest
import yaml
from hydra.utils import instantiate
from omegaconf import OmegaConf
from omegaconf.errors import ConfigAttributeError, MissingMandatoryValue, ValidationError

import initreg
from initreg import schemas
from initreg.errors import InvalidArgumentError
from initreg.initializers.base import Initializer
from initreg.initializers.variance_scaling import DISTRIBUTIONS, MODES
from initreg.typed_nodes import ChoiceNode

UNSET = object()


class Probe(Initializer):
    """Every kind of constructor argument the schemas map."""

    config_choices: ClassVar[dict[str, tuple[str | None, ...]]] = {"flavour": ("sweet", "sour", None)}

    def __init__(
        self,
        count: int,
        ratio: float = 0.5,
        flag: bool = False,
        label: str = "x",
        axes: Sequence[int] | None = None,
        pair: tuple[float, float] = (1.0, 2.0),
        mode: Literal["a", "b"] = "a",
        flavour: str | None = "sweet",
        table: dict[str, float] | None = None,
        anything: NotImportedHere = None,  # type: ignore[name-defined]  # noqa: F821
        either: int | str = 1,
        marker: object = UNSET,
        *args: Any,
        **kwargs: Any,
    ) -> None:
        self.config = {
            "count": count, "ratio": ratio, "flag": flag, "label": label, "axes": axes, "pair": pair,
            "mode": mode, "flavour": flavour, "table": table, "anything": anything, "either": either,
        }  # fmt: skip

    def get_config(self) -> dict[str, Any]:
        return self.config


@pytest.fixture
def probe() -> Iterator[str]:
    initreg.registry.initializers.register("schema_probe", Probe, aliases=["SchemaProbe"])
    yield "schema_probe"
    initreg.registry.initializers.unregister("schema_probe")


def fields(name: str) -> dict[str, dataclasses.Field[Any]]:
    return {field.name: field for field in dataclasses.fields(schemas.schema(name))}


def choice(field: dataclasses.Field[Any]) -> tuple[tuple[str, ...], Any, bool]:
    """(choices, default, optional) of a field whose default is a ChoiceNode."""
    node = field.default_factory()  # type: ignore[misc]
    assert isinstance(node, ChoiceNode)
    return node.choices, node._value(), node._is_optional()


def test_every_kind_of_argument_gets_its_type_and_default(probe: str) -> None:
    found = fields(probe)
    assert list(found) == [
        "_target_", "name", "count", "ratio", "flag", "label", "axes", "pair", "mode", "flavour", "table",
        "anything", "either",
    ]  # fmt: skip
    assert found["_target_"].default == "initreg.schemas.make" and found["name"].default == "schema_probe"
    assert (found["count"].type, found["count"].default) == (int, "???")
    assert (found["ratio"].type, found["ratio"].default) == (float, 0.5)
    assert (found["flag"].type, found["label"].type) == (bool, str)
    assert found["axes"].type == Optional[list[int]]  # noqa: UP045
    assert found["pair"].type == list[float] and found["pair"].default_factory() == [1.0, 2.0]  # type: ignore[misc]
    assert found["table"].type == Optional[dict[str, float]]  # noqa: UP045
    assert found["anything"].type is Any and found["either"].type is Any
    assert found["mode"].type is str and choice(found["mode"]) == (("a", "b"), "a", False)
    assert found["flavour"].type == Optional[str]  # noqa: UP045
    assert choice(found["flavour"]) == (("sweet", "sour"), "sweet", True)


def test_a_node_checks_values_and_gives_plain_values_to_the_constructor(probe: str) -> None:
    node = OmegaConf.structured(schemas.node("SchemaProbe"))
    assert node.name == "SchemaProbe"
    with pytest.raises(MissingMandatoryValue):
        OmegaConf.to_container(node, throw_on_missing=True)
    with pytest.raises(InvalidArgumentError, match="count"):
        initreg.get(node)
    for key, value in [("ratio", "abc"), ("mode", "c"), ("flavour", "bitter"), ("axes", [0, "x"]), ("pair", "x")]:
        with pytest.raises(ValidationError):
            setattr(node, key, value)
    with pytest.raises(ConfigAttributeError):
        node.ratoi = 2
    node.count, node.mode, node.flavour, node.axes, node.anything = 3, "b", None, [1, 0], {"any": [1]}
    made = initreg.get(node)
    assert isinstance(made, Probe)
    assert made.config == {
        "count": 3, "ratio": 0.5, "flag": False, "label": "x", "axes": [1, 0], "pair": [1.0, 2.0], "mode": "b",
        "flavour": None, "table": None, "anything": {"any": [1]}, "either": 1,
    }  # fmt: skip
    assert type(made.config["mode"]) is str


def test_variance_scaling_and_a_plugin_offer_their_choices() -> None:
    found = fields("variance_scaling")
    assert choice(found["mode"])[0] == MODES
    assert choice(found["distribution"])[0] == (*DISTRIBUTIONS, "normal")
    stft = fields("stft")  # a plugin's choices, one of them None
    assert choice(stft["side"]) == (("real", "imag"), "real", False)
    assert choice(stft["scaling"]) == (("density", "spectrum"), "density", True)
    node = OmegaConf.structured(schemas.node("variance_scaling"))
    node.scale, node.mode, node.distribution, node.input_axes, node.output_axes = 2, "fan_avg", "uniform", [0], [1]
    expected = initreg.VarianceScaling(2.0, "fan_avg", "uniform", input_axes=[0], output_axes=[1])
    assert instantiate(node) == expected == initreg.get(node)


def test_every_registered_initializer_instantiates_to_what_get_gives() -> None:
    names = initreg.registry.initializers.available()
    assert {"he_normal", "HeNormal", "delta_orthogonal", "torch_default", "stft"} <= set(names)
    for name in names:
        node = OmegaConf.structured(schemas.node(name))
        assert node.name == name
        assert instantiate(node) == initreg.get(name), name


def test_dataclasses_are_cached_rebuilt_for_a_new_class_and_importable_by_name(probe: str) -> None:
    built = schemas.schema(probe)
    assert schemas.schema("SchemaProbe") is built
    assert getattr(schemas, "init/schema_probe") is built
    for missing in ("init/no_such_initializer", "something"):
        with pytest.raises(AttributeError):
            getattr(schemas, missing)

    class Other(Probe):
        def __init__(self, width: float = 1.0) -> None:
            super().__init__(count=1)

    initreg.registry.initializers.register(probe, Other, force=True)
    assert list(fields(probe))[2:] == ["width"]


def test_concurrent_first_uses_build_one_dataclass() -> None:
    class Late(Probe):
        pass

    initreg.registry.initializers.register("schema_late", Late)
    try:
        barrier, seen = threading.Barrier(8), []

        def build() -> None:
            barrier.wait()
            seen.append(schemas.schema("schema_late"))

        threads = [threading.Thread(target=build) for _ in range(8)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert len(seen) == 8 and all(found is seen[0] for found in seen)
    finally:
        initreg.registry.initializers.unregister("schema_late")


def test_available_lists_plugins_by_their_entry_points_without_loading_them() -> None:
    code = (
        "import sys, initreg; found = initreg.registry.initializers.available(); "
        "print(found['delta_orthogonal'], found['HeNormal'], 'initreg_extra' in sys.modules)"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=120)
    assert done.stdout.split() == ["initreg-extra", "initreg", "False"]


def test_get_reads_mappings_and_hydra_nodes() -> None:
    node = OmegaConf.create({"_target_": "initreg.schemas.make", "name": "he_normal", "seed": 3})
    assert initreg.get(node) == initreg.HeNormal(seed=3)
    assert initreg.get(types.MappingProxyType({"name": "ones"})) == initreg.Ones()
    assert initreg.get({"class_name": "HeNormal", "config": {"seed": 5}}) == initreg.HeNormal(seed=5)
    assert initreg.get(OmegaConf.create({"a": {"name": "orthogonal"}, "b": "${a}"}).b) == initreg.Orthogonal()
    with pytest.raises(InvalidArgumentError, match="needs a 'name'"):
        initreg.get(OmegaConf.create({"scale": 2}))
    with pytest.raises(InvalidArgumentError, match="unknown config key 'bogus'; valid: seed, input_axes"):
        initreg.get({"name": "he_normal", "bogus": 1})


def test_a_bad_interpolated_value_names_its_full_key() -> None:
    init = OmegaConf.structured(schemas.node("variance_scaling"))
    cfg = OmegaConf.create({"scale": "abc", "mode": "fan_avgg", "init": init})
    cfg.init.scale = "${scale}"
    with pytest.raises(InvalidArgumentError, match=r"^init\.scale: While dereferencing interpolation .*'abc'"):
        initreg.get(cfg.init)
    cfg.init.scale, cfg.init.mode = 2.0, "${mode}"
    with pytest.raises(InvalidArgumentError, match=r"^init\.mode: .*'fan_avgg', expected one of \[fan_in, "):
        initreg.get(cfg.init)


def test_choices_compose_as_plain_strings_that_loggers_can_store() -> None:
    cfg = OmegaConf.create({"init": OmegaConf.structured(schemas.node("stft"))})
    cfg = OmegaConf.merge(cfg, OmegaConf.from_dotlist(["init.side=imag", "init.scaling=null"]))
    with pytest.raises(ValidationError, match=r"'imagg', expected one of \[real, imag\]"):
        OmegaConf.merge(cfg, OmegaConf.from_dotlist(["init.side=imagg"]))
    container = OmegaConf.to_container(cfg, resolve=True)
    assert type(container["init"]["side"]) is str  # type: ignore[index]
    assert json.loads(json.dumps(container)) == yaml.safe_load(yaml.safe_dump(container)) == container
    copied = pickle.loads(pickle.dumps(cfg))
    with pytest.raises(ValidationError):
        copied.init.side = "imagg"
    made = OmegaConf.to_object(cfg.init)
    assert made.side == "imag" and made.scaling is None  # type: ignore[union-attr]
    assert initreg.get(made) == initreg.get({"name": "stft", "side": "imag", "scaling": None})


def test_a_partial_is_a_factory_of_the_initializer() -> None:
    factory = instantiate(OmegaConf.structured(schemas.node("he_normal")), _partial_=True)
    assert factory() == initreg.HeNormal() and factory(seed=4) == initreg.HeNormal(seed=4)
    with pytest.raises(InvalidArgumentError, match=r"keyword arguments only.*factory\(\)\(shape\)"):
        factory((3, 4))


def hydra_config() -> Any:
    """A composed-like config: a structured init node and rules that refer to it."""
    init = OmegaConf.structured(schemas.node("variance_scaling"))
    init.scale, init.mode, init.input_axes, init.output_axes = 2, "fan_avg", [1], [0]
    rules = {"weights": {"match": "*.weight", "init": "${init}"}, "biases": {"match": "*.bias", "init": "ones"}}
    return OmegaConf.create({"init": init, "rules": rules, "seed": 4})


PLAIN_RULES = {
    "weights": {
        "match": "*.weight",
        "init": {"name": "variance_scaling", "scale": 2.0, "mode": "fan_avg", "input_axes": [1], "output_axes": [0]},
    },
    "biases": {"match": "*.bias", "init": "ones"},
}
SPEC = {"layer.weight": (6, 5), "layer.bias": (6,)}


def test_the_tree_functions_take_dictconfig_rules(tmp_path: Path) -> None:
    cfg = hydra_config()
    assert initreg.plan(SPEC, cfg.rules) == initreg.plan(SPEC, PLAIN_RULES)
    tree = initreg.init_tree(SPEC, cfg.rules, seed=cfg.seed)
    reference = initreg.init_tree(SPEC, PLAIN_RULES, seed=4)
    for name, array in reference.items():
        np.testing.assert_array_equal(tree[name], array)
    initreg.save_tree(SPEC, cfg.rules, tmp_path / "a.safetensors", seed=cfg.seed)
    initreg.save_tree(SPEC, PLAIN_RULES, tmp_path / "b.safetensors", seed=4)
    assert (tmp_path / "a.safetensors").read_bytes() == (tmp_path / "b.safetensors").read_bytes()


def test_torch_initialize_takes_dictconfig_rules() -> None:
    torch = pytest.importorskip("torch")
    from initreg.interop.torch import initialize

    cfg = hydra_config()
    module = torch.nn.Sequential()
    module.add_module("layer", torch.nn.Linear(5, 6))
    initialize(module, cfg.rules, seed=cfg.seed)
    expected = initreg.init_tree(SPEC, PLAIN_RULES, seed=4, layout="torch")
    np.testing.assert_array_equal(module.layer.weight.detach().numpy(), expected["layer.weight"])
    np.testing.assert_array_equal(module.layer.bias.detach().numpy(), expected["layer.bias"])
