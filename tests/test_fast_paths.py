"""Trees of many small tensors: drawn in few kernel calls (initreg.drawing.generate_all), the same bytes.

The batched path (fused_cpu.draw_many) must give exactly what each tensor's own draw gives: for a
mixed tree, every leaf of init_tree is compared byte for byte with `generate` of its plan entry.
"""

import subprocess
import sys
import warnings
from fnmatch import fnmatchcase

import numpy as np
import pytest

pytest.importorskip("numba")

import initreg
from initreg import drawing, planning, registry, rng
from initreg.backends import fused_cpu
from initreg.backends.numpy import fused_kernels
from initreg.distributions import NormalDist, TruncatedNormalDist, UniformDist
from initreg.patterns import PatternIndex, compile_pattern
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
    shapes += [(16,)] * 3 + [()] * 2 + [(0, 4)] * 2 + [(3, 7)] * 2 + [(16,)]  # runs of one shape: rows of one reshape
    keys = [rng.derive_key(7, f"t{i}") for i in range(len(shapes))]
    drawn = fused_cpu.draw_many(dist, keys, shapes, dtype)
    for key, shape, value in zip(keys, shapes, drawn, strict=True):
        own = fused_cpu.draw(dist, key, shape, dtype)
        assert type(value) is np.ndarray and value.shape == own.shape and value.tobytes() == own.tobytes()


def test_derive_keys_gives_each_paths_derive_key_in_order():
    paths = ["", "wte.weight", "h.11.attn.c_proj.weight", "ünïcode.π", "p" * 300]
    for seed in (0, 7, -3, 2**64 - 1):
        digests = np.frombuffer(rng.derive_keys(seed, paths), dtype="<u4").reshape(-1, 2)
        assert [tuple(map(int, key)) for key in digests] == [rng.derive_key(seed, path) for path in paths]
    assert rng.derive_keys(0, []) == b""


# Parameters of one rule (with its captures), shape and dtype share one assignment in a plan: each
# parameter still gets what it gets when planned on its own.
SHARING_RULES = {
    "layers": {"match": "h.{i}.*", "init": {"name": "random_normal", "stddev": "=0.01 * (i + 1)"}},
    "kernels": {"match": "*.kernel", "init": "lecun_normal"},
    "first_row": {"match": "h.1.kernel", "index": "[0]", "init": "ones"},
}


def sharing_spec() -> dict:
    return {
        "h": [{"w": (4,), "v": np.zeros((4,), np.float64)} for _ in range(3)],
        "a": {"kernel": (3, 5), "wide": {"kernel": (6, 5)}, "double": {"kernel": np.zeros((3, 5), np.float64)}},
        "h.1.kernel": (2, 3),
    }


def test_each_parameter_of_a_shared_assignment_gets_what_it_gets_on_its_own():
    spec = sharing_spec()
    planned = initreg.tree.plan(spec, SHARING_RULES)
    for entry in planned:
        alone = initreg.tree.plan({entry.path: flatten(spec)[entry.path]}, SHARING_RULES, allow_unused_rules=True)
        assert [entry] == alone
    stds = {entry.path: entry.target_std for entry in planned}
    assert stds["h.0.w"] == pytest.approx(0.01) and stds["h.2.v"] == pytest.approx(0.03)
    dtypes = {entry.path: entry.dtype for entry in planned}
    assert dtypes["h.0.w"] == "float32" and dtypes["h.0.v"] == "float64" and dtypes["a.double.kernel"] == "float64"
    assert {entry.path: entry.fan_in for entry in planned}["a.wide.kernel"] == 6
    assert {entry.path: entry.rule for entry in planned}["h.1.kernel"] == "kernels+first_row"


def test_a_plan_holds_one_assignment_per_rule_captures_shape_and_dtype():
    spec = {"h": [{"w": (4,), "b": (4,), "k": (2, 2)} for _ in range(40)]}
    rules = {"all": {"match": "*", "init": "he_normal"}, "layers": {"match": "h.{i}.k", "init": "zeros"}}
    planned = planning.assign(spec, rules)
    assert len(planned.paths) == 120 and len(planned.assignments) == 2  # he_normal of (4,); zeros of (2, 2)
    captured = planning.assign(spec, {"all": {"match": "h.{i}.*", "init": {"name": "constant", "value": "=i"}}})
    assert len(captured.assignments) == 80  # the value reads the capture: one per layer and shape
    assert [captured.entry(position).initializer((1,)).item() for position in (0, 119)] == [0.0, 39.0]


def test_a_changed_rule_or_a_replaced_initializer_is_drawn_anew(monkeypatch):
    spec = {f"p{i}": (16,) for i in range(drawing.MIN_BATCH)}
    normal = initreg.init_tree(spec, {"all": {"match": "*", "init": {"name": "random_normal", "stddev": 1.0}}}, seed=2)
    wider = initreg.init_tree(spec, {"all": {"match": "*", "init": {"name": "random_normal", "stddev": 3.0}}}, seed=2)
    np.testing.assert_allclose(wider["p5"], 3 * normal["p5"], rtol=1e-6)  # float32: 3x rounds once more
    cell = "@initreg.register('test_cell_normal')\nclass CellNormal(initreg.RandomNormal):\n" + (
        "    def __init__(self, seed=None):\n        super().__init__(stddev={stddev}, seed=seed)\n"
    )
    try:
        for stddev in (1.0, 3.0):
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", registry.ReplacedWarning)
                exec(cell.format(stddev=stddev), {"__name__": "notebook_cell", "initreg": initreg})
            drawn = initreg.init_tree(spec, {"all": {"match": "*", "init": "test_cell_normal"}}, seed=2)
            np.testing.assert_allclose(drawn["p5"], stddev * normal["p5"], rtol=1e-6)
    finally:
        registry.initializers.unregister("test_cell_normal")


FITTING_BY_ENDS = ["*", "a*", "*b", "a*b", "ab*ba", "h.*.weight", "a[*"]


@pytest.mark.parametrize("glob", [*FITTING_BY_ENDS, "abc", "a*b*c", "h.{i}.*", "[ab]*", "a?*"])
def test_a_pattern_that_fits_by_ends_matches_every_path_it_is_a_candidate_for(glob):
    fits = glob in FITTING_BY_ENDS
    pattern = compile_pattern(glob)
    assert pattern.fits_by_ends == fits
    index = PatternIndex([pattern])
    paths = ["", "a", "b", "ab", "aba", "abba", "abcba", "a[x", "h.weight", "h..weight", "h.3.weight", "abc", "ac"]
    for path in paths:
        if fits:
            assert (index.candidates(path) == [0]) == fnmatchcase(path, glob), path
        assert (pattern.match(path) is not None) == fnmatchcase(path, glob.replace("{i}", "[0-9]")), path


def test_a_last_candidate_that_fits_by_ends_wins_alone_and_later_index_rules_still_apply():
    rules = {
        "row": {"match": "*.w", "index": "[0]", "init": "ones"},
        "all": {"match": "*", "init": "zeros"},
        "column": {"match": "b.*", "index": "[:, 0]", "init": "ones"},
    }
    tree = initreg.init_tree({"a.w": (2, 2), "b.w": (2, 2)}, rules)
    assert {entry.path: entry.rule for entry in initreg.plan({"a.w": (2, 2), "b.w": (2, 2)}, rules)} == {
        "a.w": "all",
        "b.w": "all+column",
    }
    assert tree["a.w"].tolist() == [[0, 0], [0, 0]] and tree["b.w"].tolist() == [[1, 0], [1, 0]]


def test_the_batched_path_leaves_numpy_out_of_import_initreg():
    code = "import sys, initreg; print('numpy' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout == "False\n"
