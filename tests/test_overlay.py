"""Index rules: part of a tensor, last-match-wins element-wise, and every way of slicing still exact."""

from __future__ import annotations

import random
from pathlib import Path

import numpy as np
import pytest
from safetensors.numpy import load_file

import initreg
from initreg import tree
from initreg.initializers.overlay import Overlay, intersect, overlap_slices

SPEC = {"embed": (37, 8), "qkv": (6, 18), "conv": (5, 4, 3, 3), "bias": (11,)}
RULES = {
    "all": {"match": "*", "init": {"name": "random_normal", "stddev": 0.5}},
    "pad": {"match": "embed", "index": "[pad]", "init": "zeros"},
    "query": {"match": "qkv", "index": "[:, 0 : shape[1] // 3]", "init": {"name": "truncated_normal", "stddev": 3.0}},
    "strided": {
        "match": "qkv",
        "index": "[1::2, 4:15:3]",
        "init": {"name": "random_uniform", "minval": 5, "maxval": 6},
    },
    "corner": {"match": "conv", "index": "[1:4, ..., 0]", "init": {"name": "he_normal"}, "layout": "torch"},
    "tail": {"match": "bias", "index": "[-3:]", "init": "ones"},
}
VARIABLES = {"pad": 5}


def full_tree(seed: int = 4) -> dict[str, np.ndarray]:
    return initreg.init_tree(SPEC, RULES, seed=seed, variables=VARIABLES)


def test_each_element_has_the_value_of_the_last_rule_whose_region_holds_it() -> None:
    values = full_tree()
    whole = initreg.init_tree(SPEC, {"all": RULES["all"]}, seed=4)
    key = {
        name: initreg.init_tree({name: SPEC[name]}, {"r": {**RULES[rule], "index": None}}, seed=4)[name]
        for name, rule in (("embed", "pad"), ("qkv", "query"), ("conv", "corner"), ("bias", "tail"))
    }
    strided = initreg.init_tree({"qkv": SPEC["qkv"]}, {"r": {**RULES["strided"], "index": None}}, seed=4)["qkv"]
    expected = {name: array.copy() for name, array in whole.items()}
    expected["embed"][5] = 0
    expected["qkv"][:, 0:6] = key["qkv"][:, 0:6]
    expected["qkv"][1::2, 4:15:3] = strided[1::2, 4:15:3]
    expected["conv"][1:4, ..., 0] = key["conv"][1:4, ..., 0]
    expected["bias"][-3:] = 1
    for name in SPEC:
        np.testing.assert_array_equal(values[name], expected[name], err_msg=name)
    assert np.all((values["qkv"][1::2, 4:15:3] >= 5) & (values["qkv"][1::2, 4:15:3] < 6))


def test_the_plan_names_every_rule_and_a_whole_tensor_rule_after_an_index_rule_wins() -> None:
    entries = {entry.path: entry for entry in initreg.plan(SPEC, RULES, variables=VARIABLES)}
    assert entries["qkv"].rule == "all+query+strided" and isinstance(entries["qkv"].initializer, Overlay)
    assert entries["qkv"].fan_in == 6
    later = {**RULES, "again": {"match": "bias", "init": "zeros"}}
    values = initreg.init_tree(SPEC, later, variables=VARIABLES)
    assert not values["bias"].any()  # 'tail' came before the whole-tensor rule 'again': no part of it is left


def test_a_tensor_matched_only_by_index_rules_is_unmatched() -> None:
    with pytest.raises(initreg.InitregError, match=r"1 parameter\(s\) match no rule: 'bias'"):
        initreg.plan({"bias": (3,)}, {"tail": RULES["tail"]})


def random_index(shape: tuple[int, ...], rng: random.Random) -> tuple[object, ...]:
    parts: list[object] = []
    for size in shape:
        kind = rng.choice(["slice", "int", "step", "negative"])
        if kind == "int":
            parts.append(rng.randrange(-size, size))
        else:
            start, stop = sorted(rng.randrange(0, size + 1) for _ in range(2))
            step = {"slice": 1, "step": rng.randint(2, 4), "negative": -rng.randint(1, 3)}[kind]
            parts.append(slice(stop - 1, start - 1 if start else None, step) if step < 0 else slice(start, stop, step))
    return tuple(parts)


def test_any_slice_of_a_tensor_with_index_rules_equals_that_slice_of_the_whole() -> None:
    values = full_tree()
    rng = random.Random(0)
    for entry in initreg.plan(SPEC, RULES, variables=VARIABLES):
        for _ in range(60):
            index = random_index(entry.shape, rng)
            piece = initreg.init_slice(entry.initializer, entry.shape, index, 4, entry.path, layout=entry.layout)
            np.testing.assert_array_equal(piece, values[entry.path][index], err_msg=f"{entry.path}{index}")


def test_streamed_chunks_and_the_file_equal_the_whole(tmp_path: Path) -> None:
    values = full_tree()
    entries = initreg.plan(SPEC, RULES, variables=VARIABLES)
    for entry in entries:
        pieces = list(tree.generate_chunks(entry, 4, chunk_bytes=40))
        assert len(pieces) > 1
        np.testing.assert_array_equal(np.concatenate([p.ravel() for p in pieces]), values[entry.path].ravel())
    path = initreg.save_tree(SPEC, RULES, tmp_path / "t.safetensors", seed=4, variables=VARIABLES, chunk_bytes=40)
    loaded = load_file(path)
    for name in SPEC:
        np.testing.assert_array_equal(loaded[name], values[name])


def test_dask_chunks_equal_the_whole() -> None:
    pytest.importorskip("dask")
    from initreg.interop import dask as initreg_dask

    lazy = initreg_dask.init_tree(SPEC, RULES, seed=4, variables=VARIABLES, chunks=2)
    values = full_tree()
    for name in SPEC:
        assert lazy[name].npartitions > 1
        np.testing.assert_array_equal(lazy[name].compute(scheduler="synchronous"), values[name])


def test_an_orthogonal_part_makes_the_tensor_whole_only() -> None:
    rules = {"q": {"match": "w", "init": "orthogonal"}, "row": {"match": "w", "index": "[0]", "init": "zeros"}}
    (entry,) = initreg.plan({"w": (8, 8)}, rules)
    assert not entry.initializer.slices_independently
    whole = tree.generate(entry, 1)
    assert not whole[0].any() and np.all(whole[1:] != 0)
    (piece,) = tree.generate_chunks(entry, 1, chunk_bytes=16)
    np.testing.assert_array_equal(piece, whole)


@pytest.mark.parametrize(
    ("rule", "message"),
    [
        ({"match": "w", "index": "[0]", "init": "zeros", "dtype": "float16"}, "cannot set its 'dtype'"),
        ({"match": "w", "index": 0, "init": "zeros"}, "'index' must be a string"),
        (
            {"match": "w", "index": "[nope]", "init": "zeros"},
            "rule 'part': index '\\[nope\\]' uses unknown name 'nope'",
        ),
        ({"match": "w", "index": "[9]", "init": "zeros"}, "index 9 is out of range for axis 0"),
        ({"match": "w", "index": "[::0]", "init": "zeros"}, "slice step cannot be zero"),
        ({"match": "w", "index": "[0, 0, 0]", "init": "zeros"}, "3 entries for shape"),
    ],
)
def test_a_bad_index_rule_is_one_line_naming_the_rule(rule: dict, message: str) -> None:
    with pytest.raises(initreg.InitregError, match=message) as raised:
        initreg.plan({"w": (4, 4)}, {"all": {"match": "*", "init": "ones"}, "part": rule})
    assert "\n" not in str(raised.value) and "'part'" in str(raised.value)


def test_intersections_of_strided_ranges() -> None:
    rng = random.Random(1)
    for _ in range(3000):
        a = range(rng.randint(0, 30), rng.randint(0, 60), rng.randint(1, 6))
        b = range(rng.randint(0, 30), rng.randint(0, 60), rng.randint(1, 6))
        assert list(intersect(a, b)) == [x for x in a if x in b]
    assert overlap_slices((slice(0, 4, 1),), (slice(5, 9, 1),), (10,)) is None
    local, absolute = overlap_slices((slice(1, 10, 2),), (slice(0, 10, 3),), (10,))
    assert np.arange(10)[1:10:2][local].tolist() == np.arange(10)[absolute].tolist() == [3, 9]


@pytest.mark.parametrize(
    "parts",
    [
        {"query": {"index": "[:, 0:300]", "init": "zeros"}},
        {"ones": {"index": "[0:120]", "init": "ones"}, "zeros": {"index": "[80:200, ::2]", "init": "zeros"}},
        {
            "uniform": {"index": "[::3]", "init": {"name": "random_uniform", "minval": 1, "maxval": 3}},
            "shifted": {"index": "[10:150, 5:400:7]", "init": {"name": "truncated_normal", "mean": -2, "stddev": 1}},
            "skewed": {"index": "[:, 100:]", "init": {"name": "truncated_normal", "stddev": 0.5, "a": 0, "b": 2}},
        },
    ],
)
def test_the_target_std_of_a_partly_overwritten_tensor_is_that_of_the_mixture(parts: dict) -> None:
    rules = {"base": {"match": "w", "init": {"name": "random_normal", "stddev": 0.7}}}
    rules |= {name: {"match": "w", **part} for name, part in parts.items()}
    (entry,) = initreg.plan({"w": (200, 900)}, rules)
    values = tree.generate(entry, 3).astype(np.float64)
    assert entry.target_std == pytest.approx(values.std(), rel=0.01)
