"""End to end: the installed `initreg` console script, run in a subprocess from a temporary folder.

Checks what a user sees: the file written where asked (and nothing else), its values equal to the
library's, the table, overrides, multirun, dry runs, the model group against real Keras/torch models,
plugins selectable by name, and bad input ending in one line on stderr with no file written.
"""

from __future__ import annotations

import importlib.util
import io
import json
import math
import os
import re
import shutil
import struct
import subprocess
import sys
import textwrap
import types
import zipfile
from pathlib import Path

import numpy as np
import pytest
from safetensors import safe_open
from safetensors.numpy import load_file

import initreg
import initreg.table
from initreg.model_specs import model_spec

INITREG = shutil.which("initreg", path=str(Path(sys.executable).parent))
DEFAULT_RULES = {"weights": {"match": "*", "init": "lecun_normal"}, "biases": {"match": "*.bias", "init": "zeros"}}


def initreg_command(
    cwd: Path, *args: str, extra_path: Path | None = None, temporary: Path | None = None
) -> subprocess.CompletedProcess[str]:
    """Runs `initreg args` in `cwd`; `extra_path` goes on PYTHONPATH, `temporary` is its TMPDIR."""
    assert INITREG is not None, "the initreg console script is not installed next to the interpreter"
    env = {k: v for k, v in os.environ.items() if k != "HYDRA_FULL_ERROR"}
    if extra_path is not None:
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(extra_path), env.get("PYTHONPATH")]))
    if temporary is not None:
        env["TMPDIR"] = str(temporary)
    return subprocess.run([INITREG, *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=120)


def model_config(name: str) -> dict[str, object]:
    from importlib.resources import files

    from omegaconf import OmegaConf

    config = OmegaConf.load(str(files("initreg.configs.command") / "model" / f"{name}.yaml"))
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
    with safe_open(tmp_path / "sub" / "params.safetensors", "np") as file:
        made_by = json.loads(file.metadata()["initreg"])
    assert list(made_by["rules"])[-1] == "last"  # in the order they apply (the last match wins), not sorted
    spec = {name: tuple(tensor.shape) for name, tensor in written.items()}
    replanned = {entry.path: entry.rule for entry in initreg.plan(spec, made_by["rules"])}
    assert replanned == {name: row[3] for name, row in rows.items() if name in spec}


def test_npz_output_holds_the_same_values(tmp_path: Path) -> None:
    assert initreg_command(tmp_path, "seed=1", "output=params.npz").returncode == 0
    assert initreg_command(tmp_path, "seed=1", "output=params.safetensors").returncode == 0
    reference = load_file(tmp_path / "params.safetensors")
    with np.load(tmp_path / "params.npz") as written:
        assert set(written.files) == set(reference)
        for name, array in reference.items():
            np.testing.assert_array_equal(written[name], array)


def test_multirun_names_each_file_by_its_overrides_and_writes_nothing_else(tmp_path: Path) -> None:
    work, scratch = tmp_path / "work", tmp_path / "scratch"
    work.mkdir()
    scratch.mkdir()
    done = initreg_command(work, "-m", "init=lecun_normal,he_normal", "seed=1,2", temporary=scratch)
    assert done.returncode == 0, done.stderr
    # the default output pattern spells out init and seed already: no more is added
    files = [f"mlp-{init}-seed{seed}.safetensors" for init in ("lecun_normal", "he_normal") for seed in (1, 2)]
    assert sorted(p.name for p in work.iterdir()) == sorted(files)  # no multirun.yaml
    assert list(scratch.iterdir()) == []  # Hydra's bookkeeping went to a temporary folder, since removed
    assert len({(work / name).read_bytes() for name in files}) == 4
    single = initreg_command(tmp_path, "init=he_normal", "seed=2", "output=single.safetensors")
    assert single.returncode == 0, single.stderr
    assert (tmp_path / "single.safetensors").read_bytes() == (work / files[3]).read_bytes()


def test_multirun_with_an_explicit_output_names_files_by_their_overrides(tmp_path: Path) -> None:
    done = initreg_command(tmp_path, "-m", "init=lecun_normal,he_normal", "seed=1,2", "output=out/w.safetensors")
    assert done.returncode == 0, done.stderr
    files = [f"w-init={init},seed={seed}.safetensors" for init in ("lecun_normal", "he_normal") for seed in (1, 2)]
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == sorted(files)
    assert [p.name for p in tmp_path.iterdir()] == ["out"]
    alone = initreg_command(tmp_path, "init=he_normal", "seed=2", "output=alone.safetensors")
    assert alone.returncode == 0, alone.stderr
    assert (tmp_path / "alone.safetensors").read_bytes() == (tmp_path / "out" / files[3]).read_bytes()
    # a key the pattern does not spell is added to it; characters unsafe in names are percent-encoded
    swept = initreg_command(
        tmp_path, "-m", "rules.biases.init=zeros,ones", '+rules.x={match:"dense_0.*",init:zeros}', "seed=1",
        "output=swept-${seed}.npz",
    )  # fmt: skip
    assert swept.returncode == 0, swept.stderr
    rule = "rules.x=%7Bmatch%3A%22dense_0.%2A%22,init%3Azeros%7D"
    zeros, ones = (tmp_path / f"swept-1-rules.biases.init={value},{rule}.npz" for value in ("zeros", "ones"))
    with np.load(zeros) as first, np.load(ones) as second:
        assert not first["dense_1.bias"].any() and (second["dense_1.bias"] == 1).all()
        assert not first["dense_0.kernel"].any() and not second["dense_0.kernel"].any()


def test_multirun_file_names_too_long_for_the_file_system_end_in_a_hash(tmp_path: Path) -> None:
    long = "a" * 300
    done = initreg_command(tmp_path, "-m", f"+model.note={long}1,{long}2", "output=o.safetensors")
    assert done.returncode == 0, done.stderr
    names = sorted(p.name for p in tmp_path.iterdir())
    assert len(names) == 2 and names[0] != names[1]
    for name in names:
        assert len(name.encode()) <= 255 and name.startswith("o-model.note=aaaa")
        assert re.fullmatch(r"o-model\.note=a+-[0-9a-f]{16}\.safetensors", name)


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


def repeated_blocks(count: int) -> str:
    """An override adding `count` tensors b.0.w ... of shape [2] to the model."""
    return f"++model.repeat={{b:{{count:{count},params:{{w:[2]}}}}}}"


def test_a_long_table_shows_its_first_and_last_rows_and_one_row_for_the_rest(tmp_path: Path) -> None:
    done = initreg_command(tmp_path, "dry_run=true", repeated_blocks(20_000))
    assert done.returncode == 0, done.stderr
    assert len(done.stdout.splitlines()) < 2 * initreg.table.TABLE_EDGE_ROWS + 20  # 20,006 tensors
    rows = table_rows(done.stdout)
    edge = initreg.table.TABLE_EDGE_ROWS
    shown = [f"b.{i}.w" for i in range(edge - 6)] + [f"b.{i}.w" for i in range(20_000 - edge, 20_000)]
    assert set(shown) <= set(rows) and "dense_0.kernel" in rows
    assert f"b.{edge - 6}.w" not in rows and f"b.{20_000 - edge - 1}.w" not in rows
    omitted = 20_006 - 2 * edge
    assert rows["..."][4] == f"{omitted:,} more tensors, {2 * omitted:,} parameters (table=full)"


def test_table_full_shows_every_row(tmp_path: Path) -> None:
    count = 2 * initreg.table.TABLE_EDGE_ROWS
    done = initreg_command(tmp_path, "dry_run=true", "table=full", repeated_blocks(count))
    assert done.returncode == 0, done.stderr
    rows = table_rows(done.stdout)
    assert {f"b.{i}.w" for i in range(count)} <= set(rows) and "..." not in rows


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
    # the second name is taken by a shipped preset: choosing it, a warning says the plugin's is hidden
    points = "box = initreg_box_plugin:Box\ngpt2_normal = initreg_box_plugin:Box\n"
    (info / "entry_points.txt").write_text("[initreg.initializers]\n" + points)
    (site / "initreg_box_plugin.py").write_text(textwrap.dedent(PLUGIN))
    done = initreg_command(tmp_path, "init=box", "init.width=0.25", "output=box.safetensors", extra_path=site)
    assert done.returncode == 0, done.stderr
    kernel = load_file(tmp_path / "box.safetensors")["dense_0.kernel"]
    assert -0.25 <= kernel.min() < -0.24 and 0.24 < kernel.max() < 0.25
    assert table_rows(done.stdout)["dense_0.kernel"][4] == "box(width=0.25)"
    assert done.stderr == ""
    hidden = initreg_command(tmp_path, "init=gpt2_normal", "dry_run=true", extra_path=site)
    assert hidden.returncode == 0, hidden.stderr
    assert table_rows(hidden.stdout)["dense_0.kernel"][4].startswith("random_normal(")  # the preset
    assert hidden.stderr == (
        "initreg: warning: init=gpt2_normal selects the shipped init/gpt2_normal.yaml, "
        "which hides the init 'gpt2_normal' registered by initreg-box-plugin\n"
    )


def test_help_lists_the_groups_of_initregs_config_source(tmp_path: Path) -> None:
    env = dict(os.environ)
    done = subprocess.run([str(INITREG), "--help"], env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    (line,) = [line for line in done.stdout.splitlines() if line.startswith("init: ")]
    assert {"he_normal", "HeNormal", "gpt2_normal", "delta_orthogonal"} <= set(line.removeprefix("init: ").split(", "))
    choices = done.stdout.split("== Choices ==")[1].split("== Config ==")[0]
    groups = [line.split(":")[0] for line in choices.splitlines() if line.strip()]
    assert groups == ["backend", "init", "model", "recipe"]  # the public configs' folders are no groups of their own
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
        (["seed=" + "7" * 5000], ["'seed=777", "more than 4,300 digits"]),
        (["seed=" + "7" * 4000], ["seed must be an integer from", str(2**64 - 1), "got ~10^3999"]),
        (["seed=-1" + "0" * 19], ["seed must be", str(-(2**63)), "got -10000000000000000000"]),
        (["seed=1.5"], ["seed must be an integer from", "got 1.5"]),
        (["~dtype"], ["dtype is missing", "~dtype", "'bfloat16'"]),
        (["~seed", "output=x.npz"], ["seed is missing", "~seed"]),
        (["~dry_run"], ["dry_run is missing", "true or false"]),
        (["rules=-1"], ["rules must be a mapping", "got -1"]),
        (["dry_run=abc"], ["dry_run must be true or false; got 'abc'"]),
        (["chunk_mb=[1]"], ["chunk_mb must be a positive number of MiB", "got [1]"]),
        (["table=all"], ["table must be 'summary' or 'full'; got 'all'"]),
        (["++model.repeat=2.5"], ["model.repeat must be a mapping", "got 2.5"]),
        (["++model.layout=-1"], ["model.layout must be 'keras' or 'torch' or null; got -1"]),
        (["backend.name=true"], ["backend.name must be a registered backend's name; got True"]),
        (["seed=" + "[" * 3000 + "]" * 3000], ["'seed=[[[", "nested too deeply"]),
        (["+x=" + "{a:" * 3000 + "1" + "}" * 3000], ["'+x={a:", "nested too deeply"]),
        (["hydra/job_logging=-1"], ["unknown hydra/job_logging '-1'", "default, disabled, none, stdout"]),
        (["init=-1"], ["unknown init '-1'", "glorot_uniform"]),
        (["recipe=1"], ["unknown recipe '1'", "hf_gpt2"]),
        (["model=null"], ["unknown model 'None'", "gpt2_small"]),
        (["recipe=[x]"], ["unknown recipe 'x'", "hf_gpt2"]),
        (
            ["recipe=hf_gpt2", "model=gpt2_small", "+recipe.rules.weights.init.seed=1"],
            ["rule 'weights'", "the tree's seed decides"],
        ),
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


VICTIM = "victim.txt"
HYDRA_SETTINGS = [  # overrides that would run code or write files through Hydra's own settings
    ("+hydra.callbacks.x={_target_:pathlib.Path.touch,self:PWNED}", "hydra.callbacks.x"),
    ("++hydra={callbacks:{x:{_target_:pathlib.Path.touch,self:PWNED}}}", "hydra.callbacks.x"),
    ("+init@_global_.hydra.callbacks.x=he_normal", "hydra.callbacks.x"),
    (
        "++hydra.job_logging={version:1,handlers:{f:{class:logging.FileHandler,filename:" + VICTIM + ",mode:w}},"
        "root:{handlers:[f]}}",
        "hydra.job_logging.handlers",
    ),
    (
        "++hydra.hydra_logging={version:1,handlers:{f:{class:logging.FileHandler,filename:" + VICTIM + ",mode:w}},"
        "root:{handlers:[f]}}",
        "hydra.hydra_logging.handlers",
    ),
    ("hydra/job_logging=default", "hydra/job_logging=default:"),
    ("hydra.output_subdir=written", "hydra.output_subdir"),
    ("+hydra.job.env_set.INITREG_CACHE_DIR=planted", "hydra.job.env_set.INITREG_CACHE_DIR"),
    ("hydra.job.env_copy=[HOME]", "hydra.job.env_copy"),
    ("hydra.run.dir=written", "hydra.run.dir"),
    ("hydra.job.chdir=true", "hydra.job.chdir"),
    ("hydra.launcher._target_=pathlib.Path.touch", "hydra.launcher._target_"),
    ("+hydra.searchpath=[file://written]", "hydra.searchpath"),
]


@pytest.mark.parametrize(("override", "named"), HYDRA_SETTINGS)
@pytest.mark.parametrize("mode", [[], ["-m"]])
def test_overrides_of_hydras_settings_are_refused_before_hydra_acts_on_them(
    tmp_path: Path, override: str, named: str, mode: list[str]
) -> None:
    (tmp_path / VICTIM).write_text("kept")
    done = initreg_command(tmp_path, *mode, "dry_run=true", override)
    assert done.returncode == 2, done.stderr
    assert done.stderr.startswith("initreg: error: ") and done.stderr.count("\n") == 1, done.stderr
    assert done.stderr.startswith(f"initreg: error: {named}") and "hydra.sweep.dir" in done.stderr
    assert [p.name for p in tmp_path.iterdir()] == [VICTIM] and (tmp_path / VICTIM).read_text() == "kept"


@pytest.mark.parametrize(
    ("sweep", "named"),
    [
        ("+init@_global_.hydra.callbacks.x=he_normal,zeros", "hydra.callbacks.x:"),
        ("+init@_global_.hydra.job.env_set.x=zeros,he_normal", "hydra.job.env_set.x:"),
        ("init=he_normal,nope", "unknown init 'nope'"),
    ],
)
def test_a_multirun_with_a_bad_swept_value_stops_before_its_first_job(tmp_path: Path, sweep: str, named: str) -> None:
    done = initreg_command(tmp_path, "-m", "seed=1,2", sweep)
    assert done.returncode == 2, done.stderr
    assert done.stderr.startswith("initreg: error: ") and done.stderr.count("\n") == 1, done.stderr
    assert named in done.stderr
    assert done.stdout == "" and list(tmp_path.iterdir()) == []  # no job ran


@pytest.mark.parametrize(
    "arguments",
    [["hydra.verbose=true"], ["hydra/launcher=basic"], ["hydra/sweeper=basic"], ["hydra.mode=RUN"], ["-m", "seed=1,2"]],
)
def test_the_allowed_settings_of_hydra_still_work(tmp_path: Path, arguments: list[str]) -> None:
    done = initreg_command(tmp_path, *arguments)
    assert done.returncode == 0, done.stderr
    assert "error" not in done.stderr
    assert all(p.suffix == ".safetensors" for p in tmp_path.iterdir()) and any(tmp_path.iterdir())


def test_a_multirun_keeps_hydras_sweep_folder_where_asked(tmp_path: Path) -> None:
    done = initreg_command(tmp_path, "-m", "seed=1,2", "hydra.sweep.dir=sweep")
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "sweep" / "multirun.yaml").is_file()
    assert (tmp_path / "mlp-glorot_uniform-seed2.safetensors").is_file()


def fuzz_overrides_module() -> types.ModuleType:
    """bench/fuzz_overrides.py, imported from its path (bench/ is not a package)."""
    path = Path(__file__).resolve().parent.parent / "bench" / "fuzz_overrides.py"
    spec = importlib.util.spec_from_file_location("fuzz_overrides", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_fuzzer_tells_a_traceback_from_a_clean_error() -> None:
    fuzz = fuzz_overrides_module()
    assert fuzz.outcome(None, "Traceback (most recent call last):\n  ...\nKeyError: 'dry_run'\n") == "traceback"
    assert fuzz.outcome(2, "initreg: error: one\ninitreg: error: two\n") == "traceback"
    assert fuzz.outcome(1, "initreg: error: one\n") == "traceback"
    assert fuzz.outcome(2, "initreg: error: one\n") == "clean error"
    assert fuzz.outcome(0, "") == "ok"


def test_seeded_hostile_overrides_give_no_traceback() -> None:
    fuzz = fuzz_overrides_module()
    cases = fuzz.hostile_overrides(40, seed=2026)
    assert len({category for category, _ in cases}) == len(fuzz.CATEGORIES)  # every kind is tried
    results = {}
    for _, arguments in cases:
        code, stderr = fuzz.run_command(arguments)
        results[" ".join(arguments)[:200]] = fuzz.outcome(code, stderr), stderr[-300:]
    tracebacks = {line: stderr for line, (result, stderr) in results.items() if result == "traceback"}
    assert not tracebacks
    assert sum(result == "clean error" for result, _ in results.values()) >= 20  # hostile input mostly refused


def test_hydra_full_error_shows_the_traceback(tmp_path: Path) -> None:
    env = {**os.environ, "HYDRA_FULL_ERROR": "1"}
    done = subprocess.run([str(INITREG), "dtype=bfloat"], cwd=tmp_path, env=env, capture_output=True, text=True)
    assert done.returncode != 0 and "Traceback" in done.stderr and "'bfloat'" in done.stderr


def safetensors_file(path: Path, header: str, data_bytes: int) -> None:
    """A safetensors file with this JSON header text and zeroed data, as a hostile checkpoint might be."""
    text = header.encode()
    text += b" " * (-len(text) % 8)
    path.write_bytes(struct.pack("<Q", len(text)) + text + bytes(data_bytes))


def bomb_npz(path: Path) -> None:
    """236 bytes declaring 10^15 float32 values."""
    header = io.BytesIO()
    np.lib.format.write_array_header_1_0(header, {"descr": "<f4", "fortran_order": False, "shape": (10**15,)})
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("w.npy", header.getvalue())


def unsupported_npz(path: Path) -> None:
    """A compressed .npz whose member claims a compression method zipfile does not know."""
    np.savez_compressed(path, w=np.zeros((3, 3), np.float32))
    raw = bytearray(path.read_bytes())
    central = raw.find(b"PK\x01\x02")
    raw[8:10] = raw[central + 10 : central + 12] = (99).to_bytes(2, "little")
    path.write_bytes(bytes(raw))


F32 = '{{"dtype":"F32","shape":{},"data_offsets":{}}}'
CHECKPOINTS = {
    "bomb.safetensors": lambda p: safetensors_file(p, '{"w":' + F32.format("[10000000000000000]", "[0,4]") + "}", 4),
    "bomb.npz": bomb_npz,
    "deep.safetensors": lambda p: safetensors_file(p, '{"w":' + "[" * 100_000 + "]" * 100_000 + "}", 0),
    "infinity.safetensors": lambda p: safetensors_file(p, '{"w":' + F32.format("[Infinity]", "[0,8]") + "}", 8),
    "rank65.safetensors": lambda p: safetensors_file(p, '{"w":' + F32.format([1] * 65, "[0,4]") + "}", 4),
    "method.npz": unsupported_npz,
}


@pytest.mark.parametrize(
    ("arguments", "named"),
    [
        (["model=file", "model.path=bomb.safetensors"], ["'bomb.safetensors'", "'w'", "40000000000000000", " 4"]),
        (["model=file", "model.path=bomb.npz"], ["'bomb.npz'", "'w'", "4000000000000000", "stores 0"]),
        (["model=file", "model.path=deep.safetensors"], ["'deep.safetensors'", "nested too deeply"]),
        (["model=file", "model.path=infinity.safetensors"], ["'infinity.safetensors'", "Infinity"]),
        (["model=file", "model.path=rank65.safetensors"], ["'rank65.safetensors'", "'w'", "at most 64"]),
        (["model=file", "model.path=method.npz"], ["'method.npz'", "compression method"]),
        (["+model.params.big=[" + "1" + "0" * 200 + ",2]"], ["'big'", "~10^200 elements", str(2**63 - 1)]),
        (["+model.params.big=[1000000000000000]"], ["not enough space", "needs 40000000009", "(4.0 PB)", "free"]),
        (["model=gpt2_small", "model.layers=100000000"], ["model.repeat.h.count=100000000", "1,000,000"]),
        (["init=constant", "init.value=hello"], ["value='hello'"]),
        (["init=constant", "init.value=inf"], ["value=inf", "finite"]),
        (["init=variance_scaling", "init.scale=inf"], ["scale=inf", "finite"]),
        (["init=constant", "init.value=1e39", "output=new/x.npz"], ["'dense_0.kernel'", "inf or NaN", "float32"]),
        (["init=random_normal", "init.stddev=1e30", "dtype=float16"], ["'dense_0.kernel'", "inf or NaN", "float16"]),
        (["init=random_normal", "init.stddev=-inf"], ["stddev=-inf"]),
        (["init=variance_scaling", "init.input_axes=[5]", "init.output_axes=[1]"], ["axis 5", "rank 2", "-2 to 1"]),
        (["rules.biases.init=identity", "output=new/sub/x.safetensors"], ["'dense_0.bias'", "2D"]),
        (["chunk_mb=0", "output=new/x.safetensors"], ["chunk_mb"]),
        (["output=/proc/x.safetensors"], ["cannot write '/proc/x.safetensors': No such file or directory"]),
    ],
)
def test_malformed_input_gives_one_line_and_writes_nothing(
    tmp_path: Path, arguments: list[str], named: list[str]
) -> None:
    for name, make in CHECKPOINTS.items():
        make(tmp_path / name)
    done = initreg_command(tmp_path, *arguments)
    assert done.returncode == 2, done.stderr
    assert done.stderr.startswith("initreg: error: ") and done.stderr.count("\n") == 1, done.stderr
    for part in named:
        assert part in done.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(CHECKPOINTS)  # no file, no folder


def test_control_characters_in_tensor_names_are_escaped(tmp_path: Path) -> None:
    name, ints = "w\x1b[31mred\x07", "n\x1b]0;title\x07"
    header = {name: {"dtype": "F32", "shape": [2, 2], "data_offsets": [0, 16]}}
    header[ints] = {"dtype": "I32", "shape": [1], "data_offsets": [16, 20]}
    safetensors_file(tmp_path / "c.safetensors", json.dumps(header), 20)
    done = initreg_command(
        tmp_path, "model=file", "model.path=c.safetensors", "allow_unused_rules=true", "output='[bold]x.safetensors'"
    )
    assert done.returncode == 0, done.stderr
    assert "\x1b" not in done.stdout + done.stderr and "\x07" not in done.stdout + done.stderr
    assert "w\\x1b[31mred\\x07" in table_rows(done.stdout)
    assert "n\\x1b]0;title\\x07 (int32)" in done.stderr
    assert "wrote [bold]x.safetensors" in done.stdout
    failed = initreg_command(tmp_path, "model=file", "model.path=c.safetensors", "output=y.safetensors")
    assert failed.returncode == 2 and "\x1b" not in failed.stderr and "'w\\x1b[31mred\\x07'" in failed.stderr


def test_a_full_disk_gives_one_line_naming_the_target_and_leaves_nothing(tmp_path: Path) -> None:
    import resource
    import signal

    def limit_file_size() -> None:  # writes past 64 KiB fail with EFBIG, as on a full disk
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (1 << 16, 1 << 16))

    env = {k: v for k, v in os.environ.items() if k != "HYDRA_FULL_ERROR"}
    for output in ("new/x.safetensors", "x.npz"):
        done = subprocess.run(
            [str(INITREG), f"output={output}"], cwd=tmp_path, env=env, capture_output=True, text=True,
            preexec_fn=limit_file_size, timeout=120,
        )  # fmt: skip
        assert done.returncode == 2
        assert done.stderr == f"initreg: error: cannot write '{output}': File too large\n"
        assert list(tmp_path.iterdir()) == []


def test_help_into_a_closed_pipe_ends_quietly(tmp_path: Path) -> None:
    process = subprocess.Popen([str(INITREG), "--help"], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    assert process.stdout is not None and process.stderr is not None
    process.stdout.close()  # the reader is gone before anything is written, as with `| head -0`
    assert process.wait(timeout=60) == 1
    assert process.stderr.read() == b""


def test_a_table_into_a_pipe_its_reader_closes_ends_quietly(tmp_path: Path) -> None:
    """`initreg ... | head -1`: the table (over 64 KiB, more than a pipe holds) meets the closed pipe."""
    command = [str(INITREG), "model=gpt2_xl", "dry_run=true", "table=full"]
    process = subprocess.Popen(command, cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    assert process.stdout is not None and process.stderr is not None
    assert "plan (dry run)" in process.stdout.readline().decode()
    process.stdout.close()
    assert process.wait(timeout=120) == 1
    assert process.stderr.read() == b""


@pytest.mark.parametrize("signum", ["SIGTERM", "SIGHUP"])
def test_sigterm_and_sighup_while_writing_leave_nothing(tmp_path: Path, signum: str) -> None:
    import signal
    import time

    env = {k: v for k, v in os.environ.items() if k != "HYDRA_FULL_ERROR"}
    process = subprocess.Popen(
        [str(INITREG), "init=orthogonal", "+model.params.w=[6000,6000]",
         "output=out/w.safetensors"],
        cwd=tmp_path, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    deadline = time.monotonic() + 60
    while not list(tmp_path.glob("out/.w.safetensors.*.tmp")):  # the header is written, the matrix is drawn
        assert process.poll() is None and time.monotonic() < deadline, "the temporary file never appeared"
        time.sleep(0.01)
    process.send_signal(getattr(signal, signum))
    assert process.wait(timeout=60) == 128 + getattr(signal, signum)
    assert process.stderr is not None and process.stderr.read() == ""
    assert list(tmp_path.iterdir()) == []


def test_a_huge_repeat_count_is_refused_before_any_list_is_made() -> None:
    model = {"params": {"wte": [10, 4]}, "repeat": {"h": {"count": 10**12, "params": {"w": [4, 4], "b": [4]}}}}
    with pytest.raises(initreg.InitregError, match=r"model.repeat.h.count=1000000000000 makes the model "
                       r"2,000,000,000,001 parameters or more; valid: at most 1,000,000 in all"):  # fmt: skip
        model_spec(model)
    model["repeat"]["h"]["count"] = 3  # type: ignore[index]
    spec, _ = model_spec(model)
    assert len(initreg.tree.flatten(spec)) == 7


# Marks, in the file INITREG_TEST_MARKS, what ran at exit: the atexit functions ("atexit"), the teardown of
# the modules ("teardown", from an object that only that frees) and, with INITREG_TEST_LATE_THREAD, a
# non-daemon thread still running when the command ends ("late thread", written 0.5 s after the output exists).
EXIT_MARKS = """
import atexit, os, pathlib, threading, time

MARKS = os.environ["INITREG_TEST_MARKS"]


def mark(what):
    with open(MARKS, "a") as marks:
        marks.write(what + "\\n")


class FreedAtTeardown:
    def __init__(self):  # __del__ uses nothing but its own attributes: the teardown may have cleared the rest
        self.write, self.marks = os.write, os.open(MARKS, os.O_WRONLY | os.O_CREAT | os.O_APPEND)

    def __del__(self):
        self.write(self.marks, b"teardown\\n")


freed_at_teardown = FreedAtTeardown()
atexit.register(mark, "atexit")
if os.environ.get("INITREG_TEST_LATE_THREAD"):
    def late():
        while not list(pathlib.Path().glob("*.safetensors")):
            time.sleep(0.01)
        time.sleep(0.5)
        mark("late thread")

    threading.Thread(target=late).start()
"""


def exit_marks(
    tmp_path: Path, command: list[str], **variables: str
) -> tuple[subprocess.CompletedProcess[str], list[str]]:
    """Runs `command` in tmp_path/work with EXIT_MARKS as sitecustomize; its result and the marks written."""
    site, work, marks = tmp_path / "site", tmp_path / "work", tmp_path / "marks"
    site.mkdir()
    work.mkdir()
    (site / "sitecustomize.py").write_text(EXIT_MARKS)
    env = {k: v for k, v in os.environ.items() if k != "HYDRA_FULL_ERROR"}
    env.update(PYTHONPATH=str(site), INITREG_TEST_MARKS=str(marks), **variables)
    done = subprocess.run(command, cwd=work, env=env, capture_output=True, text=True, timeout=120)
    return done, marks.read_text().splitlines() if marks.exists() else []


def test_the_console_script_leaves_without_the_teardown_once_its_output_is_written(tmp_path: Path) -> None:
    assert INITREG is not None and "initreg.cli import console" in Path(INITREG).read_text(), (
        f"{INITREG} predates the initreg.cli:console entry point: reinstall the project (pip install -e .)"
    )
    done, marks = exit_marks(tmp_path, [str(INITREG), "init=lecun_normal", "seed=3"])
    assert done.returncode == 0, done.stderr
    assert marks == ["atexit"]  # the atexit functions ran, the teardown did not
    written = load_file(tmp_path / "work" / "mlp-lecun_normal-seed3.safetensors")
    spec, _ = model_spec(model_config("mlp"))
    expected = initreg.init_tree(spec, {"weights": {"match": "*", "init": "lecun_normal"},
                                        "biases": {"match": "*.bias", "init": "zeros"}}, seed=3)  # fmt: skip
    assert written.keys() == initreg.tree.flatten(expected).keys()
    assert all(np.array_equal(written[k], v) for k, v in initreg.tree.flatten(expected).items())
    assert done.stdout.rstrip().endswith("tensors") and "wrote mlp-lecun_normal-seed3.safetensors" in done.stdout


def test_the_console_script_keeps_exit_codes_and_messages_of_bad_input(tmp_path: Path) -> None:
    done, marks = exit_marks(tmp_path, [str(INITREG), "init=no_such_init"])
    assert done.returncode == 2
    assert done.stderr.startswith("initreg: error: ") and done.stderr.count("\n") == 1
    assert marks == ["atexit"]
    assert list((tmp_path / "work").iterdir()) == []


def test_main_called_from_python_returns_and_the_interpreter_exits_as_usual(tmp_path: Path) -> None:
    code = "import sys; from initreg.cli import main; sys.argv[1:] = ['seed=3']; main(); print('returned')"
    done, marks = exit_marks(tmp_path, [sys.executable, "-c", code])
    assert done.returncode == 0, done.stderr
    assert done.stdout.rstrip().endswith("returned")
    assert marks == ["atexit", "teardown"]


def test_a_thread_still_running_at_the_end_is_waited_for(tmp_path: Path) -> None:
    done, marks = exit_marks(tmp_path, [str(INITREG), "seed=3"], INITREG_TEST_LATE_THREAD="1")
    assert done.returncode == 0, done.stderr
    assert marks == ["late thread", "atexit", "teardown"]


COUNT_COMPOSITIONS = """
import sys
from hydra._internal.config_loader_impl import ConfigLoaderImpl
import initreg.cli

compose, made = ConfigLoaderImpl.load_configuration, []
def counted(*args, **kwargs):
    made.append(kwargs.get("validate_sweep_overrides", True))
    return compose(*args, **kwargs)
ConfigLoaderImpl.load_configuration = counted
if sys.argv[1] == "--store":  # as code that stores a config of its own in Hydra's ConfigStore
    from hydra.core.config_store import ConfigStore

    ConfigStore.instance().store(group="model", name="stored", node={"params": {"w": [2, 2]}})
    del sys.argv[1]
sys.argv = ["initreg", *sys.argv[1:]]
try:
    initreg.cli.main()
finally:
    print("compositions:", len(made), file=sys.stderr)
"""


@pytest.mark.parametrize(
    ("arguments", "compositions"),
    [
        (["init=lecun_normal", "seed=3"], 2),  # the run's and the command's own, which answers Hydra's probe
        (["hydra.mode=RUN"], 3),  # an override names Hydra: the probe composes as in Hydra
        (["+init@_global_.x=he_normal"], 2),  # a package outside Hydra's node
        (["--store", "seed=3"], 3),  # Hydra's ConfigStore holds more than Hydra's configs
    ],
)
def test_hydras_mode_probe_is_answered_by_the_commands_own_config_where_nothing_can_change_it(
    tmp_path: Path, arguments: list[str], compositions: int
) -> None:
    done = subprocess.run(
        [sys.executable, "-c", COUNT_COMPOSITIONS, *arguments, "dry_run=true"],
        cwd=tmp_path, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert done.stderr.splitlines()[-1] == f"compositions: {compositions}"


def test_a_config_folder_of_the_users_is_probed_as_in_hydra(tmp_path: Path) -> None:
    """An option from --config-dir may set hydra.mode, which only Hydra's own probe reads: it is kept."""
    (tmp_path / "conf" / "model").mkdir(parents=True)
    mlp = (Path(initreg.__file__).parent.parent / "configs" / "command" / "model" / "mlp.yaml").read_text()
    multirun = "# @package _global_\nhydra:\n  mode: MULTIRUN\nmodel:\n" + textwrap.indent(mlp, "  ")
    (tmp_path / "conf" / "model" / "multi.yaml").write_text(multirun)
    done = initreg_command(tmp_path, "--config-dir", str(tmp_path / "conf"), "model=multi", "dry_run=true")
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("job 0: model=multi "), done.stdout


def test_no_option_of_the_commands_groups_sets_hydras_settings() -> None:
    """What lets the command's own config answer Hydra's mode probe (cli._mode_is_the_commands): no yaml
    shipped besides the primary config (configs/command, configs/public) has a `hydra` key or chooses a
    hydra/ option, so none chosen by an override, or named by --config-name, sets hydra.mode or a search path."""
    from omegaconf import OmegaConf

    root = Path(initreg.__file__).parent.parent / "configs"
    options = [path for path in root.rglob("*.yaml") if path != root / "command" / "config.yaml"]
    assert len(options) > 20
    for path in options:
        text = path.read_text()
        loaded = OmegaConf.to_container(OmegaConf.create(text))
        assert isinstance(loaded, dict)
        assert "hydra" not in loaded, path  # at the root: as a primary config (-cn) or a _global_ option
        assert "hydra" not in str(loaded.get("defaults", "")), path
