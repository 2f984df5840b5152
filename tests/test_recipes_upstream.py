"""Recipes serve both the upstream version they cite and the current one, chosen by the model's names.

Each recipe's `namings` name the versions whose parameter names it serves (torchtitan's `output` before
786e26f and `lm_head` since; OLMo's `transformer.*` and OLMo-core's names; OLMo's flat blocks and its
block groups). A spec in each naming must get the same initializer, with the reference formula's std,
for each pair of corresponding tensors; a spec in none of them is refused with the versions named.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping

import numpy as np
import pytest
import torch

import initreg
from initreg import recipes
from initreg.interop.torch import initialize

Spec = dict[str, tuple[int, ...]]
Pairs = dict[str, str]  # {name in one naming: the corresponding name in the other}

DIM, N_LAYERS, VOCAB, FFN = 64, 3, 300, 192
THREE_SIGMA_STD = math.sqrt(
    1 - 6 * math.exp(-4.5) / math.sqrt(2 * math.pi) / math.erf(3 / math.sqrt(2))
)  # of N(0, 1) cut at +-3


def planned(spec: Spec, recipe: recipes.Recipe) -> dict[str, tuple[str, dict[str, object]]]:
    """{path: (initializer class, its config without the seed)} as the recipe's rules plan the spec."""
    return {
        entry.path: (type(entry.initializer).__name__, entry.initializer.get_config() | {"seed": None})
        for entry in initreg.plan(spec, recipe.rules, layout="torch")
    }


def assert_same_init(first: Spec, second: Spec, pairs: Pairs, name: str, std: Callable[[str], float]) -> None:
    """Every tensor of `second` gets the initializer of its pair in `first`, whose std is `std(path)`."""
    one, other = planned(first, recipes.load(name, first)), planned(second, recipes.load(name, second))
    assert set(pairs) == set(second) and set(pairs.values()) <= set(first)
    for path, counterpart in pairs.items():
        assert other[path] == one[counterpart], (path, counterpart)
        kind, config = one[counterpart]
        if kind == "Ones":
            assert std(counterpart) == 0.0, counterpart
        else:
            assert config["stddev"] == pytest.approx(std(counterpart), rel=1e-12), counterpart


# --- torchtitan ----------------------------------------------------------------------------------


def titan_cited() -> Spec:
    """torchtitan v0.2.2 (73a0e69), models/llama3/model/model.py: Transformer's parameters."""
    spec: Spec = {"tok_embeddings.weight": (VOCAB, DIM)}
    for i in range(N_LAYERS):
        spec |= {f"layers.{i}.attention.{w}.weight": (DIM, DIM) for w in ("wq", "wk", "wv", "wo")}
        spec |= {
            f"layers.{i}.feed_forward.w1.weight": (FFN, DIM),
            f"layers.{i}.feed_forward.w2.weight": (DIM, FFN),
            f"layers.{i}.feed_forward.w3.weight": (FFN, DIM),
            f"layers.{i}.attention_norm.weight": (DIM,),
            f"layers.{i}.ffn_norm.weight": (DIM,),
        }
    return spec | {"norm.weight": (DIM,), "output.weight": (VOCAB, DIM)}


def titan_current(fused: bool) -> tuple[Spec, Pairs]:
    """torchtitan at b5bcd76: Decoder's lm_head, GQAttention's qkv_linear (one fused wqkv, or wq, wk, wv)."""
    pairs: Pairs = {}
    for path in titan_cited():
        renamed = path.replace("output.weight", "lm_head.weight")
        for w in ("wq", "wk", "wv"):
            renamed = renamed.replace(f"attention.{w}.", f"attention.qkv_linear.{'wqkv' if fused else w}.")
        if renamed not in pairs or path.endswith("wq.weight"):
            pairs[renamed] = path  # the fused wqkv is drawn as wq, wk and wv are: pair it with wq
    spec = {path: titan_cited()[counterpart] for path, counterpart in pairs.items()}
    if fused:
        spec |= {path: (3 * DIM, DIM) for path in spec if path.endswith("wqkv.weight")}
    return spec, pairs


def titan_std(path: str) -> float:
    """torchtitan: wo, w2, w3 of layer i 0.02 / (2 (i + 1)) ** 0.5; the output dim ** -0.5; the embedding 1;
    other linears 0.02; norms ones (0 here)."""
    if path.endswith("norm.weight"):
        return 0.0
    if path == "tok_embeddings.weight":
        return 1.0
    if path in ("output.weight", "lm_head.weight"):
        return DIM**-0.5
    if path.endswith(("wo.weight", "w2.weight", "w3.weight")):
        return 0.02 / (2 * (int(path.split(".")[1]) + 1)) ** 0.5
    return 0.02


@pytest.mark.parametrize("fused", [True, False], ids=["wqkv", "wq_wk_wv"])
def test_torchtitan_current_names_get_the_cited_versions_init(fused: bool) -> None:
    current, pairs = titan_current(fused)
    assert_same_init(titan_cited(), current, pairs, "torchtitan_llama3", titan_std)
    assert "786e26f" in recipes.load("torchtitan_llama3", current).naming
    assert "73a0e69" in recipes.load("torchtitan_llama3", titan_cited()).naming


def test_torchtitans_lm_head_is_drawn_at_its_std_and_cut_at_three_sigma() -> None:
    current, _ = titan_current(fused=True)
    drawn = initreg.init_tree(current, recipes.load("torchtitan_llama3", current).rules, seed=2, layout="torch")
    lm_head, std = np.asarray(drawn["lm_head.weight"], dtype=np.float64), DIM**-0.5
    assert lm_head.std() == pytest.approx(THREE_SIGMA_STD * std, rel=0.02)  # 19,200 draws: one sigma is 0.5%
    assert 0.97 * 3 * std < np.abs(lm_head).max() <= 3 * std


def test_a_model_with_both_outputs_is_refused_as_ambiguous() -> None:
    both = titan_cited() | {"lm_head.weight": (VOCAB, DIM)}
    with pytest.raises(initreg.InitregError, match=r"has the names of more than one version .*786e26f.*ambiguous"):
        recipes.load("torchtitan_llama3", both)


def module_from_spec(spec: Spec) -> torch.nn.Module:
    """A torch module whose parameters have the spec's dotted names and shapes."""
    root = torch.nn.Module()
    for path, shape in spec.items():
        *parents, leaf = path.split(".")
        module = root
        for part in parents:
            if not hasattr(module, part):
                module.add_module(part, torch.nn.Module())
            module = getattr(module, part)
        module.register_parameter(leaf, torch.nn.Parameter(torch.empty(shape)))
    return root


def test_a_tied_current_torchtitan_gives_the_embedding_lm_heads_init() -> None:
    """enable_weight_tying (Llama 3.2 1B, 3B): tok_embeddings.weight is lm_head.weight, init by lm_head's rule."""
    current, _ = titan_current(fused=True)
    model = module_from_spec(current)
    model.tok_embeddings.weight = model.lm_head.weight
    initialize(model, recipes.load("torchtitan_llama3", model).rules, seed=4)
    embedding, std = model.tok_embeddings.weight.detach().double(), DIM**-0.5
    assert model.tok_embeddings.weight is model.lm_head.weight
    assert embedding.abs().max() <= 3 * std and float(embedding.std()) == pytest.approx(THREE_SIGMA_STD * std, rel=0.02)


# --- OLMo and OLMo-core --------------------------------------------------------------------------


def olmo_block(prefix: str, hidden: int = FFN) -> Spec:
    return {
        f"{prefix}.att_proj.weight": (3 * DIM, DIM),
        f"{prefix}.attn_out.weight": (DIM, DIM),
        f"{prefix}.q_norm.weight": (DIM,),
        f"{prefix}.k_norm.weight": (DIM,),
        f"{prefix}.attn_norm.weight": (DIM,),
        f"{prefix}.ff_proj.weight": (2 * hidden, DIM),
        f"{prefix}.ff_out.weight": (DIM, hidden),
        f"{prefix}.ff_norm.weight": (DIM,),
    }


def olmo_spec(n_layers: int, block_group_size: int = 1) -> Spec:
    """OLMo at 59a53e3: transformer.blocks.{i}, or transformer.block_groups.{g}.{j} (layer g * size + j)."""
    spec: Spec = {"transformer.wte.weight": (VOCAB, DIM)}
    for layer in range(n_layers):
        group, block = divmod(layer, block_group_size)
        nested = f"block_groups.{group}.{block}" if block_group_size > 1 else f"blocks.{layer}"
        spec |= olmo_block(f"transformer.{nested}")
    return spec | {"transformer.ln_f.weight": (DIM,), "transformer.ff_out.weight": (VOCAB, DIM)}


OLMO_CORE_NAMES = {  # OLMo-core at fa6c501 (ReorderedNormTransformerBlock, LMHead): OLMo's name for each
    "attention.w_q": "att_proj",
    "attention.w_k": "att_proj",
    "attention.w_v": "att_proj",
    "attention.w_out": "attn_out",
    "attention.q_norm": "q_norm",
    "attention.k_norm": "k_norm",
    "attention_norm": "attn_norm",
    "feed_forward.w1": "ff_proj",
    "feed_forward.w3": "ff_proj",
    "feed_forward.w2": "ff_out",
    "feed_forward_norm": "ff_norm",
}


def olmo_core_spec() -> tuple[Spec, Pairs]:
    spec: Spec = {"embeddings.weight": (VOCAB, DIM)}
    pairs: Pairs = {"embeddings.weight": "transformer.wte.weight"}
    for layer in range(N_LAYERS):
        for core, olmo in OLMO_CORE_NAMES.items():
            pairs[f"blocks.{layer}.{core}.weight"] = f"transformer.blocks.{layer}.{olmo}.weight"
        spec |= {f"blocks.{layer}.attention.{w}.weight": (DIM, DIM) for w in ("w_q", "w_k", "w_v", "w_out")}
        spec |= {f"blocks.{layer}.attention.{n}.weight": (DIM,) for n in ("q_norm", "k_norm")}
        spec |= {f"blocks.{layer}.{n}.weight": (DIM,) for n in ("attention_norm", "feed_forward_norm")}
        spec |= {
            f"blocks.{layer}.feed_forward.w1.weight": (FFN, DIM),
            f"blocks.{layer}.feed_forward.w3.weight": (FFN, DIM),
            f"blocks.{layer}.feed_forward.w2.weight": (DIM, FFN),
        }
    pairs |= {"lm_head.norm.weight": "transformer.ln_f.weight", "lm_head.w_out.weight": "transformer.ff_out.weight"}
    return spec | {"lm_head.norm.weight": (DIM,), "lm_head.w_out.weight": (VOCAB, DIM)}, pairs


def is_norm(path: str) -> bool:
    return path.endswith(("norm.weight", "ln_f.weight"))


def olmo2_std(path: str) -> float:
    """OLMo's init_fn normal and OLMo-core's InitMethod.normal: init_std 0.02 everywhere; norms ones (0 here)."""
    return 0.0 if is_norm(path) else 0.02


def test_olmo_core_names_get_olmo2s_init() -> None:
    """OLMo-core's InitMethod.normal: trunc_normal_(0.02, +-3 sigma) for every linear and the embedding."""
    core, pairs = olmo_core_spec()
    assert_same_init(olmo_spec(N_LAYERS), core, pairs, "olmo2", olmo2_std)
    assert "fa6c501" in recipes.load("olmo2", core).naming


def mitchell_std(path: str) -> float:
    """OLMo's mitchell init: attn_out 1 / sqrt(2 d_model (i + 1)); block ff_out 1 / sqrt(2 fan_in (i + 1));
    others 1 / sqrt(d_model); norms ones (0 here); the flat spec's names give the layer i."""
    if is_norm(path):
        return 0.0
    parts = path.split(".")
    if parts[1] == "blocks" and parts[-2] == "attn_out":
        return 1 / math.sqrt(2 * DIM * (int(parts[2]) + 1))
    if parts[1] == "blocks" and parts[-2] == "ff_out":
        return 1 / math.sqrt(2 * FFN * (int(parts[2]) + 1))
    return 1 / math.sqrt(DIM)


@pytest.mark.parametrize("block_group_size", [2, 3])
def test_olmo_block_groups_read_their_depth_and_get_each_layers_init(block_group_size: int) -> None:
    flat, grouped = olmo_spec(6), olmo_spec(6, block_group_size)
    pairs = {}
    for path in grouped:
        parts = path.split(".")
        if parts[1] == "block_groups":
            layer = int(parts[2]) * block_group_size + int(parts[3])
            pairs[path] = ".".join(["transformer", "blocks", str(layer), *parts[4:]])
        else:
            pairs[path] = path
    for name in ("olmo_mitchell", "olmo2"):
        std = mitchell_std if name == "olmo_mitchell" else olmo2_std
        assert_same_init(flat, grouped, pairs, name, std)
    recipe = recipes.load("olmo_mitchell", grouped)
    assert recipe.variables["block_group_size"] == block_group_size
    assert recipe.sources["block_group_size"] == f"tree: {block_group_size} blocks block_groups.0.{{i}}"
    assert "block_group_size > 1" in recipe.naming
    assert "block_group_size" not in recipes.load("olmo_mitchell", flat).variables


def test_a_given_block_group_size_that_contradicts_the_model_is_an_error_naming_both() -> None:
    with pytest.raises(initreg.InitregError, match=r"block_group_size=3 was given but the model has 2 \(tree: 2"):
        recipes.load("olmo_mitchell", olmo_spec(4, 2), block_group_size=3)
    with pytest.raises(initreg.InitregError, match=r"block_group_size=2 was given but .* block_group_size 1: trans"):
        recipes.load("olmo_mitchell", olmo_spec(4), block_group_size=2)


# --- refusals and loading without a model --------------------------------------------------------


HF_LLAMA: Spec = {  # transformers' names, which none of these recipes serves
    "model.embed_tokens.weight": (VOCAB, DIM),
    "model.layers.0.self_attn.o_proj.weight": (DIM, DIM),
    "model.layers.0.mlp.down_proj.weight": (DIM, FFN),
    "model.layers.0.input_layernorm.weight": (DIM,),
    "model.norm.weight": (DIM,),
    "lm_head.weight": (VOCAB, DIM),
}


@pytest.mark.parametrize(
    ("name", "spec", "versions"),
    [
        ("torchtitan_llama3", {k: v for k, v in titan_cited().items() if k != "output.weight"}, ("73a0e69", "786e26f")),
        ("olmo2", HF_LLAMA, ("OLMo (59a53e3)", "OLMo-core (fa6c501)")),
        ("olmo_mitchell", olmo_core_spec()[0], ("block_group_size 1", "block_group_size > 1")),
    ],
    ids=["torchtitan", "olmo2", "mitchell_on_olmo_core"],
)  # fmt: skip
def test_names_of_no_served_version_are_refused_naming_the_versions(
    name: str, spec: Spec, versions: tuple[str, ...]
) -> None:
    with pytest.raises(initreg.InitregError) as raised:
        recipes.load(name, spec)
    message = str(raised.value)
    assert message.startswith(f"recipe {name!r} does not fit this model:") and "\n" not in message
    for label in recipes.read(name)["namings"]:
        assert label in message
    for version in versions:
        assert version in message


def test_without_a_model_every_naming_is_served() -> None:
    titan = recipes.load("torchtitan_llama3", n_layers=N_LAYERS)
    cited, (current, pairs) = titan_cited(), titan_current(fused=True)
    one = {entry.path: entry.initializer.get_config() for entry in initreg.plan(cited, titan.rules, layout="torch")}
    other = {entry.path: entry.initializer.get_config() for entry in initreg.plan(current, titan.rules)}
    assert all(other[path] == one[counterpart] for path, counterpart in pairs.items())
    assert titan.naming == "" and "names of" not in titan.describe()
    with pytest.raises(initreg.InitregError, match="needs variable 'block_group_size', read from model.config"):
        recipes.load("olmo_mitchell", d_model=DIM)
    mitchell = recipes.load("olmo_mitchell", d_model=DIM, block_group_size=2)
    grouped = {
        entry.path: entry.initializer.get_config().get("stddev")
        for entry in initreg.plan(olmo_spec(4, 2), mitchell.rules)
    }
    assert grouped["transformer.block_groups.1.1.attn_out.weight"] == pytest.approx(1 / math.sqrt(2 * DIM * 4))


def test_a_malformed_naming_is_an_error_naming_the_recipe() -> None:
    content: Mapping[str, object] = {"rules": {"w": {"match": "*", "init": "zeros"}}, "variables": {}}
    with pytest.raises(initreg.InitregError, match=r"recipe 'mine': naming 'v1' names rule 'x'; valid: 'w'"):
        recipes.from_config("mine", {**content, "namings": {"v1": {"rules": ["x"]}}})
    with pytest.raises(initreg.InitregError, match=r"recipe 'mine': naming 'v1' must be a mapping of 'rules'"):
        recipes.from_config("mine", {**content, "namings": {"v1": ["w"]}})
