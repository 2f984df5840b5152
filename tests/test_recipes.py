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
    recipe = recipes.load("hf_gpt2", n_layer=config.n_layer, initializer_range=config.initializer_range)
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
    recipe = recipes.load("hf_default", pad_token_id=7, initializer_range=model.config.initializer_range)
    initialize(model, recipe.rules, seed=3)
    compared = compare(as_numpy(model), reference, other, lambda name: model.config.initializer_range)
    assert compared == 2 + 7 * SMALL["num_hidden_layers"]
    assert any(name.endswith(".bias") for name in reference) == (family == "qwen2")


def test_hf_default_without_a_padding_token_zeroes_no_row() -> None:
    values = initreg.init_tree(
        {"model.embed_tokens.weight": (50, 8), "model.norm.weight": (8,)}, recipes.load("hf_default").rules
    )
    assert np.all(values["model.embed_tokens.weight"] != 0)


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
    recipe = recipes.load("mup_gpt2", d_model=width, base_d_model=MUP_BASE, n_layer=config.n_layer)
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
    recipe = recipes.load("torchtitan_llama3")
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
    variables = {"d_model": OLMO["d_model"]} if init_fn == "mitchell" else {}
    ours = initreg.init_tree(olmo_spec(), recipes.load(recipe_name, **variables).rules, seed=3, layout="torch")
    compared = compare(
        ours, olmo_reference(init_fn, 0), olmo_reference(init_fn, 1),
        lambda name: truncated_std(olmo_std(name, init_fn), 3.0), lambda name: 3 * olmo_std(name, init_fn),
    )  # fmt: skip
    assert compared == 2 + 4 * OLMO["n_layers"]


# --- loading -------------------------------------------------------------------------------------


def test_every_shipped_recipe_loads_and_names_its_reference() -> None:
    assert recipes.names() == ["hf_default", "hf_gpt2", "mup_gpt2", "olmo2", "olmo_mitchell", "torchtitan_llama3"]
    for name in recipes.names():
        recipe = recipes.load(name)
        assert recipe.reference and recipe.rules


def test_one_recipe_serves_every_depth() -> None:
    spec = {f"h.{i}.attn.c_proj.weight": (16, 16) for i in range(3)}
    for n_layer in (3, 48):
        entries = initreg.plan(spec, recipes.load("hf_gpt2", n_layer=n_layer).rules, allow_unused_rules=True)
        assert {entry.initializer.stddev for entry in entries} == {0.02 / math.sqrt(2 * n_layer)}


def test_a_bad_recipe_name_or_variable_is_an_error_naming_the_valid_ones() -> None:
    with pytest.raises(initreg.InitregError, match="unknown recipe 'hf_gtp2'; valid: 'hf_default', 'hf_gpt2'"):
        recipes.load("hf_gtp2")
    with pytest.raises(initreg.InitregError, match="no variable 'n_layers'; valid: 'initializer_range', 'n_layer'"):
        recipes.load("hf_gpt2", n_layers=3)


def test_the_comparison_fails_a_scheme_that_differs() -> None:
    """Without depth init (one std for every layer), torchtitan's wo/w2/w3 of all but one layer differ."""
    recipe = recipes.load("torchtitan_llama3", depth_init=0, n_layers=TITAN["n_layers"])
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
    expected = initreg.init_tree(spec, recipes.load("torchtitan_llama3", n_layers=2).rules, seed=5, layout="torch")
    assert written.keys() == expected.keys() and len(written) == 3 + 2 * 9
    for name, array in expected.items():
        np.testing.assert_array_equal(written[name], array, err_msg=name)
    with safe_open(path, "np") as file:
        made_by = json.loads(file.metadata()["initreg"])
    assert made_by["rules"]["output"]["init"]["stddev"] == "=fan_in ** -0.5"
    assert made_by["recipe"] == "torchtitan_llama3" and made_by["variables"]["n_layers"] == 2


def test_a_bad_expression_on_the_command_line_is_one_line_naming_the_rule(tmp_path: Path) -> None:
    done = run_command(tmp_path, "recipe=hf_gpt2", "model=gpt2_small", 'recipe.rules.weights.init.stddev="=nope * 2"')
    assert done.returncode == 2 and done.stderr.count("\n") == 1 and not list(tmp_path.iterdir())
    assert "recipe 'hf_gpt2': rule 'weights': expression '=nope * 2' uses unknown name 'nope'" in done.stderr


def test_an_unknown_recipe_is_one_line_with_the_valid_ones(tmp_path: Path) -> None:
    done = run_command(tmp_path, "recipe=hf_gtp2", "model=gpt2_small")
    assert done.returncode == 2 and done.stderr.count("\n") == 1
    assert "unknown recipe 'hf_gtp2'; did you mean 'hf_gpt2'?" in done.stderr and "torchtitan_llama3" in done.stderr


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
    mitchell = recipes.load("olmo_mitchell")
    entries = initreg.plan({"transformer.blocks.0.ff_out.weight": (64, 256)}, mitchell.rules, allow_unused_rules=True)
    assert entries[0].initializer.stddev == pytest.approx(1 / math.sqrt(2 * 256))
    titan = recipes.load("torchtitan_llama3")
    entries = initreg.plan({"output.weight": (1000, 64)}, titan.rules, allow_unused_rules=True)
    assert entries[0].initializer.stddev == pytest.approx(64**-0.5)
