"""The plugin is found by initreg only through its entry points, lazily, and round-trips through configs."""

from __future__ import annotations

import io
import subprocess
import sys

import pytest

import initreg
from initreg import registry
from initreg.listing import print_listing

NAMES = {"delta_orthogonal": "DeltaOrthogonal", "torch_default": "TorchDefault", "stft": "STFT"}


@pytest.mark.parametrize(("name", "class_name"), NAMES.items())
def test_each_initializer_is_registered_by_the_distribution(name: str, class_name: str) -> None:
    entry = registry.initializers.entry(name)
    assert entry.value.__name__ == class_name and entry.value.__module__.startswith("initreg_extra.")
    assert entry.origin == "initreg-extra"
    assert isinstance(registry.get(name), initreg.Initializer)


def test_initreg_does_not_import_the_plugin_until_a_name_is_asked_for() -> None:
    script = (
        "import sys, initreg\n"
        "initreg.get('lecun_normal')\n"
        "assert 'initreg_extra' not in sys.modules\n"
        "initreg.get('delta_orthogonal')\n"
        "assert 'initreg_extra' in sys.modules\n"
    )
    subprocess.run([sys.executable, "-c", script], check=True)


def test_listing_names_the_distribution() -> None:
    out = io.StringIO()
    print_listing(out)
    rows = [line.split() for line in out.getvalue().splitlines()]
    for name in NAMES:
        assert [name, "initreg-extra"] in [row[:2] for row in rows]


@pytest.mark.parametrize(
    "initializer",
    [
        initreg.get("delta_orthogonal", scale=0.5, seed=4),
        initreg.get("torch_default", fan_in=12, seed=5),
        initreg.get("stft", side="imag", window=[0.5, 1.0, 0.5], scaling="spectrum", periodic=True),
    ],
    ids=repr,
)
def test_configs_round_trip(initializer: initreg.Initializer) -> None:
    config = initreg.serialize(initializer)
    rebuilt = initreg.deserialize(config)
    assert rebuilt == initializer
    assert config["registered_name"] in NAMES
