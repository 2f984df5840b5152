"""Recipes against the initialization of the code they name.

transformers (GPT-2 small; a small Llama, Mistral and Qwen2) and mup (a muP GPT-2 at two widths) run
their own init here. torchtitan and OLMo are not installable on their own, so their init functions are
re-implemented below with torch from the formulas quoted from their source. For every tensor:

- the tensors that are all zeros or all ones, and the zero masks (padding row, query block: the zeros of
  both reference seeds), match exactly;
- the random part passes a two-sample KS test against the reference's own draws at p >= 1e-3, failing
  no more often (plus one) than the reference with another seed against itself;
- its std is within max(1%, 4 / sqrt(2 n)) of the reference formula's;
- a truncated part has its largest |x| at the bound (within 1%, and not past it).
"""

from __future__ import annotations

import json
import math
import os
import shutil
import subprocess
import sys
from collections.abc import Callable, Mapping
from importlib.resources import files
from pathlib import Path

import mup  # the references are test dependencies: a missing one fails here rather than skipping
import numpy as np
import pytest
import torch
import transformers
from omegaconf import OmegaConf
from safetensors import safe_open
from safetensors.numpy import load_file
from scipy import stats

import initreg
from initreg import recipes
from initreg.interop.torch import initialize
from initreg.model_specs import model_spec

KS_ALPHA = 1e-3
KS_SAMPLE = 100_000  # elements per tensor compared by KS (a fixed random subset of a larger tensor)


def as_numpy(model: torch.nn.Module) -> dict[str, np.ndarray]:
    return {name: p.detach().numpy().copy() for name, p in model.named_parameters()}


def random_part(values: np.ndarray) -> np.ndarray:
    return values[values != 0]


def ks_p(a: np.ndarray, b: np.ndarray) -> float:
    pick = np.random.default_rng(0)
    a, b = (x if x.size <= KS_SAMPLE else pick.choice(x, KS_SAMPLE, replace=False) for x in (a.ravel(), b.ravel()))
    return float(stats.ks_2samp(a, b).pvalue)


def compare(
    ours: Mapping[str, np.ndarray],
    reference: Mapping[str, np.ndarray],
    other_seed: Mapping[str, np.ndarray],
    target_std: Callable[[str], float | None],
    bound: Callable[[str], float | None] = lambda name: None,
) -> int:
    """Checks every tensor as the module docstring says; returns the number of random tensors compared."""
    assert ours.keys() == reference.keys()
    failures = {"ours": [], "reference": []}
    compared = 0
    for name, ref in reference.items():
        mine = ours[name]
        assert mine.shape == ref.shape, name
        zeroed = (ref == 0) & (other_seed[name] == 0)  # torch's normal_ gives an exact 0 once in ~10^6 draws
        np.testing.assert_array_equal(mine == 0, zeroed, err_msg=f"zero mask of {name}")
        for constant in (0.0, 1.0):
            assert np.all(mine == constant) == np.all(ref == constant), f"{name} all {constant}"
        if np.all(ref == 1) or not np.any(ref):
            continue
        compared += 1
        part, ref_part, other_part = random_part(mine), random_part(ref), random_part(other_seed[name])
        for who, sample in (("ours", part), ("reference", other_part)):
            if ks_p(sample, ref_part) < KS_ALPHA:
                failures[who].append(name)
        target = target_std(name)
        assert target is not None, f"no target std for {name}"
        tolerance = max(0.01, 4 / math.sqrt(2 * part.size))
        for sample in (part, ref_part):
            assert abs(float(sample.std()) / target - 1) <= tolerance, (name, float(sample.std()), target)
        limit = bound(name)
        if limit is not None:
            for sample in (part, ref_part):
                assert limit * 0.99 <= float(np.abs(sample).max()) <= limit * (1 + 1e-6), (name, limit)
    assert len(failures["ours"]) <= len(failures["reference"]) + 1, failures
    return compared


# --- Hugging Face GPT-2 small -------------------------------------------------------------------


def gpt2(seed: int, **config: object) -> torch.nn.Module:
    torch.manual_seed(seed)
    return transformers.GPT2LMHeadModel(transformers.GPT2Config(**config))


def test_hf_gpt2_is_gpt2_small_as_transformers_initializes_it() -> None:
    model = gpt2(0)
    reference, other = as_numpy(model), as_numpy(gpt2(1))
    config = model.config
    recipe = recipes.load("hf_gpt2", model)
    assert recipe.sources == {"n_layer": "model.config.n_layer", "initializer_range": "model.config.initializer_range"}
    entries = initialize(model, recipe.rules, seed=3)
    assert [entry.aliases for entry in entries if entry.aliases] == [("lm_head.weight",)]

    def target(name: str) -> float:
        scale = math.sqrt(2 * config.n_layer) if name.endswith("c_proj.weight") else 1.0
        return config.initializer_range / scale

    assert compare(as_numpy(model), reference, other, target) == 2 + 4 * config.n_layer


# --- Hugging Face base init: a small Llama, Mistral and Qwen2 -------------------------------------

SMALL = {
    "vocab_size": 1000, "hidden_size": 64, "intermediate_size": 172, "num_hidden_layers": 2,
    "num_attention_heads": 4, "num_key_value_heads": 2, "pad_token_id": 7,
}  # fmt: skip
FAMILIES = {"llama": "Llama", "mistral": "Mistral", "qwen2": "Qwen2"}  # Qwen2 has q, k and v biases


def causal_lm(family: str, seed: int) -> torch.nn.Module:
    torch.manual_seed(seed)
    prefix = FAMILIES[family]
    config = getattr(transformers, f"{prefix}Config")(**SMALL)
    return getattr(transformers, f"{prefix}ForCausalLM")(config)


@pytest.mark.parametrize("family", FAMILIES)
def test_hf_default_is_a_small_causal_lm_as_transformers_initializes_it(family: str) -> None:
    model = causal_lm(family, 0)
    reference, other = as_numpy(model), as_numpy(causal_lm(family, 1))
    assert not reference["model.embed_tokens.weight"][7].any()  # the padding row the recipe must zero
    recipe = recipes.load("hf_default", model)
    assert recipe.variables["pad_token_id"] == 7 and recipe.sources["pad_token_id"] == "model.config.pad_token_id"
    initialize(model, recipe.rules, seed=3)
    compared = compare(as_numpy(model), reference, other, lambda name: model.config.initializer_range)
    assert compared == 2 + 7 * SMALL["num_hidden_layers"]
    assert any(name.endswith(".bias") for name in reference) == (family == "qwen2")


def test_hf_default_without_a_padding_token_zeroes_no_row() -> None:
    values = initreg.init_tree(
        {"model.embed_tokens.weight": (50, 8), "model.norm.weight": (8,)},
        recipes.load("hf_default", initializer_range=0.02, pad_token_id=None).rules,
    )
    assert np.all(values["model.embed_tokens.weight"] != 0)


# --- every transformers family, by recipes.for_model ----------------------------------------------

DECODER = {**SMALL, "head_dim": 16}
MOE = {"num_local_experts": 4, "num_experts": 4, "num_experts_per_tok": 2, "moe_intermediate_size": 32}
ENCODER = {
    "vocab_size": 1000, "hidden_size": 64, "num_hidden_layers": 2, "num_attention_heads": 4,
    "intermediate_size": 128, "max_position_embeddings": 64,
}  # fmt: skip
FAMILY_MODELS: dict[str, Callable[[], torch.nn.Module]] = {
    **{
        family: (lambda family=family: transformers.AutoModelForCausalLM.from_config(
            transformers.AutoConfig.for_model(family, **DECODER)))
        for family in ("llama", "mistral", "qwen2", "qwen3", "phi3", "gemma", "gemma2", "gemma3_text")
    },
    **{
        family: (lambda family=family: transformers.AutoModelForCausalLM.from_config(
            transformers.AutoConfig.for_model(family, **DECODER, **MOE, shared_expert_intermediate_size=48)))
        for family in ("mixtral", "qwen2_moe", "olmoe")
    },
    "gpt2": lambda: transformers.GPT2LMHeadModel(transformers.GPT2Config(
        n_layer=3, n_embd=64, n_head=4, vocab_size=1000, n_positions=64, bos_token_id=0, eos_token_id=0)),
    "opt": lambda: transformers.OPTForCausalLM(transformers.OPTConfig(
        vocab_size=1000, hidden_size=64, num_hidden_layers=2, ffn_dim=128, num_attention_heads=4,
        max_position_embeddings=64, word_embed_proj_dim=64)),
    "bert": lambda: transformers.BertForMaskedLM(transformers.BertConfig(**ENCODER)),
    "roberta": lambda: transformers.RobertaForMaskedLM(transformers.RobertaConfig(**ENCODER)),
    "vit": lambda: transformers.ViTForImageClassification(transformers.ViTConfig(
        hidden_size=64, num_hidden_layers=2, num_attention_heads=4, intermediate_size=128, image_size=32,
        patch_size=8, num_labels=10)),
    "t5": lambda: transformers.T5ForConditionalGeneration(transformers.T5Config(
        vocab_size=1000, d_model=64, d_kv=16, d_ff=128, num_layers=2, num_heads=4, tie_word_embeddings=False)),
}  # fmt: skip
FAMILY_RECIPES = {
    "gpt2": "hf_gpt2", "gemma": "hf_gemma", "gemma2": "hf_gemma", "gemma3_text": "hf_gemma", "bert": "hf_bert",
    "roberta": "hf_roberta", "vit": "hf_vit", "t5": "hf_t5",
}  # fmt: skip


def family_model(family: str, seed: int) -> torch.nn.Module:
    torch.manual_seed(seed)
    return FAMILY_MODELS[family]()


def family_references(family: str) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
    """The family's own init at seed 0 (the reference) and seed 1 (the null)."""
    return as_numpy(family_model(family, 0)), as_numpy(family_model(family, 1))


def reference_std(reference: Mapping[str, np.ndarray]) -> Callable[[str], float]:
    return lambda name: float(random_part(reference[name]).std())


@pytest.mark.parametrize("family", FAMILY_MODELS)
def test_each_transformers_family_gets_its_own_init_from_for_model(family: str) -> None:
    reference, other = family_references(family)
    model = family_model(family, 2)
    recipe = recipes.for_model(model)
    assert recipe.name == FAMILY_RECIPES.get(family, "hf_default")
    initialize(model, recipe.rules, seed=3)
    ours = as_numpy(model)
    compared = compare(ours, reference, other, reference_std(reference))
    assert compared >= 8
    if family.startswith("gemma"):
        norms = [name for name in ours if name.endswith("norm.weight")]
        assert len(norms) >= 5 and not any(ours[name].any() for name in norms)
    padding = getattr(model.config, "pad_token_id", None)
    if padding is not None and family != "t5":
        (embedding,) = [
            name for name in ours if name.endswith(("embed_tokens.weight", "word_embeddings.weight", "wte.weight"))
        ]
        assert not ours[embedding][padding].any() and np.all(ours[embedding][padding + 1] != 0)


def test_the_family_comparison_fails_gemma_with_ones_for_its_norms() -> None:
    reference, other = family_references("gemma")
    model = family_model("gemma", 2)
    rules = recipes.for_model(model).rules
    initialize(model, [*rules, *initreg.tree.parse_rules({"ones": {"match": "*norm.weight", "init": "ones"}})], seed=3)
    with pytest.raises(AssertionError, match="norm.weight"):
        compare(as_numpy(model), reference, other, reference_std(reference))


@pytest.mark.parametrize(
    ("config", "model_type"),
    [
        (transformers.DistilBertConfig(), "distilbert"),
        (transformers.Gemma3Config(), "gemma3"),
        ({"model_type": "my_model"}, "my_model"),
    ],
)
def test_a_family_no_recipe_serves_is_refused_naming_the_known_ones(config: object, model_type: str) -> None:
    with pytest.raises(initreg.InitregError) as raised:
        recipes.for_model({"x.weight": (2, 2)}, config=config)
    assert str(raised.value).startswith(f"no recipe serves transformers model type {model_type!r}; valid: 'bert', ")
    assert "'gemma3_text'" in str(raised.value) and "\n" not in str(raised.value)


def test_a_recipe_that_does_not_fit_the_model_is_refused_without_a_hint_to_ignore_it() -> None:
    spec = {"bert.embeddings.word_embeddings.weight": (10, 4), "bert.embeddings.LayerNorm.weight": (4,)}
    with pytest.raises(initreg.InitregError) as raised:
        recipes.load("hf_default", spec, initializer_range=0.02, pad_token_id=0)
    assert str(raised.value).startswith(
        "recipe 'hf_default' does not fit this model: rule(s) 'norm_scales' ('*norm.weight'), 'padding_row' "
        "('*embed_tokens.weight') match none of its parameters"
    )
    assert "allow_unused_rules" not in str(raised.value)


def test_for_model_without_a_model_type_asks_for_the_recipe_by_name() -> None:
    with pytest.raises(initreg.InitregError, match="^for_model needs a transformers model .*'hf_bert', 'hf_default'"):
        recipes.for_model(olmo_spec())


def test_a_recipe_given_a_family_it_does_not_serve_names_the_one_that_does() -> None:
    gemma = family_model("gemma", 0)
    with pytest.raises(
        initreg.InitregError,
        match="^recipe 'hf_default' serves transformers model types 'llama'.*not 'gemma'; recipe 'hf_gemma' serves it$",
    ):
        recipes.load("hf_default", gemma)
    bert = family_model("bert", 0)
    with pytest.raises(initreg.InitregError, match="not 'bert'; recipe 'hf_bert' serves it$"):
        recipes.load("hf_default", bert)


def test_t5_refuses_a_head_it_does_not_know() -> None:
    torch.manual_seed(0)
    model = transformers.T5ForSequenceClassification(transformers.T5Config(
        vocab_size=100, d_model=16, d_kv=4, d_ff=32, num_layers=1, num_heads=4))  # fmt: skip
    recipe = recipes.for_model(model)
    with pytest.raises(initreg.InitregError, match="classification_head.*match no rule|no rule.*classification_head"):
        initialize(model, recipe.rules, seed=0)


# --- muP GPT-2 (mup, as mutransformers applies it) -------------------------------------------------

MUP_BASE, MUP_DELTA = 32, 48


def mup_gpt2(width: int, seed: int = 0) -> torch.nn.Module:
    torch.manual_seed(seed)
    config = transformers.GPT2Config(
        n_embd=width, n_head=4, n_layer=2, vocab_size=512, n_positions=64, tie_word_embeddings=False,
        bos_token_id=0, eos_token_id=0,
    )  # fmt: skip
    model = transformers.GPT2LMHeadModel(config)
    model.lm_head = mup.MuReadout(width, config.vocab_size, bias=False)  # as mutransformers' GPT-2 has
    return model


def mup_reference(width: int, seed: int) -> tuple[torch.nn.Module, dict[str, np.ndarray]]:
    """mutransformers' GPT2PreTrainedModel._init_weights(readout_zero_init=True, query_zero_init=True):
    Conv1D weights mup.init.normal_(std=initializer_range), biases zero, embeddings normal_(std), LayerNorm
    one/zero, c_attn.weight[:, :fanout // 3] = 0, the readout zero, and every c_proj weight
    mup.init.normal_(std=initializer_range / sqrt(2 n_layer)).
    """
    model = mup_gpt2(width, seed)
    mup.set_base_shapes(model, mup_gpt2(MUP_BASE), delta=mup_gpt2(MUP_DELTA))
    config = model.config
    torch.manual_seed(seed + 100)
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, transformers.pytorch_utils.Conv1D):
                mup.init.normal_(module.weight, std=config.initializer_range)
                module.bias.zero_()
            elif isinstance(module, torch.nn.Embedding):
                module.weight.normal_(std=config.initializer_range)
            elif isinstance(module, torch.nn.LayerNorm):
                module.weight.fill_(1.0)
                module.bias.zero_()
        model.lm_head.weight.zero_()
        for name, parameter in model.named_parameters():
            if name.endswith("c_attn.weight"):
                parameter[:, : parameter.shape[1] // 3] = 0
            if name.endswith("c_proj.weight"):
                mup.init.normal_(parameter, std=config.initializer_range / math.sqrt(2 * config.n_layer))
    return model, as_numpy(model)


@pytest.mark.parametrize("width", [64, 128])
def test_mup_gpt2_is_what_mup_gives_at_two_widths(width: int) -> None:
    model, reference = mup_reference(width, 0)
    _, other = mup_reference(width, 1)
    config = model.config
    recipe = recipes.load("mup_gpt2", model, base_d_model=MUP_BASE)
    assert recipe.variables["d_model"] == width and recipe.sources["d_model"] == "model.config.n_embd"
    initialize(model, recipe.rules, seed=3)
    shrink = math.sqrt(MUP_BASE / width)  # mup's width_mult ** -0.5 for a hidden matrix

    def target(name: str) -> float:
        if name.endswith("c_proj.weight"):
            return config.initializer_range / math.sqrt(2 * config.n_layer) * shrink
        if name.endswith(("c_attn.weight", "c_fc.weight")):
            return config.initializer_range * shrink
        return config.initializer_range

    ours = as_numpy(model)
    assert not ours["lm_head.weight"].any()
    query, rest = (
        ours["transformer.h.0.attn.c_attn.weight"][:, :width],
        ours["transformer.h.0.attn.c_attn.weight"][:, width:],
    )
    assert not query.any() and np.all(rest != 0)
    assert compare(ours, reference, other, target) == 2 + 4 * config.n_layer


# --- torchtitan's Llama 3 (re-implemented) -------------------------------------------------------

TITAN = {"dim": 128, "n_layers": 3, "vocab": 500, "ffn": 384}


def titan_spec() -> dict[str, tuple[int, ...]]:
    dim, ffn = TITAN["dim"], TITAN["ffn"]
    spec = {"tok_embeddings.weight": (TITAN["vocab"], dim)}
    for layer in range(TITAN["n_layers"]):
        for name in ("wq", "wk", "wv", "wo"):
            spec[f"layers.{layer}.attention.{name}.weight"] = (dim, dim)
        spec |= {
            f"layers.{layer}.feed_forward.w1.weight": (ffn, dim),
            f"layers.{layer}.feed_forward.w2.weight": (dim, ffn),
            f"layers.{layer}.feed_forward.w3.weight": (ffn, dim),
            f"layers.{layer}.attention_norm.weight": (dim,),
            f"layers.{layer}.ffn_norm.weight": (dim,),
        }
    return spec | {"norm.weight": (dim,), "output.weight": (TITAN["vocab"], dim)}


def titan_std(name: str) -> float:
    """torchtitan/models/llama3/model.py: weight_init_std = 0.02 / (2 * (layer_id + 1)) ** 0.5 (depth_init)
    for wo, w2, w3; 0.02 for wq, wk, wv, w1; 1.0 for tok_embeddings; final_out_std = dim ** -0.5 for output."""
    if name == "tok_embeddings.weight":
        return 1.0
    if name == "output.weight":
        return TITAN["dim"] ** -0.5
    if name.endswith(("wo.weight", "w2.weight", "w3.weight")):
        return 0.02 / (2 * (int(name.split(".")[1]) + 1)) ** 0.5
    return 0.02


def titan_reference(seed: int) -> dict[str, np.ndarray]:
    """Transformer.init_weights: nn.init.normal_(tok_embeddings.weight); trunc_normal_(w, mean=0, std) with
    torch's default a=-2, b=2 for the block linears; norms reset to ones; and for the output layer
    trunc_normal_(std=final_out_std, a=-cutoff_factor * final_out_std, b=cutoff_factor * final_out_std),
    cutoff_factor = 3."""
    torch.manual_seed(seed)
    values = {}
    for name, shape in titan_spec().items():
        tensor = torch.empty(shape)
        std = titan_std(name)
        if name.endswith("norm.weight"):
            torch.nn.init.ones_(tensor)
        elif name == "tok_embeddings.weight":
            torch.nn.init.normal_(tensor)
        elif name == "output.weight":
            torch.nn.init.trunc_normal_(tensor, mean=0.0, std=std, a=-3 * std, b=3 * std)
        else:
            torch.nn.init.trunc_normal_(tensor, mean=0.0, std=std)
        values[name] = tensor.numpy()
    return values


def truncated_std(std: float, cutoff: float) -> float:
    return float(stats.truncnorm(-cutoff, cutoff, scale=std).std())


def test_torchtitan_llama3_is_torchtitans_depth_init() -> None:
    recipe = recipes.load("torchtitan_llama3", titan_spec())
    assert recipe.variables["n_layers"] == TITAN["n_layers"]
    ours = initreg.init_tree(titan_spec(), recipe.rules, seed=3, layout="torch")

    def target(name: str) -> float:
        std = titan_std(name)
        return truncated_std(std, 3.0) if name == "output.weight" else std

    def bound(name: str) -> float | None:
        return 3 * titan_std(name) if name == "output.weight" else None

    compared = compare(ours, titan_reference(0), titan_reference(1), target, bound)
    assert compared == 2 + 7 * TITAN["n_layers"]


# --- OLMo (re-implemented) ----------------------------------------------------------------------

OLMO = {"d_model": 128, "n_layers": 3, "vocab": 700, "hidden": 512}


def olmo_spec() -> dict[str, tuple[int, ...]]:
    d, hidden = OLMO["d_model"], OLMO["hidden"]
    spec = {"transformer.wte.weight": (OLMO["vocab"], d)}
    for layer in range(OLMO["n_layers"]):
        block = f"transformer.blocks.{layer}"
        spec |= {
            f"{block}.att_proj.weight": (3 * d, d),
            f"{block}.attn_out.weight": (d, d),
            f"{block}.q_norm.weight": (d,),
            f"{block}.k_norm.weight": (d,),
            f"{block}.attn_norm.weight": (d,),
            f"{block}.ff_proj.weight": (hidden, d),
            f"{block}.ff_out.weight": (d, hidden // 2),
            f"{block}.ff_norm.weight": (d,),
        }
    return spec | {"transformer.ln_f.weight": (d,), "transformer.ff_out.weight": (OLMO["vocab"], d)}


def olmo_std(name: str, init_fn: str) -> float:
    """olmo/model.py with init_fn "normal": init_std (0.02) everywhere. With "mitchell":
    in_std = 1 / sqrt(d_model) (att_proj, ff_proj, wte, the output ff_out),
    attn_out_std = 1 / sqrt(2 * d_model * (layer_id + 1)),
    ff_out_std = 1 / sqrt(2 * ff_out.in_features * (layer_id + 1))."""
    if init_fn == "normal":
        return 0.02
    d = OLMO["d_model"]
    if ".blocks." in name and name.endswith(("attn_out.weight", "ff_out.weight")):
        layer = int(name.split(".")[2]) + 1
        width = d if name.endswith("attn_out.weight") else OLMO["hidden"] // 2
        return 1 / math.sqrt(2 * width * layer)
    return 1 / math.sqrt(d)


def olmo_reference(init_fn: str, seed: int) -> dict[str, np.ndarray]:
    """olmo/initialization.py, init_normal(module, std, init_cutoff_factor): with a cutoff factor,
    nn.init.trunc_normal_(module.weight, mean=0.0, std=std, a=-cutoff_value, b=cutoff_value),
    cutoff_value = init_cutoff_factor * std (3 for both schemes here); norms reset to ones."""
    torch.manual_seed(seed)
    values = {}
    for name, shape in olmo_spec().items():
        tensor = torch.empty(shape)
        if name.endswith(("norm.weight", "ln_f.weight")):
            torch.nn.init.ones_(tensor)
        else:
            std = olmo_std(name, init_fn)
            torch.nn.init.trunc_normal_(tensor, mean=0.0, std=std, a=-3 * std, b=3 * std)
        values[name] = tensor.numpy()
    return values


@pytest.mark.parametrize(("recipe_name", "init_fn"), [("olmo2", "normal"), ("olmo_mitchell", "mitchell")])
def test_olmo_recipes_are_olmos_init_normal(recipe_name: str, init_fn: str) -> None:
    ours = initreg.init_tree(olmo_spec(), recipes.load(recipe_name, olmo_spec()).rules, seed=3, layout="torch")
    compared = compare(
        ours, olmo_reference(init_fn, 0), olmo_reference(init_fn, 1),
        lambda name: truncated_std(olmo_std(name, init_fn), 3.0), lambda name: 3 * olmo_std(name, init_fn),
    )  # fmt: skip
    assert compared == 2 + 4 * OLMO["n_layers"]


# --- loading -------------------------------------------------------------------------------------


STRUCTURAL = {  # what each shipped recipe needs given when no model is passed
    "hf_bert": {"initializer_range": 0.02, "pad_token_id": 0},
    "hf_default": {"initializer_range": 0.02, "pad_token_id": None},
    "hf_gemma": {"initializer_range": 0.02, "pad_token_id": 0},
    "hf_gpt2": {"initializer_range": 0.02, "n_layer": 2},
    "hf_roberta": {"initializer_range": 0.02, "pad_token_id": 1},
    "hf_t5": {"initializer_factor": 1.0, "d_model": 64, "d_kv": 16, "num_heads": 4, "d_ff": 128},
    "hf_vit": {"initializer_range": 0.02},
    "mup_gpt2": {"initializer_range": 0.02, "n_layer": 2, "d_model": 64, "base_d_model": 32},
    "olmo2": {},
    "olmo_mitchell": {"d_model": 64, "block_group_size": 1},
    "torchtitan_llama3": {"n_layers": 2},
    "timm_vit": {"in_chans": 3, "patch_h": 16, "patch_w": 16},
    "timm_vit_jax": {},
    "torchvision_resnet": {"fc_fan_in": 512, "block_kernel": 3},
}


def test_every_shipped_recipe_loads_and_names_its_reference() -> None:
    assert recipes.names() == sorted(STRUCTURAL)
    for name in recipes.names():
        recipe = recipes.load(name, **STRUCTURAL[name])
        assert recipe.reference and recipe.rules
        assert set(recipe.sources) == set(recipe.variables)


def gpt2_on_meta(**config: object) -> torch.nn.Module:
    with torch.device("meta"):
        return transformers.GPT2LMHeadModel(transformers.GPT2Config(**config))


@pytest.mark.parametrize("n_layer", [2, 24])
def test_hf_gpt2_reads_the_depth_of_the_model_it_is_given(n_layer: int) -> None:
    model = gpt2_on_meta(n_layer=n_layer, n_embd=32, n_head=2, initializer_range=0.03)
    recipe = recipes.load("hf_gpt2", model)
    assert recipe.variables == {"initializer_range": 0.03, "n_layer": n_layer}
    entries = initreg.plan(dict(model.named_parameters()), recipe.rules, layout="torch")
    stds = {entry.initializer.stddev for entry in entries if entry.path.endswith("c_proj.weight")}
    assert stds == {0.03 / math.sqrt(2 * n_layer)}
    shown = recipe.describe()
    assert shown == (
        f"recipe 'hf_gpt2': initializer_range=0.03 (model.config.initializer_range), "
        f"n_layer={n_layer} (model.config.n_layer)"
    )


def test_structural_variables_are_read_from_a_parameter_spec() -> None:
    olmo = recipes.load("olmo_mitchell", olmo_spec())
    assert olmo.variables["d_model"] == OLMO["d_model"]
    assert olmo.sources == {
        "d_model": "tree: transformer.wte.weight.shape[1]",
        "init_cutoff_factor": "default, a hyper-parameter",
    }
    titan = recipes.load("torchtitan_llama3", titan_spec())
    assert titan.sources["n_layers"] == f"tree: {TITAN['n_layers']} blocks layers.{{i}}"


def test_a_given_value_that_contradicts_the_model_is_an_error_naming_both() -> None:
    model = gpt2_on_meta(n_layer=2, n_embd=32, n_head=2)
    with pytest.raises(
        initreg.InitregError,
        match=r"^recipe 'hf_gpt2': n_layer=12 was given but the model has 2 \(model.config.n_layer\)$",
    ):
        recipes.load("hf_gpt2", model, n_layer=12)
    assert recipes.load("hf_gpt2", model, n_layer=2).sources["n_layer"] == "model.config.n_layer"
    with pytest.raises(
        initreg.InitregError,
        match=r"'d_model' is 64 by model.config.d_model but 128 by tree: transformer.wte.weight.shape\[1\]$",
    ):
        recipes.load("olmo_mitchell", olmo_spec(), config={"d_model": 64})


def test_a_config_and_a_tree_that_disagree_are_an_error_naming_both() -> None:
    spec = {f"h.{i}.attn.c_proj.weight": (8, 8) for i in range(3)}
    with pytest.raises(
        initreg.InitregError, match=r"'n_layer' is 2 by model.config.n_layer but 3 by tree: 3 blocks h.\{i\}"
    ):
        recipes.load("hf_gpt2", spec, config={"initializer_range": 0.02, "n_layer": 2})
    gappy = {"layers.0.attention.wo.weight": (8, 8), "layers.2.attention.wo.weight": (8, 8), "output.weight": (8, 8)}
    with pytest.raises(initreg.InitregError, match="blocks layers.{i}.* are not numbered 0 ... n-1: 1 is missing"):
        recipes.load("torchtitan_llama3", gappy)


@pytest.mark.parametrize(
    ("name", "given", "variable", "readers"),
    [
        ("hf_gpt2", {"initializer_range": 0.02}, "n_layer", "model.config.n_layer or the number of blocks h.{i}"),
        ("hf_gpt2", {"n_layer": 2}, "initializer_range", "model.config.initializer_range"),
        ("hf_default", {"initializer_range": 0.02}, "pad_token_id", "model.config.pad_token_id"),
        ("hf_default", {"pad_token_id": 0}, "initializer_range", "model.config.initializer_range/init_std"),
        ("hf_t5", {"d_model": 8, "d_kv": 2, "num_heads": 4, "d_ff": 16}, "initializer_factor",
         "model.config.initializer_factor"),
        ("olmo_mitchell", {}, "d_model", "model.config.d_model or dimension 1 of *wte.weight"),
        ("torchtitan_llama3", {}, "n_layers", "model.config.n_layers or the number of blocks layers.{i}"),
    ],
)  # fmt: skip
def test_a_structural_variable_neither_read_nor_given_is_an_error_naming_recipe_and_variable(
    name: str, given: dict[str, object], variable: str, readers: str
) -> None:
    with pytest.raises(initreg.InitregError) as raised:
        recipes.load(name, **given)
    assert str(raised.value) == (
        f"recipe {name!r} needs variable {variable!r}, read from {readers}: "
        f"pass the model (load({name!r}, model)) or give {variable}=..."
    )
    with pytest.raises(
        initreg.InitregError, match="^recipe 'mup_gpt2' needs variable 'base_d_model', which no model holds"
    ):
        recipes.load("mup_gpt2", gpt2_on_meta(n_layer=2, n_embd=32, n_head=2))


def test_phi3_default_config_gets_its_padding_row_zeroed() -> None:
    with torch.device("meta"):
        model = transformers.Phi3ForCausalLM(
            transformers.Phi3Config(
                vocab_size=32064, hidden_size=32, intermediate_size=64, num_hidden_layers=1, num_attention_heads=2
            )
        )
    recipe = recipes.load("hf_default", model)
    assert recipe.variables["pad_token_id"] == model.config.pad_token_id == 32000
    entries = initreg.plan(dict(model.named_parameters()), recipe.rules, layout="torch")
    (embedding,) = [entry for entry in entries if entry.path == "model.embed_tokens.weight"]
    assert embedding.rule == "weights+padding_row"


def test_one_recipe_serves_every_depth() -> None:
    spec = {f"h.{i}.attn.c_proj.weight": (16, 16) for i in range(3)}
    for n_layer in (3, 48):
        recipe = recipes.load("hf_gpt2", initializer_range=0.02, n_layer=n_layer)
        entries = initreg.plan(spec, recipe.rules, allow_unused_rules=True)
        assert {entry.initializer.stddev for entry in entries} == {0.02 / math.sqrt(2 * n_layer)}


def test_a_bad_recipe_name_or_variable_is_an_error_naming_the_valid_ones() -> None:
    with pytest.raises(
        initreg.InitregError, match="unknown recipe 'hf_gtp2'; valid: 'hf_bert', 'hf_default', 'hf_gemma', 'hf_gpt2'"
    ):
        recipes.load("hf_gtp2")
    with pytest.raises(initreg.InitregError, match="no variable 'n_layers'; valid: 'initializer_range', 'n_layer'"):
        recipes.load("hf_gpt2", n_layers=3)


def test_the_comparison_fails_a_scheme_that_differs() -> None:
    """Without depth init (one std for every layer), torchtitan's wo/w2/w3 of all but one layer differ."""
    recipe = recipes.load("torchtitan_llama3", titan_spec(), depth_init=0)
    ours = initreg.init_tree(titan_spec(), recipe.rules, seed=3, layout="torch")
    with pytest.raises(AssertionError):
        compare(ours, titan_reference(0), titan_reference(1), titan_std)


# --- the command and the model configs -----------------------------------------------------------


def run_command(cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    command = shutil.which("initreg", path=str(Path(sys.executable).parent))
    assert command is not None
    env = {k: v for k, v in os.environ.items() if k != "HYDRA_FULL_ERROR"}
    return subprocess.run([command, *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=120)


def test_the_command_uses_the_recipe_and_the_model_variables(tmp_path: Path) -> None:
    done = run_command(tmp_path, "recipe=hf_gpt2", "model=gpt2_small", "model.layers=2", "dry_run=true")
    assert done.returncode == 0, done.stderr
    assert "recipe 'hf_gpt2': initializer_range=0.02 (given), n_layer=2 (tree: 2 blocks h.{i})" in done.stdout
    rows = {line.split("│")[1].strip(): line for line in done.stdout.splitlines() if line.count("│") > 4}
    assert "0.01 " in rows["h.1.mlp.c_proj.weight"] and "residual_projections" in rows["h.1.mlp.c_proj.weight"]
    assert "0.02 " in rows["h.1.mlp.c_fc.weight"] and "ones()" in rows["h.0.ln_1.weight"]
    assert not list(tmp_path.iterdir())


def test_the_command_writes_what_init_tree_makes_with_the_recipe(tmp_path: Path) -> None:
    done = run_command(tmp_path, "recipe=torchtitan_llama3", "model=llama3_debug", "model.layers=2", "seed=5")
    assert done.returncode == 0, done.stderr
    path = tmp_path / "llama3_debug-torchtitan_llama3-seed5.safetensors"
    written = load_file(path)
    spec = {name: tuple(array.shape) for name, array in written.items()}
    expected = initreg.init_tree(spec, recipes.load("torchtitan_llama3", spec).rules, seed=5, layout="torch")
    assert written.keys() == expected.keys() and len(written) == 3 + 2 * 9
    for name, array in expected.items():
        np.testing.assert_array_equal(written[name], array, err_msg=name)
    with safe_open(path, "np") as file:
        made_by = json.loads(file.metadata()["initreg"])
    assert made_by["rules"]["output"]["init"]["stddev"] == "=fan_in ** -0.5"
    assert made_by["recipe"] == "torchtitan_llama3" and made_by["variables"]["n_layers"] == 2


def test_the_command_reads_the_config_json_beside_a_checkpoint(tmp_path: Path) -> None:
    """`model=file` of a save_pretrained folder: the recipe reads initializer_range (0.05) and n_layer from its
    config.json and says so; the file written equals init_tree with those values."""
    config = transformers.GPT2Config(
        n_embd=32,
        n_layer=2,
        n_head=2,
        vocab_size=100,
        n_positions=16,
        bos_token_id=0,
        eos_token_id=0,
        initializer_range=0.05,
    )
    transformers.GPT2Model(config).save_pretrained(tmp_path / "run")
    done = run_command(
        tmp_path, "model=file", "model.path=run/model.safetensors", "model.layout=torch", "recipe=hf_gpt2", "seed=1",
        "output=out.safetensors",
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert f"the recipe reads model.config from {Path('run', 'config.json')}" in done.stderr
    assert "initializer_range=0.05 (model.config.initializer_range), n_layer=2 (model.config.n_layer)" in done.stdout
    written = load_file(tmp_path / "out.safetensors")
    spec = {name: tuple(array.shape) for name, array in written.items()}
    recipe = recipes.load("hf_gpt2", spec, initializer_range=0.05)
    expected = initreg.init_tree(spec, recipe.rules, seed=1, layout="torch")
    for name, array in expected.items():
        np.testing.assert_array_equal(written[name], array, err_msg=name)
    assert np.std(written["h.0.mlp.c_fc.weight"]) > 0.04


def test_a_bad_expression_on_the_command_line_is_one_line_naming_the_rule(tmp_path: Path) -> None:
    done = run_command(tmp_path, "recipe=hf_gpt2", "model=gpt2_small", 'recipe.rules.weights.init.stddev="=nope * 2"')
    assert done.returncode == 2 and done.stderr.count("\n") == 1 and not list(tmp_path.iterdir())
    assert "recipe 'hf_gpt2': rule 'weights': expression '=nope * 2' uses unknown name 'nope'" in done.stderr


def test_an_unknown_recipe_is_one_line_with_the_valid_ones(tmp_path: Path) -> None:
    done = run_command(tmp_path, "recipe=hf_gtp2", "model=gpt2_small")
    assert done.returncode == 2 and done.stderr.count("\n") == 1
    assert "unknown recipe 'hf_gtp2'; did you mean 'hf_gpt2' or" in done.stderr and "torchtitan_llama3" in done.stderr


def model_config_spec(name: str) -> dict[str, tuple[int, ...]]:
    config = OmegaConf.load(str(files("initreg.configs.command") / "model" / f"{name}.yaml"))
    model = OmegaConf.to_container(config.get("model", config), resolve=False)
    assert isinstance(model, dict)
    count = model["layers"]
    model["repeat"] = {prefix: {**block, "count": count} for prefix, block in model["repeat"].items()}
    spec, _ = model_spec(model)
    return {path: tuple(shape) for path, shape in initreg.tree.flatten(spec).items()}


@pytest.mark.parametrize(
    ("name", "build"),
    [
        ("llama_small", lambda: transformers.LlamaForCausalLM(transformers.LlamaConfig(
            vocab_size=32000, hidden_size=256, intermediate_size=688, num_hidden_layers=4, num_attention_heads=8,
            num_key_value_heads=4))),
        ("gpt2_small_untied", lambda: transformers.GPT2LMHeadModel(transformers.GPT2Config(tie_word_embeddings=False))),
    ],
)  # fmt: skip
def test_the_new_model_configs_have_the_shapes_of_the_real_models(name: str, build: Callable[[], object]) -> None:
    with torch.device("meta"):
        model = build()
    shapes = {path: tuple(p.shape) for path, p in model.named_parameters(remove_duplicate=False)}
    assert model_config_spec(name) == shapes


def test_a_bad_recipe_config_is_an_error_naming_the_recipe() -> None:
    with pytest.raises(initreg.InitregError, match="recipe 'mine': rule 'w': .*'lecun_normall'"):
        recipes.from_config("mine", {"rules": {"w": {"match": "*", "init": "lecun_normall"}}, "variables": {}})
    with pytest.raises(initreg.InitregError, match="recipe 'mine' has unknown key 'model'; valid: 'reference'"):
        recipes.from_config("mine", {"rules": {}, "model": "gpt2_small"})
    with pytest.raises(initreg.InitregError, match="recipe 'mine' needs 'rules' and 'variables' mappings"):
        recipes.from_config("mine", {"rules": ["w"]})


def test_recipes_reading_fan_in_give_the_references_std_without_a_layout_argument():
    # OLMo's ff_out is [d_model, hidden] in torch's [out, in]: std 1/sqrt(2 * hidden * (i + 1)), i = 0 here;
    # torchtitan's output is [vocab, dim]: std dim ** -0.5 (truncated at 3 sigma, so measured by target_std)
    mitchell = recipes.load("olmo_mitchell", d_model=64, block_group_size=1)
    entries = initreg.plan({"transformer.blocks.0.ff_out.weight": (64, 256)}, mitchell.rules, allow_unused_rules=True)
    assert entries[0].initializer.stddev == pytest.approx(1 / math.sqrt(2 * 256))
    titan = recipes.load("torchtitan_llama3", n_layers=2)
    entries = initreg.plan({"output.weight": (1000, 64)}, titan.rules, allow_unused_rules=True)
    assert entries[0].initializer.stddev == pytest.approx(64**-0.5)


# --- ties ----------------------------------------------------------------------------------------


def small_gpt2(**config: object) -> transformers.GPT2Config:
    return transformers.GPT2Config(
        n_layer=2, n_embd=32, n_head=2, vocab_size=100, n_positions=32, bos_token_id=0, eos_token_id=0, **config
    )


def test_a_model_materialized_by_its_user_is_tied_again_as_it_declares() -> None:
    with torch.device("meta"):
        model = transformers.GPT2LMHeadModel(small_gpt2())
    model.to_empty(device="cpu")  # the user's own materialization: lm_head is a tensor of its own now
    assert model.lm_head.weight is not model.transformer.wte.weight
    recipe = recipes.load("hf_gpt2", model)
    entries = initialize(model, recipe.rules, seed=3)
    assert model.lm_head.weight is model.transformer.wte.weight
    assert [entry.aliases for entry in entries if entry.aliases] == [("lm_head.weight",)]
    torch.manual_seed(0)
    built = transformers.GPT2LMHeadModel(small_gpt2())
    initialize(built, recipe.rules, seed=3)
    for name, parameter in built.named_parameters(remove_duplicate=False):
        torch.testing.assert_close(model.get_parameter(name), parameter, rtol=0, atol=0, msg=name)


def test_an_untied_model_is_left_untied() -> None:
    torch.manual_seed(0)
    model = transformers.GPT2LMHeadModel(small_gpt2(tie_word_embeddings=False))
    initialize(model, recipes.load("hf_gpt2", model).rules, seed=3)
    assert model.lm_head.weight is not model.transformer.wte.weight
    assert not torch.equal(model.lm_head.weight, model.transformer.wte.weight)


def test_a_declared_tie_that_cannot_be_made_is_refused_and_nothing_is_written() -> None:
    torch.manual_seed(0)
    model = transformers.GPT2LMHeadModel(small_gpt2())
    model.lm_head = torch.nn.Linear(32, 101, bias=False)
    before = {name: p.detach().clone() for name, p in model.named_parameters()}
    with pytest.raises(initreg.InitregError) as raised:
        initialize(model, recipes.load("hf_gpt2", model).rules, seed=3)
    assert str(raised.value) == (
        "the model declares 'lm_head.weight' tied to 'transformer.wte.weight', but they are two tensors "
        "(shapes (101, 32) and (100, 32)) that cannot be tied again here; tie them first (model.tie_weights())"
    )
    for name, parameter in model.named_parameters():
        assert torch.equal(parameter, before[name]), name


# --- meta-device models with computed buffers ------------------------------------------------------

BUFFERED = [
    "llama",
    "gemma3_text",
    "bert",
]  # RoPE inv_freq; Gemma 3's per-layer-type inv_freq, embed_scale; position_ids


def forward(model: torch.nn.Module) -> torch.Tensor:
    ids = torch.tensor([[1, 5, 9, 2, 30, 4, 8, 3]])
    with torch.no_grad():
        return model.eval()(input_ids=ids).logits


@pytest.mark.parametrize("family", BUFFERED)
@pytest.mark.parametrize("materialized_by", ["initialize", "the user"])
def test_a_model_from_the_meta_device_computes_as_one_built_normally(family: str, materialized_by: str) -> None:
    with torch.device("meta"):
        model = FAMILY_MODELS[family]()
    assert any(True for _ in model.named_buffers())
    if materialized_by == "the user":
        model.to_empty(device="cpu")
        model.tie_weights()
    state = torch.random.get_rng_state()
    initialize(model, recipes.for_model(model).rules, seed=3)
    assert torch.equal(torch.random.get_rng_state(), state)  # the model's own buffer init draws nothing of ours
    built = family_model(family, 0)
    built.load_state_dict(model.state_dict())
    for name, buffer in built.named_buffers():
        torch.testing.assert_close(model.get_buffer(name), buffer, rtol=0, atol=0, msg=name)
    torch.testing.assert_close(forward(model), forward(built), rtol=0, atol=0)


def test_a_meta_module_whose_buffers_nothing_sets_is_refused_with_a_hint_that_applies() -> None:
    class Rotary(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.proj = torch.nn.Linear(4, 4)
            self.register_buffer("freqs_cis", torch.ones(4), persistent=False)

    with torch.device("meta"):
        model = Rotary()
    with pytest.raises(initreg.InitregError) as raised:
        initialize(model, {"all": {"match": "*", "init": "zeros"}})
    assert "buffers ['freqs_cis']" in str(raised.value) and "init_weights(buffer_device=...)" in str(raised.value)
    assert model.proj.weight.is_meta


def test_mup_gpt2_on_a_tied_gpt2_is_an_error_naming_both_rules_and_writes_nothing() -> None:
    torch.manual_seed(0)
    model = transformers.GPT2LMHeadModel(small_gpt2())
    before = model.transformer.wte.weight.detach().clone()
    recipe = recipes.load("mup_gpt2", model, base_d_model=16)
    with pytest.raises(initreg.InitregError) as raised:
        initialize(model, recipe.rules, seed=3)
    assert str(raised.value) == (
        "parameter 'transformer.wte.weight': its tied names get different initializers from rule 'weights' "
        "(by 'transformer.wte.weight') and rule 'readout' (by 'lm_head.weight'); set wins_ties: true on the rule "
        "that should win"
    )
    assert torch.equal(model.transformer.wte.weight, before)


TIED = {"wte": (10, 4), "head": (10, 4), "blocks.0.w": (4, 4)}
TIE = {"head": "wte"}


def tie_rules(**wins: bool) -> dict[str, dict[str, object]]:
    rules: dict[str, dict[str, object]] = {
        "weights": {"match": "*", "init": {"name": "random_normal", "stddev": 0.02}},
        "embedding": {"match": "wte", "init": {"name": "random_normal", "stddev": 1.0}},
        "readout": {"match": "head", "init": "zeros"},
        "padding_row": {"match": "wte", "index": "[0:1]", "init": "ones"},
    }
    for name, flag in wins.items():
        rules[name]["wins_ties"] = flag
    return rules


def test_the_rule_that_wins_ties_decides_a_tied_tensor_and_index_rules_after_it_still_apply() -> None:
    with pytest.raises(
        initreg.InitregError, match="rule 'embedding' \\(by 'wte'\\) and rule 'readout' \\(by 'head'\\)"
    ):
        initreg.plan(TIED, tie_rules(), ties=TIE)
    embedding = initreg.init_tree(TIED, tie_rules(embedding=True), ties=TIE, seed=1)
    assert np.all(embedding["wte"][0] == 1) and 0.5 < embedding["wte"][1:].std() < 1.5
    np.testing.assert_array_equal(embedding["head"], embedding["wte"])
    readout = initreg.init_tree(TIED, tie_rules(readout=True), ties=TIE, seed=1)
    assert np.all(readout["wte"][0] == 1) and not readout["wte"][1:].any()
    (entry,) = [e for e in initreg.plan(TIED, tie_rules(readout=True), ties=TIE) if e.path == "wte"]
    assert entry.rule == "readout+padding_row" and entry.aliases == ("head",)
    with pytest.raises(initreg.InitregError, match="wins_ties: true on the rule that should win, on one of them only"):
        initreg.plan(TIED, tie_rules(embedding=True, readout=True), ties=TIE)
    with pytest.raises(initreg.InitregError, match="rule 'readout': 'wins_ties' must be true or false; got 'yes'"):
        initreg.plan(TIED, tie_rules(readout="yes"), ties=TIE)  # type: ignore[arg-type]


def test_tied_names_whose_rules_agree_need_no_tie_rule() -> None:
    torch.manual_seed(0)
    model = transformers.T5ForConditionalGeneration(transformers.T5Config(
        vocab_size=100, d_model=16, d_kv=4, d_ff=32, num_layers=1, num_heads=4, tie_word_embeddings=True))  # fmt: skip
    entries = initialize(model, recipes.for_model(model).rules, seed=3)
    (shared,) = [entry for entry in entries if entry.path == "shared.weight"]
    assert set(shared.aliases) == {"encoder.embed_tokens.weight", "decoder.embed_tokens.weight", "lm_head.weight"}
    assert shared.rule == "output" and shared.initializer.stddev == 1.0
