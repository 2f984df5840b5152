"""Parameter trees: paths, glob-rule semantics, the plan, and init_tree's (seed, path) keying.

Expected keys are derived here from docs/stream.md's definition ("Key derivation": blake2b of seed and
path), fans and stds from Keras's and PyTorch's own functions, so that the tree code is checked against
the real thing.
"""

from __future__ import annotations

import hashlib
import math
import random
import re

import ml_dtypes
import numpy as np
import pytest

import initreg
from initreg import recipes, tree
from initreg.errors import IgnoredSeedWarning, InitregError, InvalidArgumentError, UnknownNameError
from initreg.initializers.serialization import serialize
from initreg.patterns import PathPattern
from initreg.registry import get_backend

NUMPY = get_backend("numpy")
MLP = {"dense_0": {"kernel": (20, 30), "bias": (30,)}, "dense_1": {"kernel": (30, 5), "bias": (5,)}}
RULES = {"weights": {"match": "*.kernel", "init": "lecun_normal"}, "biases": {"match": "*.bias", "init": "zeros"}}


def design_key(seed: int, path: str) -> tuple[int, int]:
    """The key of docs/stream.md ("Key derivation"): blake2b-64 of initreg/v1\\0 + seed + \\0 + path, two LE uint32."""
    digest = hashlib.blake2b(b"initreg/v1\0" + str(seed).encode() + b"\0" + path.encode(), digest_size=8).digest()
    return int.from_bytes(digest[:4], "little"), int.from_bytes(digest[4:], "little")


# --- paths -------------------------------------------------------------------------------------


def test_nested_flat_and_list_specs_name_the_same_paths() -> None:
    nested = {"encoder": {"layers": [{"w": (2, 3)}, {"w": [3, 4]}], "scale": ()}}
    flat = {"encoder.layers.0.w": (2, 3), "encoder.layers.1.w": (3, 4), "encoder.scale": ()}
    assert tree.flatten(nested) == flat
    assert tree.flatten(flat) == flat
    assert tree.unflatten(flat) == {"encoder": {"layers": {"0": {"w": (2, 3)}, "1": {"w": (3, 4)}}, "scale": ()}}


def test_unflatten_like_rebuilds_the_given_structure() -> None:
    spec = {"a": {"b": (1,), "c": [(2,), {"d": (3,)}]}, "e.f": (4,)}
    flat = {path: f"value of {path}" for path in tree.flatten(spec)}
    assert tree.unflatten(flat, like=spec) == {
        "a": {"b": "value of a.b", "c": ["value of a.c.0", {"d": "value of a.c.1.d"}]},
        "e.f": "value of e.f",
    }


def test_int_keys_tuples_of_subtrees_arrays_and_left_out_leaves_keep_their_places() -> None:
    spec = {0: {"w": (2,)}, "b": ((3,), {"c": [4, 5]}), "e": np.zeros((2, 2)), "f": {"g": (1,), 7: ()}}
    flat = tree.flatten(spec)
    assert list(flat) == ["0.w", "b.0", "b.1.c", "e", "f.g", "f.7"]
    assert flat["b.1.c"] == (4, 5) and flat["e"] is spec["e"]
    values = {path: f"value of {path}" for path in flat if path not in ("b.0", "f.g")}
    assert tree.unflatten(values, like=spec) == {
        0: {"w": "value of 0.w"},
        "b": ({"c": "value of b.1.c"},),
        "e": "value of e",
        "f": {7: "value of f.7"},
    }


@pytest.mark.parametrize(
    ("spec", "named"),
    [
        ({"a": {"b": (1,)}, "a.b": (2,)}, "'a.b' appears twice"),
        ({"a": "wide"}, "'a'"),
        ({"a": {True: (1,)}}, "got True"),
        ({"a": (2, -1)}, "negative"),
        ({"a": {"b": (2, 1.5)}}, "a.b"),
        ({"": (1,)}, "''"),
        ({"a": {"huge": (10**200, 2)}}, "parameter 'a.huge': shape (~10^200, 2) has ~10^200 elements"),
        ({"big": (2**32, 2**31)}, f"parameter 'big': shape ({2**32}, {2**31}) has {2**63} elements; valid: at most"),
        ({"deep": (1,) * 65}, "parameter 'deep': shape has rank 65; valid: at most 64"),
    ],
)
def test_bad_specs_name_the_parameter(spec: dict[str, object], named: str) -> None:
    with pytest.raises(InvalidArgumentError) as error:
        tree.flatten(spec)
    assert named in str(error.value)


# --- keying by (seed, path) ----------------------------------------------------------------------


def test_each_value_comes_from_the_stream_of_seed_and_path() -> None:
    result = initreg.init_tree(MLP, RULES, seed=11)
    kernel = result["dense_1"]["kernel"]
    expected = initreg.LecunNormal().generate((30, 5), "float32", key=design_key(11, "dense_1.kernel"), backend=NUMPY)
    np.testing.assert_array_equal(kernel, expected)
    assert kernel.dtype == np.float32
    np.testing.assert_array_equal(result["dense_0"]["bias"], np.zeros(30, np.float32))


def test_order_nesting_and_other_parameters_do_not_change_values() -> None:
    base = tree.flatten(initreg.init_tree(MLP, RULES, seed=5))
    flat_reversed = dict(reversed(list(tree.flatten(MLP).items())))
    grown = {**flat_reversed, "extra.kernel": (7, 7), "dense_2.kernel": (5, 2)}
    other = initreg.init_tree(grown, RULES, seed=5)
    for path, value in base.items():
        np.testing.assert_array_equal(other[path], value)
    changed = tree.flatten(initreg.init_tree(MLP, RULES, seed=6))
    assert not np.array_equal(changed["dense_0.kernel"], base["dense_0.kernel"])


def test_one_seeded_initializer_gives_every_parameter_its_own_values() -> None:
    """The Keras trap: a seeded Keras initializer repeats its matrix on every call; a tree does not."""
    import keras

    keras_init = keras.initializers.LecunNormal(seed=7)
    assert np.array_equal(np.asarray(keras_init((16, 16))), np.asarray(keras_init((16, 16))))
    spec = {f"layer_{i}.kernel": (16, 16) for i in range(3)}
    with pytest.warns(IgnoredSeedWarning, match="rule 'all': init seed=7 is not used, since the tree's seed decides"):
        result = initreg.init_tree(spec, {"all": {"match": "*", "init": {"name": "lecun_normal", "seed": 7}}})
    kernels = list(result.values())
    assert not np.array_equal(kernels[0], kernels[1])
    assert not np.array_equal(kernels[1], kernels[2])


def test_the_tree_seed_overrides_the_initializers_seed() -> None:
    spec = {"w": (8, 8)}
    with pytest.warns(IgnoredSeedWarning, match="init seed=1"):
        seeded = initreg.init_tree(spec, {"all": {"match": "*", "init": {"name": "he_normal", "seed": 1}}}, seed=4)
    with pytest.warns(IgnoredSeedWarning, match="init seed=2"):
        other = initreg.init_tree(spec, {"all": {"match": "*", "init": {"name": "he_normal", "seed": 2}}}, seed=4)
    np.testing.assert_array_equal(seeded["w"], other["w"])


def test_a_backend_by_name_or_object_gives_the_same_tree() -> None:
    by_name = initreg.init_tree(MLP, RULES, seed=3, backend="numpy")
    by_object = initreg.init_tree(MLP, RULES, seed=3, backend=NUMPY)
    np.testing.assert_array_equal(by_name["dense_0"]["kernel"], by_object["dense_0"]["kernel"])


@pytest.mark.parametrize("seed", [None, 1.5, "3", True])
def test_seed_must_be_an_integer(seed: object) -> None:
    with pytest.raises(InvalidArgumentError, match="seed must be an integer"):
        initreg.init_tree(MLP, RULES, seed=seed)  # type: ignore[arg-type]


# --- rules -------------------------------------------------------------------------------------


def test_the_last_matching_rule_wins() -> None:
    broad_last = {"special": {"match": "dense_0.*", "init": "ones"}, "all": {"match": "*", "init": "zeros"}}
    broad_first = dict(reversed(list(broad_last.items())))
    assert {e.rule for e in initreg.plan(MLP, broad_last)} == {"all"}
    winners = {e.path: e.rule for e in initreg.plan(MLP, broad_first)}
    assert winners == {
        "dense_0.kernel": "special",
        "dense_0.bias": "special",
        "dense_1.kernel": "all",
        "dense_1.bias": "all",
    }


def test_globs_cross_dots_and_are_case_sensitive() -> None:
    spec = {"Block": {"inner": {"w": (2,)}}, "block": {"w": (2,)}, "blocks": {"w": (2,)}}
    rules = {
        "all": {"match": "*", "init": "zeros"},
        "deep": {"match": "Block*w", "init": "ones"},
        "one": {"match": "block?.w", "init": "ones"},
    }
    winners = {e.path: e.rule for e in initreg.plan(spec, rules)}
    assert winners == {"Block.inner.w": "deep", "block.w": "all", "blocks.w": "one"}


def test_indexed_planning_picks_the_rule_the_last_match_over_all_rules_gives() -> None:
    rng = random.Random(5)
    pieces = ["*", "?", "h.", "{i}", "1", "2", ".w", ".b", "ln", "[12]", "x"]
    texts = {"".join(rng.choice(pieces) for _ in range(rng.randint(1, 5))) for _ in range(400)}
    texts = {text for text in texts if text.count("{i}") <= 1}
    names = {"".join(rng.choice(["h.", "1", "2", "12", ".w", ".b", "ln", "x"]) for _ in range(rng.randint(1, 5)))
             for _ in range(300)}  # fmt: skip
    rules = {f"r{n}": {"match": text, "init": "zeros", "optional": True} for n, text in enumerate(sorted(texts))}
    rules |= {f"o{n}": {"match": text, "init": "ones", "index": "[0]", "optional": True}
              for n, text in enumerate(sorted(texts)[::7])}  # fmt: skip
    parsed = tree.parse_rules(rules)
    entries = initreg.plan({name: (2,) for name in names}, parsed, allow_unmatched_params=True)
    expected = {name: _last_match_over_all(name, parsed) for name in names}
    assert {entry.path: entry.rule for entry in entries} == {k: v for k, v in expected.items() if v is not None}
    assert len(set(expected.values())) > 50


def _last_match_over_all(name: str, rules: list[tree.Rule]) -> str | None:
    """The plan's rule for `name`, testing every rule: the last whole-tensor match and the index rules after it."""
    positions = [n for n, rule in enumerate(rules) if rule.matches(name)]
    whole = [n for n in positions if rules[n].index is None]
    return "+".join(rules[n].name for n in positions if n >= whole[-1]) if whole else None


def test_each_parameter_tests_only_the_rules_whose_literal_prefix_and_suffix_fit(monkeypatch) -> None:
    rules = {"all": {"match": "*", "init": "zeros"}} | {
        f"{kind}{n}": {"match": f"blocks.{n}.{kind}.*", "init": "ones"} for n in range(1000) for kind in ("attn", "mlp")
    }
    spec = {f"blocks.{n}.{kind}.weight": (2,) for n in range(1000) for kind in ("attn", "mlp")}
    parsed = tree.parse_rules(rules)
    tested = 0
    reach = PathPattern._reach

    def counted(pattern: PathPattern, subject: object) -> object:
        nonlocal tested
        tested += 1
        return reach(pattern, subject)

    monkeypatch.setattr(PathPattern, "_reach", counted)
    winners = {entry.path: entry.rule for entry in initreg.plan(spec, parsed)}
    assert winners == {f"blocks.{n}.{kind}.weight": f"{kind}{n}" for n in range(1000) for kind in ("attn", "mlp")}
    assert tested <= 3 * len(spec)  # the winner, then "all" and the winner again in the unused-rule check


def test_a_name_of_8_kb_plans_at_once_and_a_huge_capture_is_one_error_naming_the_parameter() -> None:
    gpt2 = recipes.load("mup_gpt2", initializer_range=0.02, n_layer=12, d_model=768, base_d_model=256)
    long_name = "h." + "1." * 4000 + "attn.c_attn.weight"
    (entry,) = initreg.plan({long_name: (4, 12)}, gpt2.rules, allow_unused_rules=True)
    assert entry.rule == _last_match_over_all(long_name, gpt2.rules) == "hidden_matrices+query_block"
    for recipe, name, variables in [
        ("olmo_mitchell", "transformer.blocks.{}.attn_out.weight", {"d_model": 64, "block_group_size": 1}),
        ("torchtitan_llama3", "layers.{}.attention.wo.weight", {"n_layers": 2}),
    ]:
        path = name.format("7" * 5000)
        shown = re.escape(f"parameter {path[:80] + '...'!r} ({len(path)} characters): pattern")
        with pytest.raises(InvalidArgumentError, match=shown) as raised:
            initreg.plan({path: (4, 4)}, recipes.load(recipe, **variables).rules, allow_unused_rules=True)
        assert "\n" not in str(raised.value) and "5000 digits" in str(raised.value)


def test_a_parameter_without_a_rule_is_an_error_that_names_it() -> None:
    rules = {"weights": {"match": "*.kernel", "init": "lecun_normal"}}
    with pytest.raises(InvalidArgumentError) as error:
        initreg.plan(MLP, rules)
    message = str(error.value)
    assert "'dense_0.bias'" in message and "'dense_1.bias'" in message
    assert "'*.kernel'" in message and "allow_unmatched_params" in message
    assert "dense_0.kernel'" not in message.split("rules:")[0]


def test_a_rule_matching_nothing_is_an_error_that_names_it() -> None:
    rules = {**RULES, "embed": {"match": "*.embedding", "init": "normal"}}
    with pytest.raises(InvalidArgumentError) as error:
        initreg.plan(MLP, rules)
    message = str(error.value)
    assert "'embed'" in message and "'*.embedding'" in message and "allow_unused_rules" in message
    assert "'weights'" not in message


def test_switches_relax_both_checks_and_unmatched_parameters_are_left_out() -> None:
    rules = {"weights": {"match": "*.kernel", "init": "lecun_normal"}, "embed": {"match": "*.embed", "init": "ones"}}
    result = initreg.init_tree(MLP, rules, allow_unmatched_params=True, allow_unused_rules=True)
    assert list(tree.flatten(result)) == ["dense_0.kernel", "dense_1.kernel"]


def test_rules_accept_names_configs_keras_dicts_instances_and_rule_objects() -> None:
    keras_dict = serialize(initreg.VarianceScaling(scale=3.0, mode="fan_out"))
    rules = tree.parse_rules(
        {
            "by_name": {"match": "a", "init": "GlorotUniform"},
            "by_config": {"match": "b", "init": {"name": "variance_scaling", "scale": 2, "mode": "fan_avg"}},
            "by_keras_dict": {"match": "c", "init": keras_dict},
            "by_instance": {"match": "d", "init": initreg.Orthogonal(gain=2.0), "dtype": "float16", "layout": "torch"},
            "dropped": None,
            "renamed": tree.Rule("old name", "e", initreg.Ones()),
        }
    )
    assert [rule.name for rule in rules] == ["by_name", "by_config", "by_keras_dict", "by_instance", "renamed"]
    assert rules[0].init == initreg.GlorotUniform()
    assert rules[1].init == initreg.VarianceScaling(scale=2.0, mode="fan_avg")
    assert rules[2].init == initreg.VarianceScaling(scale=3.0, mode="fan_out")
    assert (rules[3].init, rules[3].dtype, rules[3].layout) == (initreg.Orthogonal(gain=2.0), "float16", "torch")


@pytest.mark.parametrize(
    ("rule", "error_type", "named"),
    [
        ({"init": "zeros"}, InvalidArgumentError, "'match'"),
        ({"match": "*"}, InvalidArgumentError, "'init' is missing"),
        ({"match": "*", "init": "zeros", "pattern": "x"}, InvalidArgumentError, "'pattern'"),
        ({"match": "*", "init": "lecun_normall"}, UnknownNameError, "did you mean 'lecun_normal'"),
        ({"match": "*", "init": "zeros", "dtype": "int8"}, InvalidArgumentError, "'int8'"),
        ({"match": "*", "init": "zeros", "layout": "tf"}, InvalidArgumentError, "'tf'"),
        ({"match": "*", "init": {"scale": 2}}, InvalidArgumentError, "'name'"),
        ({"match": "*", "init": {"name": "zeros", "scale": 2}}, InvalidArgumentError, "'scale'"),
        ({"match": "*", "init": np.zeros}, InvalidArgumentError, "not an initializer"),
        ("*.kernel", InvalidArgumentError, "match, init"),
    ],
)
def test_malformed_rules_raise_errors_naming_the_rule(rule: object, error_type: type[InitregError], named: str) -> None:
    with pytest.raises(error_type) as error:
        tree.parse_rules({"broken": rule})  # type: ignore[dict-item]
    assert "rule 'broken'" in str(error.value) and named in str(error.value)


def test_an_initializer_that_cannot_make_a_shape_names_the_parameter() -> None:
    with pytest.raises(InvalidArgumentError, match=r"parameter 'dense_0.bias' \(rule 'all'\): .*two-dimensional"):
        initreg.plan(MLP, {"all": {"match": "*", "init": "orthogonal"}})


# --- the plan ----------------------------------------------------------------------------------


def test_plan_draws_nothing() -> None:
    huge = {"w": (10**6, 10**6)}  # 4 TB in float32: drawing it would fail
    (entry,) = initreg.plan(huge, {"all": {"match": "*", "init": "he_normal"}})
    assert entry.size == 10**12
    assert entry.target_std == pytest.approx(math.sqrt(2 / 10**6))


def test_plan_fans_and_stds_match_keras_in_keras_layout() -> None:
    from keras.src.initializers.random_initializers import compute_fans as keras_fans

    spec = {"conv.kernel": (3, 3, 8, 16), "dense.kernel": (144, 10)}
    entries = initreg.plan(spec, {"all": {"match": "*", "init": "glorot_normal"}})
    for entry in entries:
        fan_in, fan_out = keras_fans(entry.shape)
        assert (entry.fan_in, entry.fan_out) == (fan_in, fan_out)
        assert entry.target_std == pytest.approx(math.sqrt(2.0 / (fan_in + fan_out)))
        assert entry.layout is None


def test_plan_fans_and_stds_match_torch_in_torch_layout() -> None:
    """A torch state dict as the spec (tensors as leaves), he_normal in torch layout = kaiming_normal_."""
    import torch

    model = torch.nn.Sequential(torch.nn.Conv2d(8, 16, 3), torch.nn.Flatten(), torch.nn.Linear(64, 10))
    model = model.to(torch.float16)
    spec = {name: value for name, value in model.state_dict().items() if name.endswith("weight")}
    entries = initreg.plan(spec, {"all": {"match": "*", "init": "he_normal"}}, layout="torch")
    for entry in entries:
        fan_in, fan_out = torch.nn.init._calculate_fan_in_and_fan_out(spec[entry.path])
        assert (entry.fan_in, entry.fan_out) == (fan_in, fan_out)
        assert entry.target_std == pytest.approx(torch.nn.init.calculate_gain("relu") / math.sqrt(fan_in))
        assert (entry.dtype, entry.layout) == ("float16", "torch")


def test_the_measured_std_matches_the_plan() -> None:
    spec = {"conv": (3, 3, 64, 128), "dense": (512, 256), "wide": (64, 2048)}
    rules = {
        "conv": {"match": "conv", "init": "he_uniform"},
        "dense": {"match": "dense", "init": {"name": "variance_scaling", "mode": "fan_avg", "scale": 0.5}},
        "wide": {"match": "wide", "init": "orthogonal"},
    }
    result = initreg.init_tree(spec, rules, seed=2)
    for entry in initreg.plan(spec, rules):
        measured = float(np.std(result[entry.path].astype(np.float64)))
        # >= 73k samples: the sample std is within 1% of the truth by more than 4 standard errors
        assert measured == pytest.approx(entry.target_std, rel=0.02)


def test_dtype_comes_from_the_rule_then_the_array_then_the_tree() -> None:
    import torch

    spec = {"given": np.zeros((2, 2), ml_dtypes.bfloat16), "torch": torch.zeros(3, dtype=torch.float16), "shape": (2,)}
    rules = {"all": {"match": "*", "init": "ones"}}
    dtypes = {e.path: e.dtype for e in initreg.plan(spec, rules, dtype="float64")}
    assert dtypes == {"given": "bfloat16", "torch": "float16", "shape": "float64"}
    overridden = {**rules, "pin": {"match": "given", "init": "ones", "dtype": "float32"}}
    result = initreg.init_tree(spec, overridden, dtype="float64")
    assert (result["given"].dtype, result["torch"].dtype, result["shape"].dtype) == (
        np.dtype("float32"),
        np.dtype("float16"),
        np.dtype("float64"),
    )


def test_a_non_floating_array_leaf_names_the_parameter() -> None:
    with pytest.raises(InvalidArgumentError, match=r"parameter 'ids' .*int64"):
        initreg.plan({"ids": np.zeros(3, np.int64)}, {"all": {"match": "*", "init": "zeros"}})


# --- ties ----------------------------------------------------------------------------------------

TIED_SPEC = {"wte.weight": (40, 8), "h.0.w": (8, 8), "lm_head.weight": (40, 8)}
TIED_RULES = {
    "all": {"match": "*", "init": {"name": "random_normal", "stddev": 0.02}},
    "head": {"match": "lm_head.weight", "init": {"name": "random_normal", "stddev": 5.0}, "wins_ties": True},
}


def test_a_tied_name_is_the_same_tensor_drawn_once_and_rules_naming_it_match() -> None:
    ties = {"lm_head.weight": "wte.weight"}
    entries = initreg.plan(TIED_SPEC, TIED_RULES, ties=ties)
    assert [(entry.path, entry.aliases, entry.rule) for entry in entries] == [
        ("wte.weight", ("lm_head.weight",), "head"),
        ("h.0.w", (), "all"),
    ]
    values = initreg.init_tree(TIED_SPEC, TIED_RULES, seed=2, ties=ties)
    assert values["lm_head.weight"] is values["wte.weight"]
    untied = initreg.init_tree({"wte.weight": (40, 8)}, {"r": TIED_RULES["head"] | {"match": "*"}}, seed=2)
    np.testing.assert_array_equal(values["wte.weight"], untied["wte.weight"])  # the stream of 'wte.weight'
    without_alias = initreg.init_tree({"wte.weight": (40, 8)}, TIED_RULES, seed=2, ties=ties)
    assert list(without_alias) == ["wte.weight"]


def test_a_tied_tensor_gets_the_rule_that_wins_ties() -> None:
    rules = {
        "head": {**TIED_RULES["head"], "wins_ties": False},
        "embed": {"match": "wte.weight", "init": "zeros", "wins_ties": True},
        "rest": {"match": "h.*", "init": "ones"},
    }
    (embed, _) = initreg.plan(TIED_SPEC, rules, ties={"lm_head.weight": "wte.weight"})
    assert embed.rule == "embed"
    unused = {**rules, "head": {**TIED_RULES["head"], "match": "nothing"}}
    with pytest.raises(InitregError, match="'head' \\('nothing'\\) match no parameter"):
        initreg.plan(TIED_SPEC, unused, ties={"lm_head.weight": "wte.weight"})


def test_a_tied_tensor_is_written_once_under_its_parameter_name(tmp_path) -> None:
    from safetensors.numpy import load_file

    path = initreg.save_tree(TIED_SPEC, TIED_RULES, tmp_path / "t.safetensors", ties={"lm_head.weight": "wte.weight"})
    assert sorted(load_file(path)) == ["h.0.w", "wte.weight"]


@pytest.mark.parametrize(
    ("ties", "message"),
    [
        ({"lm_head.weight": "wpe.weight"}, "'wpe.weight' names no parameter of the spec"),
        ({"lm_head.weight": "lm_head.weight"}, "must name two different paths"),
        ({"a": "wte.weight", "wte.weight": "h.0.w"}, "'wte.weight' names no parameter of the spec that is not itself"),
        ({"h.0.w": "wte.weight"}, "tie 'h.0.w' \\(8, 8\\): 'wte.weight' has another shape, \\(40, 8\\)"),
        (["lm_head.weight"], "ties must be a mapping"),
    ],
)  # fmt: skip
def test_bad_ties_are_errors(ties: object, message: str) -> None:
    with pytest.raises(InitregError, match=message):
        initreg.plan(TIED_SPEC, TIED_RULES, ties=ties)
