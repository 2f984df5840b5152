"""initreg.check and `initreg check`: conformance of a model's parameters to the rules or recipe that made them.

Seeds are pinned everywhere, so a statistical test here gives the same verdict on every run; the sizes
are chosen so that a planted fault is far beyond the test's threshold (and a correct tensor far inside).
"""

from __future__ import annotations

import json
import math
import os
import shutil
import struct
import subprocess
import sys
import tracemalloc
from pathlib import Path

import numpy as np
import pytest

import initreg
from initreg import io
from initreg.checking import statistics
from initreg.checking.intended import raw_moments
from initreg.checking.sources import open_source
from initreg.distributions import NormalDist, TruncatedNormalDist, UniformDist
from initreg.errors import InvalidArgumentError

INITREG = shutil.which("initreg", path=str(Path(sys.executable).parent))
SPEC = {
    "embed": (2000, 64),
    "dense": {"kernel": (256, 384), "bias": (384,)},
    "uniform": (300, 400),
    "ortho": (128, 64),
    "eye": (64, 64),
    "norm": {"scale": (384,)},
}
RULES = {
    "weights": {"match": "*", "init": "he_normal"},
    "embed": {"match": "embed", "init": {"name": "random_normal", "stddev": 0.02}},
    "padding": {"match": "embed", "index": "[0]", "init": "zeros"},
    "uniform": {"match": "uniform", "init": "lecun_uniform"},
    "ortho": {"match": "ortho", "init": {"name": "orthogonal", "gain": 2.0}},
    "eye": {"match": "eye", "init": "identity"},
    "biases": {"match": "*.bias", "init": "zeros"},
    "scales": {"match": "*.scale", "init": "ones"},
}


def tree(seed: int = 0, dtype: str = "float32") -> dict[str, np.ndarray]:
    return initreg.tree.flatten(initreg.init_tree(SPEC, RULES, seed=seed, dtype=dtype))  # type: ignore[return-value]


def failing(report: initreg.checking.Report) -> list[str]:
    return [tensor.path for tensor in report.failures]


# --- a correct tree passes, in every float dtype ------------------------------------------------


@pytest.mark.parametrize("dtype", ["float32", "float64", "float16", "bfloat16"])
def test_correct_tree_conforms(dtype: str) -> None:
    report = initreg.check(tree(1, dtype), RULES)
    assert report.ok, [tensor.reasons for tensor in report.failures]
    families = {tensor.path: [c.intended["family"] for c in tensor.components] for tensor in report.tensors}
    assert families["embed"] == ["normal", "constant"]
    assert families["dense.kernel"] == ["truncated_normal"]
    assert families["ortho"] == ["orthogonal"] and families["eye"] == ["identity"]
    assert report.to_dict()["ok"] is True and not report.unchecked


def test_false_alarms_stay_near_alpha() -> None:
    """40 seeds of a 6-tested-tensor tree at alpha=0.05: Holm holds the family-wise rate at 5%, so two
    failing trees are expected; more than six would happen by chance with probability below 0.2%."""
    failed = sum(not initreg.check(tree(seed), RULES, alpha=0.05).ok for seed in range(100, 140))
    assert failed <= 6


def test_bfloat16_rounding_is_part_of_the_intended_cdf() -> None:
    """Four million bfloat16 values pass, where a KS test against the continuous normal CDF rejects them:
    the grid's probabilities are those of the rounded distribution."""
    rules = {"w": {"match": "*", "init": {"name": "random_normal", "stddev": 0.02}}}
    values = initreg.init_tree({"w": (2000, 2000)}, rules, seed=5, dtype="bfloat16")
    report = initreg.check(values, rules)
    assert report.ok
    grid = statistics.grid(NormalDist(0.0, 0.02), "bfloat16")
    continuous = np.array([statistics.cdf(NormalDist(0.0, 0.02), float(t)) for t in grid.thresholds])
    empirical = np.cumsum(report.tensors[0].components[0].counts[:-1]) / 4e6
    assert statistics.kolmogorov_p(float(np.max(np.abs(empirical - continuous))), 4_000_000) < 1e-3
    assert report.tensors[0].components[0].tests[0].p_value > 0.01


# --- planted faults are caught, and only the faulty tensor is named ---------------------------


def _torch_default_uniform(shape: tuple[int, ...], seed: int) -> np.ndarray:
    """What torch's nn.Linear leaves in a weight of `shape` (kaiming_uniform(a=sqrt(5)), torch layout)."""
    import torch

    weight = torch.empty(shape)
    torch.manual_seed(seed)
    torch.nn.init.kaiming_uniform_(weight, a=math.sqrt(5))
    return weight.numpy()


@pytest.mark.parametrize(
    ("fault", "path", "reason"),
    [
        ("torch_default", "dense.kernel", "test p="),
        ("std_10_percent", "uniform", "outside"),
        ("normal_std_10_percent", "embed", "variance test"),
        ("one_nan", "dense.kernel", "non-finite"),
        ("one_1e37", "embed", "more than"),
        ("zero_is_1e-29", "dense.bias", "differ from constant"),
        ("padding_row_drawn", "embed", "differ from constant"),
        ("wrong_truncation", "dense.kernel", "outside"),
        ("narrow_truncation", "dense.kernel", "test p="),
        ("not_orthogonal", "ortho", "not orthogonal"),
        ("identity_scaled", "eye", "differ from identity"),
    ],
)
def test_planted_fault_is_caught(fault: str, path: str, reason: str) -> None:
    values = tree(2)
    rng = np.random.default_rng(0)
    kernel = values["dense.kernel"]
    if fault == "torch_default":
        values[path] = _torch_default_uniform((384, 256), 0).T.copy()
    elif fault in ("std_10_percent", "normal_std_10_percent"):
        values[path] = values[path] * np.float32(1.1)
    elif fault == "one_nan":
        kernel[3, 4] = np.nan
    elif fault == "one_1e37":
        values[path][7, 7] = 1e37
    elif fault == "zero_is_1e-29":
        values[path][5] = 1e-29
    elif fault == "padding_row_drawn":
        values[path][0] = rng.normal(0, 0.02, 64)
    elif fault == "wrong_truncation":  # truncated at 3 stds instead of 2
        values[path] = (np.clip(rng.normal(size=kernel.shape), -3, 3) * 0.0884 / 0.9866).astype(np.float32)
    elif fault == "narrow_truncation":  # truncated at 1.5 stds instead of 2, inside the bounds
        draws = rng.normal(size=4 * kernel.size)
        values[path] = (draws[np.abs(draws) < 1.5][: kernel.size].reshape(kernel.shape) * 0.0884 / 0.88).astype(
            np.float32
        )
    elif fault == "not_orthogonal":
        values[path] = values[path] + np.float32(1e-3)
    elif fault == "identity_scaled":
        values[path] = values[path] * np.float32(1.01)
    report = initreg.check(values, RULES)
    assert failing(report) == [path]
    assert reason in " ".join(report.failures[0].reasons)


def test_std_off_by_ten_percent_on_100k_elements() -> None:
    """A normal tensor of 100,000 values with std 0.022 instead of 0.02 is rejected far beyond alpha."""
    rules = {"w": {"match": "*", "init": {"name": "random_normal", "stddev": 0.02}}}
    values = initreg.tree.flatten(initreg.init_tree({"a": (100, 1000), "b": (100, 1000)}, rules, seed=3))
    values["b"] = values["b"] * np.float32(1.1)
    report = initreg.check(values, rules)
    assert failing(report) == ["b"]
    assert report.failures[0].p_value < 1e-20
    assert report.tensors[0].p_value > 0.01


# --- real models, initialized by their own code --------------------------------------------------


def _gpt2(seed: int, **config: float) -> object:
    """A 3-layer GPT2LMHeadModel initialized by its own code; `config` overrides GPT2Config's fields."""
    import torch
    from transformers import GPT2Config, GPT2LMHeadModel

    torch.manual_seed(seed)
    return GPT2LMHeadModel(
        GPT2Config(
            n_embd=64, n_layer=3, n_head=2, vocab_size=1000, n_positions=256, bos_token_id=0, eos_token_id=0,
            **config,
        )
    )  # fmt: skip


def _llama(seed: int) -> object:
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(seed)
    config = LlamaConfig(
        hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2,
        vocab_size=1000, pad_token_id=3, bos_token_id=1, eos_token_id=2,
    )  # fmt: skip
    return LlamaForCausalLM(config)


def test_transformers_gpt2_conforms_to_hf_gpt2() -> None:
    model = _gpt2(0)
    report = initreg.check(model, "hf_gpt2", variables={"n_layer": 3})
    assert report.ok, [(tensor.path, tensor.reasons) for tensor in report.failures]
    assert len(report.tensors) == len(list(model.parameters()))  # type: ignore[attr-defined]
    with pytest.raises(initreg.InitregError, match="n_layer=12 was given but the model has 3"):
        initreg.check(model, "hf_gpt2", variables={"n_layer": 12})  # the depth is the model's


def test_transformers_gpt2_with_a_module_left_at_torch_default_names_only_its_parameters() -> None:
    model = _gpt2(1)
    model.transformer.wpe.reset_parameters()  # type: ignore[attr-defined]  # what ZeRO-3's skipped init leaves
    assert failing(initreg.check(model, "hf_gpt2", variables={"n_layer": 3})) == ["transformer.wpe.weight"]


def test_transformers_gpt2_without_depth_scaling_names_only_that_projection() -> None:
    import torch

    model = _gpt2(2)
    torch.nn.init.normal_(model.transformer.h[1].attn.c_proj.weight, std=0.02)  # type: ignore[attr-defined]
    assert failing(initreg.check(model, "hf_gpt2", variables={"n_layer": 3})) == ["transformer.h.1.attn.c_proj.weight"]


def test_transformers_llama_conforms_to_hf_default_and_a_skipped_module_is_named() -> None:
    model = _llama(0)
    report = initreg.check(model, "hf_default", variables={"pad_token_id": 3})
    assert report.ok, [(tensor.path, tensor.reasons) for tensor in report.failures]
    embed = next(tensor for tensor in report.tensors if tensor.path == "model.embed_tokens.weight")
    assert [part.elements for part in embed.components] == [999 * 64, 64]  # the padding row is exact
    model.model.layers[1].mlp.down_proj.reset_parameters()  # type: ignore[attr-defined]
    assert failing(initreg.check(model, "hf_default", variables={"pad_token_id": 3})) == [
        "model.layers.1.mlp.down_proj.weight"
    ]


def test_torch_bfloat16_tensors_and_jax_arrays() -> None:
    import jax.numpy as jnp
    import torch

    values = tree(4, "bfloat16")
    as_torch = {name: torch.from_numpy(value.astype(np.float32)).to(torch.bfloat16) for name, value in values.items()}
    as_jax = {name: jnp.asarray(value) for name, value in values.items()}
    assert initreg.check(as_torch, RULES).ok and initreg.check(as_jax, RULES).ok
    as_torch["uniform"] = as_torch["uniform"] * 1.1
    assert failing(initreg.check(as_torch, RULES)) == ["uniform"]


# --- files, read lazily ---------------------------------------------------------------------------


@pytest.mark.parametrize("suffix", [".safetensors", ".npz"])
def test_files_are_read_piece_by_piece(tmp_path: Path, suffix: str) -> None:
    values = tree(5, "float32")
    path = tmp_path / f"model{suffix}"
    io.save(values, path)
    source = open_source(path)
    try:
        for stored in source.tensors:
            pieces = list(source.values(stored, chunk_bytes=4096))
            assert all(piece.size <= 1024 or len(stored.shape) < 2 for _, piece in pieces)
            np.testing.assert_array_equal(np.concatenate([piece for _, piece in pieces]), values[stored.name].ravel())
    finally:
        source.close()
    assert initreg.check(path, RULES, chunk_bytes=4096).ok
    if suffix == ".npz":  # a Fortran-ordered member is read in row-major order too
        np.savez(path, **{name: np.asfortranarray(value) for name, value in values.items()})
        assert initreg.check(path, RULES, chunk_bytes=4096).ok
    values["dense.bias"][0] = 1.0
    io.save(values, path)
    assert failing(initreg.check(path, RULES, chunk_bytes=4096)) == ["dense.bias"]


def test_a_damaged_npz_member_is_one_error(tmp_path: Path) -> None:
    path = tmp_path / "model.npz"
    np.savez_compressed(path, w=np.random.default_rng(0).normal(size=(100, 100)).astype(np.float32))
    data = bytearray(path.read_bytes())
    middle = len(data) // 2
    data[middle : middle + 8] = b"\xff" * 8  # inside the compressed data: the headers stay intact
    path.write_bytes(bytes(data))
    with pytest.raises(InvalidArgumentError, match="array .w. of .* cannot be read") as raised:
        initreg.check(path, {"w": {"match": "*", "init": "zeros"}})
    assert "\n" not in str(raised.value)


def test_a_big_file_is_checked_in_bounded_memory(tmp_path: Path) -> None:
    """A 64 MiB tensor checked 1 MiB at a time: the peak of traced allocations stays below 8 MiB."""
    rules = {"w": {"match": "*", "init": {"name": "random_normal", "stddev": 0.02}}}
    path = initreg.save_tree({"w": (4096, 4096)}, rules, tmp_path / "big.safetensors", seed=0, quiet=True)
    tracemalloc.start()
    try:
        report = initreg.check(path, rules, chunk_bytes=1 << 20)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert report.ok
    assert peak < 8 << 20


# --- bad input: one clear line each -------------------------------------------------------------


def test_bad_input_is_refused_in_one_line(tmp_path: Path) -> None:
    values = tree(6)
    cases = {
        "match no rule": ({**values, "extra": np.zeros(3, np.float32)}, {k: RULES[k] for k in ("embed",)}),
        "is stored as float32, but rule": (values, {**RULES, "scales": {**RULES["scales"], "dtype": "float16"}}),
        "not a floating dtype": ({**values, "norm.scale": np.ones(384, np.int32)}, RULES),
        "no values to check": ({**values, "dense.bias": np.zeros((0,), np.float32)}, RULES),
        "parameter 'eye' .*2D matrices": ({**values, "eye": np.eye(4, dtype=np.float32)[None]}, RULES),
        "parameter 'ortho' .*at least two-dimensional": ({**values, "ortho": np.zeros(8, np.float32)}, RULES),
        "unknown recipe": (values, "no_such_recipe"),
        "alpha must be": (values, RULES),
        "chunk_bytes must be": (values, RULES),
    }
    for words, (params, rules) in cases.items():
        with pytest.raises(InvalidArgumentError, match=words) as raised:
            initreg.check(
                params, rules, alpha=2.0 if words == "alpha must be" else 0.01,
                chunk_bytes=0 if words == "chunk_bytes must be" else 1 << 20,
            )  # fmt: skip
        assert "\n" not in str(raised.value)
    hostile = tmp_path / "hostile.safetensors"
    hostile.write_bytes(struct.pack("<Q", 2**40) + b"{}")
    with pytest.raises(InvalidArgumentError, match="not a safetensors file"):
        initreg.check(hostile, RULES)
    nested = tmp_path / "nested.safetensors"
    header = b"[" * 100_000 + b"]" * 100_000
    nested.write_bytes(struct.pack("<Q", len(header)) + header)
    with pytest.raises(InvalidArgumentError, match="nested too deeply|not a JSON object"):
        initreg.check(nested, RULES)


# --- the statistics themselves --------------------------------------------------------------------


def test_kolmogorov_p_matches_scipy() -> None:
    from scipy import stats

    for n in (100, 10_000, 1_000_000):
        for d in (0.5 / math.sqrt(n), 1.0 / math.sqrt(n), 1.6 / math.sqrt(n), 2.5 / math.sqrt(n)):
            assert statistics.kolmogorov_p(d, n) == pytest.approx(stats.kstwo.sf(d, n), rel=0.02, abs=1e-4)


def test_truncated_normal_moments_match_scipy() -> None:
    from scipy import stats

    for low, high in ((-2.0, 2.0), (-1.0, 3.0), (0.5, 4.0)):
        dist = TruncatedNormalDist(0.3, 1.7, low, high)
        mean, variance, fourth = raw_moments(dist)
        reference = stats.truncnorm(low, high, loc=0.3, scale=1.7)
        assert mean == pytest.approx(reference.mean(), rel=1e-10)
        assert variance == pytest.approx(reference.var(), rel=1e-10)
        centre = reference.mean()
        assert fourth == pytest.approx(reference.expect(lambda x, c=centre: (x - c) ** 4), rel=1e-8)
    assert raw_moments(UniformDist(-1.0, 3.0)) == pytest.approx((1.0, 16 / 12, 256 / 80))


def test_holm_steps_down() -> None:
    assert statistics.holm([0.001, 0.03, 0.013, 0.5], 0.05) == [True, False, True, False]
    assert statistics.holm([0.03, 0.03], 0.05) == [False, False]
    assert statistics.bonferroni([0.2, 0.01, 0.5]) == pytest.approx(0.03)


def test_import_initreg_does_not_import_checking() -> None:
    code = "import sys, initreg; assert 'initreg.checking' not in sys.modules; initreg.check; print('ok')"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.stdout.strip() == "ok", done.stderr


# --- the command ----------------------------------------------------------------------------------


def _command(cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    assert INITREG is not None, "the initreg console script is not installed next to the interpreter"
    env = {key: value for key, value in os.environ.items() if key != "HYDRA_FULL_ERROR"}
    return subprocess.run([INITREG, "check", *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=300)


def test_command_exit_status_table_and_json(tmp_path: Path) -> None:
    rules = {"weights": {"match": "*", "init": "he_normal"}, "biases": {"match": "*.bias", "init": "zeros"}}
    spec = {"a": {"kernel": (256, 128), "bias": (128,)}, "b": {"kernel": (128, 64), "bias": (64,)}}
    initreg.save_tree(spec, rules, tmp_path / "good.safetensors", seed=1, quiet=True)
    values = initreg.tree.flatten(initreg.init_tree(spec, rules, seed=1))
    values["b.bias"][0] = np.nan
    io.save(values, tmp_path / "bad.npz")
    good = _command(tmp_path, "model.path=good.safetensors", "init=he_normal")
    assert good.returncode == 0, good.stderr
    assert "4 of 4 tensors conform, 0 fail" in good.stdout and "Holm" in good.stdout
    bad = _command(tmp_path, "model.path=bad.npz", "init=he_normal", "--json")
    assert bad.returncode == 1, bad.stderr
    parsed = json.loads(bad.stdout)
    assert parsed["ok"] is False and parsed["failures"] == ["b.bias"]
    assert {tensor["path"]: tensor["verdict"] for tensor in parsed["tensors"]}["a.kernel"] == "ok"
    refused = _command(tmp_path, "model.path=bad.npz", "init=he_normal", "recipe=hf_gpt2")
    assert refused.returncode == 2 and refused.stdout == ""
    assert refused.stderr.count("\n") == 1 and "give one of recipe=, init= or rules=" in refused.stderr
    missing = _command(tmp_path, "model.path=nothing.safetensors", "init=he_normal")
    assert missing.returncode == 2 and missing.stderr.startswith("initreg: error:")
    drawn = _command(tmp_path, "model.path=good.safetensors", "init=he_normal", "html=out/report.html")
    assert drawn.returncode == 0 and "wrote out/report.html" in drawn.stdout, drawn.stderr
    assert (tmp_path / "out" / "report.html").read_text().count("data:image/png") == 4  # one figure per shape
    not_html = _command(tmp_path, "model.path=good.safetensors", "init=he_normal", "html=report.png")
    assert not_html.returncode == 2 and "must end in .html" in not_html.stderr and not_html.stdout == ""


def test_command_checks_a_recipe_with_variables(tmp_path: Path) -> None:
    from initreg import recipes

    block = {"ln_1": {"weight": (64,), "bias": (64,)}, "attn": {"c_attn": {"weight": (64, 192), "bias": (192,)},
             "c_proj": {"weight": (64, 64)}}}  # fmt: skip
    spec = {"h": [block] * 4}
    recipe = recipes.load("hf_gpt2", initializer_range=0.02, n_layer=4)
    initreg.save_tree(spec, recipe.rules, tmp_path / "model.safetensors", seed=0, quiet=True)
    given = ("model.path=model.safetensors", "recipe=hf_gpt2", "variables.initializer_range=0.02")
    assert _command(tmp_path, *given, "variables.n_layer=4").returncode == 0
    assert _command(tmp_path, *given).returncode == 0  # n_layer read from the tree
    wrong = _command(tmp_path, *given, "variables.n_layer=1")
    assert wrong.returncode == 2 and "n_layer=1 was given but the model has 4 (tree: 4 blocks h.{i})" in wrong.stderr
    unknown = _command(tmp_path, "model.path=model.safetensors", "recipe=hf_gpt2")  # no config.json beside it
    assert unknown.returncode == 2
    assert "recipe 'hf_gpt2' needs variable 'initializer_range', read from model.config.initializer_range" in (
        unknown.stderr
    )


# --- the HTML report ------------------------------------------------------------------------------


def _chromium() -> str | None:
    return shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")


def test_html_report_renders_in_a_browser(tmp_path: Path) -> None:
    """The report of a tree with one fault is drawn by headless chromium; the screenshot shows the failure
    first (red section heading and bars) and figures (many distinct colours), not a blank page."""
    browser = _chromium()
    assert browser is not None, "no chromium on PATH: the README's test command installs it (apt-get install chromium)"
    from initreg.checking.html import write_html

    values = tree(7)
    values["uniform"] = values["uniform"] * np.float32(1.2)
    report = initreg.check(values, RULES, keep_samples=True)
    page = write_html(report, tmp_path / "report.html")
    assert page.read_text().count("data:image/png;base64,") >= 6
    shot = tmp_path / "shot.png"
    subprocess.run(
        [browser, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars", f"--screenshot={shot}",
         "--window-size=1000,900", page.as_uri()],
        capture_output=True, timeout=120, check=True,
    )  # fmt: skip
    import matplotlib.image

    pixels = matplotlib.image.imread(shot)[..., :3]
    assert pixels.shape[:2] == (900, 1000)
    assert pixels.std() > 0.1  # not blank
    reddish = (pixels[..., 0] > 0.6) & (pixels[..., 1] < 0.5) & (pixels[..., 2] < 0.5)
    assert reddish.sum() > 500  # the failing tensor's figure, drawn first, in red
    assert len(np.unique((pixels * 15).round().reshape(-1, 3), axis=0)) > 20


def test_html_path_must_end_in_html(tmp_path: Path) -> None:
    from initreg.checking.html import write_html

    with pytest.raises(InvalidArgumentError, match="must end in .html"):
        write_html(initreg.check(tree(8), RULES), tmp_path / "report.png")
    assert not list(tmp_path.iterdir())


def test_html_groups_like_tensors_and_puts_failures_first() -> None:
    from initreg.checking.html import groups

    rules = {"w": {"match": "*", "init": {"name": "random_normal", "stddev": 0.02}}}
    values = initreg.tree.flatten(initreg.init_tree({"h": [{"w": (64, 64)}] * 3, "x": (64, 32)}, rules, seed=0))
    values["h.1.w"] = values["h.1.w"] * np.float32(2)
    grouped = groups(initreg.check(values, rules))
    assert [[tensor.path for tensor in group] for group in grouped] == [["h.1.w"], ["h.0.w", "h.2.w"], ["x"]]


def test_command_checks_a_checkpoint_saved_by_transformers(tmp_path: Path) -> None:
    """GPT-2 saved by save_pretrained (its own .safetensors, lm_head tied and left out) conforms; the same
    checkpoint with one module reset to torch's default does not, and names that module's weight."""
    model = _gpt2(3)
    model.save_pretrained(tmp_path / "good")  # type: ignore[attr-defined]
    model.transformer.h[2].attn.c_attn.weight.data.uniform_(-0.1, 0.1)  # type: ignore[attr-defined]
    model.save_pretrained(tmp_path / "bad")  # type: ignore[attr-defined]
    arguments = ("recipe=hf_gpt2", "variables.n_layer=3", "--json")
    good = _command(tmp_path, "model.path=good/model.safetensors", *arguments)
    assert good.returncode == 0, good.stdout[-500:] + good.stderr
    bad = _command(tmp_path, "model.path=bad/model.safetensors", *arguments)
    assert bad.returncode == 1 and json.loads(bad.stdout)["failures"] == ["transformer.h.2.attn.c_attn.weight"]


def test_a_checkpoint_is_checked_with_the_initializer_range_of_the_config_json_beside_it(tmp_path: Path) -> None:
    """save_pretrained writes config.json beside the weights: initializer_range (here 0.05, not transformers'
    0.02) and the depth are read from it; the same weights with a config saying 0.02 fail; a config.json
    that contradicts the tree is an error naming both."""
    _gpt2(0, initializer_range=0.05).save_pretrained(tmp_path / "wide")  # type: ignore[attr-defined]
    assert _command(tmp_path, "model.path=wide/model.safetensors", "recipe=hf_gpt2").returncode == 0
    config_json = tmp_path / "wide" / "config.json"
    saved = json.loads(config_json.read_text())
    config_json.write_text(json.dumps({**saved, "initializer_range": 0.02}))
    assert _command(tmp_path, "model.path=wide/model.safetensors", "recipe=hf_gpt2", "--json").returncode == 1
    config_json.write_text(json.dumps({**saved, "n_layer": 4}))
    wrong = _command(tmp_path, "model.path=wide/model.safetensors", "recipe=hf_gpt2")
    assert wrong.returncode == 2
    assert "'n_layer' is 4 by model.config.n_layer but 3 by tree: 3 blocks h.{i}" in wrong.stderr
    config_json.write_text("[1, 2]")
    refused = _command(tmp_path, "model.path=wide/model.safetensors", "recipe=hf_gpt2")
    assert refused.returncode == 2
    assert "config.json' beside the checkpoint holds list; valid: an object" in refused.stderr
