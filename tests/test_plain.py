"""initreg.plain: OmegaConf containers to plain data, the one conversion every reader uses."""

from __future__ import annotations

import enum

import pytest
from omegaconf import OmegaConf

from initreg.errors import InvalidArgumentError
from initreg.plain import plain


class Colour(enum.Enum):
    RED = 1


def test_plain_converts_containers_only() -> None:
    node = OmegaConf.create({"a": [1, {"b": "${c}"}], "c": 2})
    assert plain(node) == {"a": [1, {"b": 2}], "c": 2}
    assert plain({"own": Colour.RED, "t": (1, 2)}) == {"own": Colour.RED, "t": (1, 2)}


@pytest.mark.parametrize(
    ("config", "message"),
    [
        ({"init": {"scale": "???"}}, "Missing mandatory value"),
        ({"init": {"scale": "${nope}"}}, "Interpolation key 'nope' not found"),
        ({"init": {"scale": "${oc.env:INITREG_NO_SUCH_VARIABLE}"}}, "INITREG_NO_SUCH_VARIABLE"),
    ],
)
def test_a_missing_or_broken_value_is_one_line_with_omegaconfs_full_key(config: dict, message: str) -> None:
    node = OmegaConf.create(config)
    for part in (node, node.init):  # the whole config, and the node within it: both name the full key
        with pytest.raises(InvalidArgumentError) as raised:
            plain(part)
        text = str(raised.value)
        assert "\n" not in text and message in text and "init.scale" in text
