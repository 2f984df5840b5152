"""Trees of many small tensors: drawn in few kernel calls (initreg.drawing.generate_all), the same bytes.

The batched path (fused_cpu.draw_many) must give exactly what each tensor's own draw gives: for a
mixed tree, every leaf of init_tree is compared byte for byte with `generate` of its plan entry.
"""

import numpy as np
import pytest

pytest.importorskip("numba")

import initreg
from initreg import drawing, rng
from initreg.backends import fused_cpu
from initreg.backends.numpy import fused_kernels
from initreg.distributions import NormalDist, TruncatedNormalDist, UniformDist
from initreg.spec import flatten

MIXED_RULES = {
    "kernels": {"match": "*.kernel", "init": "lecun_normal"},
    "wide": {"match": "*.wide", "init": "he_uniform"},
    "biases": {"match": "*.bias", "init": {"name": "random_normal", "mean": 0.1, "stddev": 0.02}},
    "doubles": {"match": "*.double", "init": "glorot_normal", "dtype": "float64"},
    "halves": {"match": "*.half", "init": {"name": "random_uniform", "minval": -1, "maxval": 2}, "dtype": "bfloat16"},
    "rotations": {"match": "*.rotation", "init": "orthogonal"},
    "zeros": {"match": "block.0.bias", "init": "zeros"},
    "first_row": {"match": "block.1.kernel", "index": "[0]", "init": "ones"},
}


def mixed_spec(blocks: int) -> dict:
    return {
        "block": [
            {
                "kernel": (3 + i % 5, 7),
                "wide": (64, 64) if i % 7 == 0 else (1 + i % 3, 2),
                "bias": (i % 9,),
                "double": (4, 1 + i % 4),
                "half": (5,),
                "rotation": (4, 4),
                "scalar": {"bias": ()},
            }
            for i in range(blocks)
        ]
    }


@pytest.fixture(autouse=True)
def kernels_loaded() -> None:
    """The kernels loaded, as after a large draw: a process's first small trees are drawn by the reference."""
    assert fused_kernels() is not None


def test_a_mixed_tree_gives_the_bytes_of_each_tensor_drawn_on_its_own(monkeypatch):
    spec = mixed_spec(160)
    calls = []
    draw_many = fused_cpu.draw_many
    monkeypatch.setattr(fused_cpu, "draw_many", lambda *a: calls.append(len(a[1])) or draw_many(*a))
    tree = flatten(initreg.init_tree(spec, MIXED_RULES, seed=11))
    assert len(calls) >= 12 and sum(calls) >= 4 * 160  # the batched path drew most of the tree
    entries = initreg.plan(spec, MIXED_RULES)
    assert list(tree) == [entry.path for entry in entries]
    for entry in entries:
        own = np.asarray(initreg.tree.generate(entry, 11))
        value = tree[entry.path]
        assert value.dtype == own.dtype and value.shape == own.shape, entry.path
        assert value.tobytes() == own.tobytes(), entry.path


def test_groups_below_min_batch_are_drawn_one_by_one(monkeypatch):
    monkeypatch.setattr(fused_cpu, "draw_many", lambda *a: pytest.fail("batched a small group"))
    spec = {f"p{i}": (16,) for i in range(drawing.MIN_BATCH - 1)}
    tree = initreg.init_tree(spec, {"all": {"match": "*", "init": "lecun_uniform"}}, seed=3)
    assert len(tree) == drawing.MIN_BATCH - 1


def test_a_batch_is_split_at_batch_elements(monkeypatch):
    monkeypatch.setattr(drawing, "BATCH_ELEMENTS", 8 * drawing.BATCHED_UP_TO)
    calls = []
    draw_many = fused_cpu.draw_many
    monkeypatch.setattr(fused_cpu, "draw_many", lambda *a: calls.append(len(a[1])) or draw_many(*a))
    spec = {f"p{i}": (drawing.BATCHED_UP_TO,) for i in range(drawing.MIN_BATCH + 3)}
    rules = {"all": {"match": "*", "init": "he_normal"}}
    tree = initreg.init_tree(spec, rules, seed=5)
    assert calls == [8] * (drawing.MIN_BATCH // 8) + [3]
    for entry in initreg.plan(spec, rules):
        assert tree[entry.path].tobytes() == initreg.tree.generate(entry, 5).tobytes()


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize(
    "dist", [UniformDist(-0.3, 0.7), NormalDist(0.5, 2.0), TruncatedNormalDist(0.0, 1.0, -3.5, 3.5)]
)
def test_draw_many_equals_each_draw_across_tiles_and_empty_tensors(dist, dtype):
    shapes = [(fused_cpu.TILE + 5,), (0,), (), (3, 7), (2 * fused_cpu.TILE + 1, 1), (1,)]
    keys = [rng.derive_key(7, f"t{i}") for i in range(len(shapes))]
    drawn = fused_cpu.draw_many(dist, keys, shapes, dtype)
    for key, shape, value in zip(keys, shapes, drawn, strict=True):
        own = fused_cpu.draw(dist, key, shape, dtype)
        assert value.shape == own.shape and value.tobytes() == own.tobytes()
