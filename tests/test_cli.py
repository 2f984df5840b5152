"""End to end: the installed `initreg` console script, run in a subprocess from a temporary folder.

Checks what a user sees: the file written where asked (and nothing else), its values equal to the
library's, the table, overrides, multirun, dry runs, the model group against real Keras/torch models,
plugins selectable by name, and bad input ending in one line on stderr with no file written.
"""

from __future__ import annotations

import math
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
from safetensors.numpy import load_file

import initreg
from initreg.cli import model_spec

INITREG = shutil.which("initreg", path=str(Path(sys.executable).parent))
DEFAULT_RULES = {"weights": {"match": "*", "init": "lecun_normal"}, "biases": {"match": "*.bias", "init": "zeros"}}


def initreg_command(cwd: Path, *args: str, extra_path: Path | None = None) -> subprocess.CompletedProcess[str]:
    assert INITREG is not None, "the initreg console script is not installed next to the interpreter"
    env = {k: v for k, v in os.environ.items() if k != "HYDRA_FULL_ERROR"}
    if extra_path is not None:
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(extra_path), env.get("PYTHONPATH")]))
    return subprocess.run([INITREG, *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=120)


def model_config(name: str) -> dict[str, object]:
    from importlib.resources import files

    from omegaconf import OmegaConf

    config = OmegaConf.load(str(files("initreg.configs") / "model" / f"{name}.yaml"))
    container = OmegaConf.to_container(config.get("model", config), resolve=False)
    assert isinstance(container, dict)
    return {str(k): v for k, v in container.items()}


def table_rows(stdout: str) -> dict[str, list[str]]:
    """The table's cells by parameter path (rich draws cells between │, and the header's between ┃)."""
    rows = {}
    for line in stdout.splitlines():
        cells = [cell.strip() for cell in line.replace("┃", "│").split("│")[1:-1]]
        if cells:
            rows[cells[0]] = cells
    return rows


def test_the_default_run_writes_the_library_tree_and_nothing_else(tmp_path: Path) -> None:
    done = initreg_command(tmp_path, "init=lecun_normal", "seed=3")
    assert done.returncode == 0, done.stderr
    assert done.stderr == ""
    assert sorted(p.name for p in tmp_path.iterdir()) == ["mlp-lecun_normal-seed3.safetensors"]
    written = load_file(tmp_path / "mlp-lecun_normal-seed3.safetensors")
    spec, _ = model_spec(model_config("mlp"))
    expected = initreg.tree.flatten(initreg.init_tree(spec, DEFAULT_RULES, seed=3))
    assert set(written) == set(expected)
    for path, array in expected.items():
        np.testing.assert_array_equal(written[path], array)
    rows = table_rows(done.stdout)
    header = rows.pop("path")
    assert header[:5] == ["path", "shape", "dtype", "rule", "initializer"]
    assert header[-2:] == ["target std", "measured std"]
    assert set(rows) == set(expected)
    for path, array in expected.items():
        assert rows[path][-1] == f"{np.std(array.astype(np.float64)):.4g}"
    assert rows["dense_0.kernel"][1:4] == ["[784, 256]", "float32", "weights"]
    again = initreg_command(tmp_path, "init=lecun_normal", "seed=3", "output=again.safetensors")
    assert again.returncode == 0, again.stderr
    assert (tmp_path / "again.safetensors").read_bytes() == (
        tmp_path / "mlp-lecun_normal-seed3.safetensors"
    ).read_bytes()


def test_overrides_of_init_rules_dtype_and_output(tmp_path: Path) -> None:
    import torch
    from safetensors.torch import load_file as load_torch

    done = initreg_command(
        tmp_path,
        "init=variance_scaling", "init.scale=2", "init.mode=fan_avg",
        "rules.biases.init=ones", '+rules.last={match:"dense_2.*",init:zeros}',
        "dtype=bfloat16", "output=sub/params.safetensors",
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    written = load_torch(tmp_path / "sub" / "params.safetensors")
    assert {tensor.dtype for tensor in written.values()} == {torch.bfloat16}
    assert torch.equal(written["dense_0.bias"], torch.ones(256, dtype=torch.bfloat16))
    assert not written["dense_2.kernel"].any() and not written["dense_2.bias"].any()
    kernel = written["dense_0.kernel"].to(torch.float64)
    std = math.sqrt(2.0 / ((784 + 256) / 2))
    assert kernel.std().item() == pytest.approx(std, rel=0.02)
    assert kernel.abs().max().item() <= 2 * std / 0.87962566103423978 * 1.01  # cut at 2 sigma before scaling
    rows = table_rows(done.stdout)
    assert rows["dense_2.bias"][3] == "last" and rows["dense_1.bias"][3] == "biases"
    assert "mode='fan_avg'" in rows["dense_0.kernel"][4]


def test_npz_output_holds_the_same_values(tmp_path: Path) -> None:
    assert initreg_command(tmp_path, "seed=1", "output=params.npz").returncode == 0
    assert initreg_command(tmp_path, "seed=1", "output=params.safetensors").returncode == 0
    reference = load_file(tmp_path / "params.safetensors")
    with np.load(tmp_path / "params.npz") as written:
        assert set(written.files) == set(reference)
        for name, array in reference.items():
            np.testing.assert_array_equal(written[name], array)


def test_multirun_writes_one_file_per_job_in_place(tmp_path: Path) -> None:
    done = initreg_command(tmp_path, "-m", "init=lecun_normal,he_normal", "seed=1,2")
    assert done.returncode == 0, done.stderr
    names = [f"mlp-{init}-seed{seed}" for init in ("lecun_normal", "he_normal") for seed in (1, 2)]
    files = [f"{name}-job{job}.safetensors" for job, name in enumerate(names)]
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([*files, "multirun.yaml"])
    contents = [(tmp_path / name).read_bytes() for name in files]
    assert len(set(contents)) == 4
    single = initreg_command(tmp_path, "init=he_normal", "seed=2", "output=single.safetensors")
    assert single.returncode == 0, single.stderr
    job, alone = load_file(tmp_path / files[3]), load_file(tmp_path / "single.safetensors")
    for name, array in alone.items():
        np.testing.assert_array_equal(job[name], array)
    # a sweep over a key the file name does not mention still writes distinct files
    swept = initreg_command(tmp_path, "-m", "rules.biases.init=zeros,ones", "output=swept.safetensors")
    assert swept.returncode == 0, swept.stderr
    zeros, ones = load_file(tmp_path / "swept-job0.safetensors"), load_file(tmp_path / "swept-job1.safetensors")
    assert not zeros["dense_0.bias"].any() and (ones["dense_0.bias"] == 1).all()


def test_a_dry_run_prints_the_plan_of_gpt2_small_and_writes_nothing(tmp_path: Path) -> None:
    done = initreg_command(tmp_path, "model=gpt2_small", "dry_run=true")
    assert done.returncode == 0, done.stderr
    assert list(tmp_path.iterdir()) == []
    assert "124,439,808 parameters in 148 tensors" in done.stdout  # GPT-2 small's published size
    rows = table_rows(done.stdout)
    assert rows["path"][-3:] == ["fan_in", "fan_out", "target std"]
    assert rows["h.11.mlp.c_proj.weight"][1:4] == ["[3072, 768]", "float32", "weights"]
    assert rows["h.0.ln_1.weight"][3:5] == ["norm_scales", "ones()"]
    assert rows["wte.weight"][-3:] == ["50257", "768", f"{math.sqrt(6 / (50257 + 768)) / math.sqrt(3):.4g}"]


def test_the_mlp_and_convnet_have_the_shapes_of_real_keras_models() -> None:
    import keras

    mlp = keras.Sequential(
        [keras.Input((784,)), keras.layers.Dense(256), keras.layers.Dense(128), keras.layers.Dense(10)]
    )
    convolutions = [
        (keras.layers.Conv2D(width, 3, padding="same"), keras.layers.MaxPooling2D()) for width in (32, 64, 128)
    ]
    layers = [layer for pair in convolutions for layer in pair]
    convnet = keras.Sequential([keras.Input((32, 32, 3)), *layers, keras.layers.Flatten(), keras.layers.Dense(10)])
    for name, model in (("mlp", mlp), ("convnet", convnet)):
        spec, _ = model_spec(model_config(name))
        shapes = [shape for _, shape in sorted(initreg.tree.flatten(spec).items())]
        assert sorted(tuple(w.shape) for w in model.weights) == sorted(shapes)
        assert sum(math.prod(s) for s in shapes) == model.count_params()


def test_a_torch_checkpoint_is_reinitialized_in_its_own_layout(tmp_path: Path) -> None:
    import torch
    from safetensors.torch import save_file

    model = torch.nn.Sequential(torch.nn.Linear(64, 128), torch.nn.BatchNorm1d(128), torch.nn.Linear(128, 10))
    save_file(model.state_dict(), tmp_path / "checkpoint.safetensors")
    done = initreg_command(
        tmp_path, "model=file", "model.path=checkpoint.safetensors", "model.layout=torch",
        "init=variance_scaling", "init.scale=0.3333333333333333", "init.distribution=uniform",
        "output=fresh.safetensors",
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert done.stderr.count("\n") == 1 and "1.num_batches_tracked (int64)" in done.stderr
    fresh = load_file(tmp_path / "fresh.safetensors")
    floating = {k: v for k, v in model.state_dict().items() if v.is_floating_point()}
    assert {k: v.shape for k, v in fresh.items()} == {k: tuple(v.shape) for k, v in floating.items()}
    weight = model[0].weight  # torch's own default bound for Linear: kaiming_uniform_(a=sqrt(5))
    fan_in, _ = torch.nn.init._calculate_fan_in_and_fan_out(weight)
    bound = torch.nn.init.calculate_gain("leaky_relu", math.sqrt(5)) * math.sqrt(3.0 / fan_in)
    assert np.abs(fresh["0.weight"]).max() <= bound
    assert np.std(fresh["0.weight"]) == pytest.approx(bound / math.sqrt(3), rel=0.03)


def test_an_npz_checkpoint_gives_its_shapes(tmp_path: Path) -> None:
    np.savez(tmp_path / "checkpoint.npz", **{"encoder.kernel": np.zeros((5, 7)), "encoder.bias": np.zeros(7)})
    done = initreg_command(tmp_path, "model=file", "model.path=checkpoint.npz", "dry_run=true")
    assert done.returncode == 0, done.stderr
    rows = table_rows(done.stdout)
    assert rows["encoder.kernel"][1:4] == ["[5, 7]", "float32", "weights"]
    assert rows["encoder.bias"][1:4] == ["[7]", "float32", "biases"]


PLUGIN = """
from initreg.distributions import UniformDist
from initreg.initializers.base import RandomInitializer


class Box(RandomInitializer):
    '''Uniform on [-width, width).'''

    def __init__(self, width=0.5, seed=None):
        self.width = width
        super().__init__(seed=seed)

    def distribution_for(self, shape, layout=None):
        return UniformDist(-self.width, self.width)

    def get_config(self):
        return {**super().get_config(), "width": self.width}
"""


def test_a_plugin_initializer_is_selectable_by_name_with_its_parameters(tmp_path: Path) -> None:
    site = tmp_path / "site"
    info = site / "initreg_box_plugin-1.0.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: initreg-box-plugin\nVersion: 1.0\n")
    # the second name is taken by a shipped preset: a warning says the plugin's is hidden
    points = "box = initreg_box_plugin:Box\ngpt2_normal = initreg_box_plugin:Box\n"
    (info / "entry_points.txt").write_text("[initreg.initializers]\n" + points)
    (site / "initreg_box_plugin.py").write_text(textwrap.dedent(PLUGIN))
    done = initreg_command(tmp_path, "init=box", "init.width=0.25", "output=box.safetensors", extra_path=site)
    assert done.returncode == 0, done.stderr
    kernel = load_file(tmp_path / "box.safetensors")["dense_0.kernel"]
    assert -0.25 <= kernel.min() < -0.24 and 0.24 < kernel.max() < 0.25
    assert table_rows(done.stdout)["dense_0.kernel"][4] == "box(width=0.25)"
    assert done.stderr.count("\n") == 1
    assert "hides the init 'gpt2_normal' registered by initreg-box-plugin" in done.stderr


@pytest.mark.parametrize("switch", ["1", "0"])
def test_help_lists_the_init_group_whether_or_not_the_hydra_plugin_is_switched_off(tmp_path: Path, switch: str) -> None:
    env = {**os.environ, "INITREG_HYDRA_PLUGIN": switch}
    done = subprocess.run([str(INITREG), "--help"], env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    (line,) = [line for line in done.stdout.splitlines() if line.startswith("init: ")]
    assert {"he_normal", "HeNormal", "gpt2_normal", "delta_orthogonal"} <= set(line.removeprefix("init: ").split(", "))
    done = subprocess.run(
        [str(INITREG), "init=torch_default", "dry_run=true"],
        env=env, cwd=tmp_path, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert "torch_default()" in done.stdout


def test_list_prints_the_registry() -> None:
    done = subprocess.run([str(INITREG), "list"], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert "lecun_normal" in done.stdout and "numpy" in done.stdout


@pytest.mark.parametrize(
    ("arguments", "named"),
    [
        (["init=lecun_normall"], ["'lecun_normall'", "did you mean 'lecun_normal'", "glorot_uniform"]),
        (["model=gpt3"], ["'gpt3'", "gpt2_small", "mlp"]),
        (["dtype=bfloat"], ["'bfloat'", "'bfloat16'"]),
        (['+rules.x={match:"*.kernel"}'], ["rule 'x'", "'init' is missing"]),
        (['+rules.embed={match:"*.embed",init:normal}'], ["'embed'", "'*.embed'", "allow_unused_rules"]),
        (["rules.weights.match=*.kern"], ["'dense_0.kernel'", "allow_unmatched_params"]),
        (["model=file"], ["model.path"]),
        (["model=file", "model.path=missing.safetensors"], ["'missing.safetensors'", "No such file"]),
        (["output=params.pt"], ["'params.pt'", "'.npz'"]),
        (["sed=3"], ["'sed'", "+sed=3"]),
        (["init=variance_scaling", "init.mode=fan_avgg"], ["init.mode=fan_avgg", "'fan_avgg'", "fan_geo_avg"]),
        (["init=he_normal", "init.scael=2"], ["init.scael", "Key 'scael' not in 'init/he_normal'"]),
        (["init.seed=3"], ["seed=3", "the tree's seed decides"]),
        (['+rules.x={match:"*.kernel",init:{name:he_normal,seed:1}}'], ["rule 'x'", "the tree's seed decides"]),
        (["+hydra.callbacks.x={_target_:pathlib.Path.write_text,self:x.pth,data:x}"], ["hydra.callbacks", "refused"]),
        (["hydra/callbacks=x"], ["hydra.callbacks", "refused"]),
    ],
)
def test_bad_input_gives_one_line_and_no_file(tmp_path: Path, arguments: list[str], named: list[str]) -> None:
    done = initreg_command(tmp_path, *arguments)
    assert done.returncode == 2
    assert done.stderr.startswith("initreg: error: ") and done.stderr.count("\n") == 1, done.stderr
    for part in named:
        assert part in done.stderr
    assert "Traceback" not in done.stderr
    assert list(tmp_path.iterdir()) == []


def test_hydra_full_error_shows_the_traceback(tmp_path: Path) -> None:
    env = {**os.environ, "HYDRA_FULL_ERROR": "1"}
    done = subprocess.run([str(INITREG), "dtype=bfloat"], cwd=tmp_path, env=env, capture_output=True, text=True)
    assert done.returncode != 0 and "Traceback" in done.stderr and "'bfloat'" in done.stderr
