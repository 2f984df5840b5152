"""Every node initreg's config source serves, plugins' and presets included, is typed: Hydra refuses a bad type
and a bad choice for each of its fields while composing, naming the field. Every string field is a choice.

The walk composes a small app that opts in (``hydra.searchpath: [initreg://]``) once per node and bad value,
with Hydra's Compose API, so the refusal is Hydra's own while it applies the override. A field OmegaConf cannot
type (a union such as Constant's number-or-array `value`) must be listed in UNTYPED, so that a new untyped field
fails here.
"""

from __future__ import annotations

from collections.abc import Iterator
from importlib import metadata
from pathlib import Path
from typing import Any

import pytest
from hydra import compose, initialize_config_dir
from hydra.core.object_type import ObjectType
from hydra.errors import ConfigCompositionException, MissingConfigException
from omegaconf import BooleanNode, DictConfig, FloatNode, IntegerNode, ListConfig, StringNode

import initreg
from hydra_plugins.initreg_config_source.config_source import InitregConfigSource
from initreg.known_plugins import KNOWN_PLUGINS
from initreg.typed_nodes import ChoiceNode

OWN_KEYS = ("_target_", "name")
UNTYPED = {"value": {"constant", "Constant"}, "window": {"stft", "STFT", "STFTInitializer"}}  # unions of types
NOT_A_CHOICE = "not_a_choice"


@pytest.fixture(scope="module")
def app(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    conf = tmp_path_factory.mktemp("conf")
    (conf / "config.yaml").write_text(
        "defaults:\n  - init: he_normal\n  - _self_\nhydra:\n  searchpath: [initreg://]\n"
    )
    with initialize_config_dir(config_dir=str(conf), version_base="1.3"):
        yield conf


def served() -> list[str]:
    return InitregConfigSource("initreg", "initreg://").list("init", ObjectType.CONFIG)


def bad_values(node: Any) -> dict[str, str]:
    """What each kind of field must refuse: a value of the wrong type, and for a choice one it does not list."""
    if isinstance(node, ChoiceNode):
        return {"type": "[1]", "choice": NOT_A_CHOICE}
    if isinstance(node, (FloatNode, IntegerNode, BooleanNode)):
        return {"type": "abc"}
    if isinstance(node, StringNode):  # a string argument declares its choices (Literal or config_choices)
        raise AssertionError(f"string field {node._key()!r} without choices")
    if isinstance(node, ListConfig):
        typed_items = node._metadata.element_type in (int, float, bool)
        return {"type": "abc", "item type": "[abc]"} if typed_items else {"type": "abc"}
    raise AssertionError(f"untyped field {node._key()!r} ({type(node).__name__})")


def test_every_preset_alias_and_plugin_name_is_served() -> None:
    names = served()
    assert {"gpt2_normal", "he_normal", "HeNormal", "kaiming_normal", "stft", "delta_orthogonal"} <= set(names)
    assert len(names) == len(set(names)) >= 45


@pytest.mark.parametrize("name", served())
def test_every_field_refuses_a_bad_type_and_a_bad_choice(app: Path, name: str) -> None:
    init = compose("config", overrides=[f"init={name}"]).init
    assert isinstance(init, DictConfig) and init._target_ == "initreg.schemas.make", name
    for key in init:
        if key in OWN_KEYS:
            continue
        node = init._get_node(key)
        if type(node).__name__ == "AnyNode":
            assert name in UNTYPED.get(str(key), set()), f"init/{name}: field {key!r} is untyped"
            continue
        for kind, bad in bad_values(node).items():
            with pytest.raises(ConfigCompositionException) as refused:
                compose("config", overrides=[f"init={name}", f"init.{key}={bad}"])
            message = str(refused.value.__cause__ or refused.value)
            assert f"full_key: init.{key}" in message, (name, key, kind, message)
            if kind == "choice":
                assert f"Invalid value '{NOT_A_CHOICE}', expected one of [" in message


@pytest.mark.parametrize(
    ("distribution", "group", "table"),
    [("initreg-extra", "initreg.initializers", "init"), ("initreg-torch", "initreg.backends", "backend")],
)
def test_the_known_plugins_table_matches_their_entry_points(distribution: str, group: str, table: str) -> None:
    names = {point.name for point in metadata.distribution(distribution).entry_points if point.group == group}
    assert {name for name, package in KNOWN_PLUGINS[table].items() if package == distribution} == names


def test_a_known_plugins_name_that_is_not_installed_names_its_package(monkeypatch: pytest.MonkeyPatch) -> None:
    without_extra = {name: origin for name, origin in available() if origin != "initreg-extra"}
    monkeypatch.setattr(initreg.registry.initializers, "available", lambda: without_extra)
    monkeypatch.setattr(initreg.registry.initializers, "origin", without_extra.get)
    source = InitregConfigSource("initreg", "initreg://")
    assert source.is_config("init/torch_default") and source.is_config("init/he_normall")
    assert not source.is_config("init/zzz_nothing_like_it")  # Hydra's own message lists the options
    expected = (
        r"^unknown init 'torch_default': initreg-extra registers it and is not installed \(pip install initreg-extra\)$"
    )
    with pytest.raises(MissingConfigException, match=expected):
        source.load_config("init/torch_default")
    with pytest.raises(MissingConfigException, match=r"^unknown init 'he_normall'; did you mean 'he_normal' or "):
        source.load_config("init/he_normall")


def available() -> list[tuple[str, str]]:
    return list(initreg.registry.initializers.available().items())
