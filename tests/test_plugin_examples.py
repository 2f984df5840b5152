"""The two initializers of docs/plugins.md's "Writing an initializer" run as written and behave as it says."""

from __future__ import annotations

import math
import re
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from safetensors.numpy import load_file

import initreg

PAGE = Path(__file__).resolve().parents[1] / "docs" / "plugins.md"


def section_examples() -> dict[str, type]:
    """The classes the Python blocks of the section define, each block run in a namespace of its own."""
    text = PAGE.read_text()
    section = text[text.index("## Writing an initializer") :]
    section = section[: section.index("\n## ", 1)]
    blocks = re.findall(r"^```python\n(.*?)^```$", section, re.MULTILINE | re.DOTALL)
    assert len(blocks) == 2
    classes: dict[str, type] = {}
    for block in blocks:
        namespace: dict[str, Any] = {"__name__": "plugin_example"}
        exec(compile(block, str(PAGE), "exec"), namespace)
        classes.update({name: value for name, value in namespace.items() if isinstance(value, type)})
    return classes


@pytest.fixture(scope="module")
def examples() -> dict[str, type]:
    return section_examples()


def test_the_element_wise_example_slices_on_its_own_within_its_bound(examples: dict[str, type]) -> None:
    fan_in_uniform = examples["FanInUniform"]
    init = fan_in_uniform(gain=2.0)
    assert init.slices_independently
    shape = (400, 64)
    whole = initreg.init_slice(init, shape, (), seed=3, path="w")
    bound = 2.0 / math.sqrt(400)
    assert -bound <= whole.min() < -0.99 * bound and 0.99 * bound < whole.max() < bound
    np.testing.assert_array_equal(initreg.init_slice(init, shape, (slice(7, 90), 5), seed=3, path="w"), whole[7:90, 5])
    assert init.target_std(shape) == pytest.approx(2 * bound / math.sqrt(12), rel=1e-15)
    assert init.moments(shape) == (0.0, init.target_std(shape))


def test_the_whole_tensor_example_is_made_once_when_streamed(examples: dict[str, type], tmp_path: Path) -> None:
    class Counted(examples["UnitRows"]):  # type: ignore[misc]
        made = 0

        def generate(self, *args: Any, **kwargs: Any) -> Any:
            type(self).made += 1
            return super().generate(*args, **kwargs)

    init = Counted(gain=3.0)
    assert not init.slices_independently
    shape = (64, 32)
    whole = initreg.init_slice(init, shape, (), seed=1, path="w")
    np.testing.assert_allclose(np.linalg.norm(whole.astype(np.float64), axis=-1), 3.0, rtol=1e-6)
    np.testing.assert_array_equal(initreg.init_slice(init, shape, (slice(0, 8),), seed=1, path="w"), whole[:8])
    assert np.sqrt(np.mean(whole.astype(np.float64) ** 2)) == pytest.approx(init.target_std(shape), rel=1e-6)
    Counted.made = 0
    rules = {"w": {"match": "w", "init": init}}
    path = initreg.save_tree({"w": shape}, rules, tmp_path / "w.safetensors", seed=1, chunk_bytes=256)
    assert Counted.made == 1  # 32 pieces of 256 bytes, cut from one whole tensor
    np.testing.assert_array_equal(load_file(path)["w"], whole)
