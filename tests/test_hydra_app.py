"""initreg inside a Hydra app of one's own: examples/hydra_app run as a user would, in subprocesses.

Every case runs against this environment (an editable install, in development and CI) and, in one
`wheel` test, against the built wheels installed into a fresh venv. The cases: overrides of the `init`
group (a plugin's name too), added rules, a multirun, --help and tab completion, the compose-time
errors (a preset's too) and the one-line "did you mean", a bad interpolated value, the Compose API from
a plain script (instantiate, a partial, initreg.get, plain containers that json and yaml dump, and a
pickle read back in a fresh process), recipes; and apps that did not opt in (`hydra.searchpath`), which
compose, list and fail byte for byte as they do with initreg's plugin hidden.
"""

from __future__ import annotations

import functools
import json
import math
import os
import shutil
import subprocess
import sys
import textwrap
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from safetensors.numpy import load_file

import initreg
from initreg import recipes
from tests.test_wheel import build_wheel, fresh_venv, run

REPO = Path(__file__).resolve().parents[1]
EXAMPLE = REPO / "examples" / "hydra_app"
SHAPES = {"hidden.weight": (16, 8), "hidden.bias": (16,), "out.weight": (4, 16), "out.bias": (4,)}
PROBE = "configs/public/recipe/probe.yaml"
PROBE_RECIPE = '# @package _global_\nrules:\n  probe: {match: "*.bias", init: ones}\n'
NOT_IMPORTED = ("initreg", "numpy", "numba", "torch", "initreg_extra", "initreg_torch")


@dataclass(frozen=True)
class App:
    """A Python (with initreg installed one way or another) and a copy of the example app to run."""

    python: Path
    folder: Path

    def run(self, *args: str, cwd: Path, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
        return self.script(self.folder / "train.py", *args, cwd=cwd, env=env)

    def script(
        self, path: Path, *args: str, cwd: Path, env: dict[str, str] | None = None
    ) -> subprocess.CompletedProcess[str]:
        clean = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "HYDRA_FULL_ERROR", "COMP_LINE")}
        return subprocess.run(
            [str(self.python), str(path), *args], cwd=cwd, env={**clean, **(env or {})},
            capture_output=True, text=True, timeout=300,
        )  # fmt: skip

    def ok(self, *args: str, cwd: Path, env: dict[str, str] | None = None) -> str:
        done = self.run(*args, cwd=cwd, env=env)
        assert done.returncode == 0, done.stderr
        return done.stdout


def expected(init: Any, seed: int, biases: Any = "zeros") -> dict[str, np.ndarray]:
    rules = {"weights": {"match": "*.weight", "init": init}, "biases": {"match": "*.bias", "init": biases}}
    return initreg.init_tree(SHAPES, rules, seed=seed, layout="torch")


def assert_weights(path: Path, wanted: dict[str, np.ndarray]) -> None:
    written = load_file(path)
    assert set(written) == set(wanted)
    for name, array in wanted.items():
        np.testing.assert_array_equal(written[name], array)


def write(folder: Path, files: dict[str, str]) -> Path:
    for name, text in files.items():
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        (folder / name).write_text(textwrap.dedent(text))
    return folder


# --- the cases ---------------------------------------------------------------------------------


def case_an_init_and_a_seed(app: App, tmp: Path) -> None:
    out = app.ok("init=he_normal", "seed=3", "save=w.safetensors", cwd=tmp)
    assert "hidden.weight [16, 8] rule=weights HeNormal(" in out
    assert_weights(tmp / "w.safetensors", expected("he_normal", 3))


def case_an_init_seed_warns_once_and_the_tree_seed_decides(app: App, tmp: Path) -> None:
    done = app.run("init=he_normal", "init.seed=5", "seed=3", "save=w.safetensors", cwd=tmp)
    assert done.returncode == 0, done.stderr
    assert done.stderr.count("IgnoredSeedWarning: rule 'weights': init seed=5 is not used") == 1, done.stderr
    assert_weights(tmp / "w.safetensors", expected("he_normal", 3))


def case_an_initializer_with_its_arguments(app: App, tmp: Path) -> None:
    app.ok("init=variance_scaling", "init.scale=2", "init.mode=fan_avg", "save=w.safetensors", cwd=tmp)
    assert_weights(tmp / "w.safetensors", expected({"name": "variance_scaling", "scale": 2.0, "mode": "fan_avg"}, 0))


def case_a_plugins_initializer(app: App, tmp: Path) -> None:
    out = app.ok("init=torch_default", "seed=1", "save=w.safetensors", cwd=tmp)
    assert "rule=weights TorchDefault(" in out
    assert_weights(tmp / "w.safetensors", expected("torch_default", 1))


def case_an_added_rule(app: App, tmp: Path) -> None:
    out = app.ok('+rules.x={match:"*.bias",init:ones}', "save=w.safetensors", cwd=tmp)
    assert "hidden.bias [16] rule=x Ones()" in out
    assert_weights(tmp / "w.safetensors", expected("he_normal", 0, biases="ones"))


def case_a_multirun(app: App, tmp: Path) -> None:
    done = app.run("-m", "init=lecun_normal,he_normal", "save=${hydra:runtime.choices.init}.safetensors", cwd=tmp)
    assert done.returncode == 0, done.stderr
    assert "#0 : init=lecun_normal" in done.stdout and "#1 : init=he_normal" in done.stdout
    for name in ("lecun_normal", "he_normal"):
        assert_weights(tmp / f"{name}.safetensors", expected(name, 0))


def case_help_shows_the_node(app: App, tmp: Path) -> None:
    out = app.ok("--help", cwd=tmp)  # Hydra lists groups before reading hydra.searchpath: completion lists them
    assert "init:\n  _target_: initreg.schemas.make\n  name: he_normal\n" in out


def case_tab_completion(app: App, tmp: Path) -> None:
    out = app.ok("-sc", "query=bash", cwd=tmp, env={"COMP_LINE": "python train.py init=he_"})
    assert sorted(out.split()) == ["init=he_normal", "init=he_uniform"]
    out = app.ok("-sc", "query=bash", cwd=tmp, env={"COMP_LINE": "python train.py init=gpt2"})
    assert out.split() == ["init=gpt2_normal"]
    out = app.ok("-sc", "query=bash", cwd=tmp, env={"COMP_LINE": "python train.py recipe=hf_"})
    assert sorted(out.split()) == [f"recipe={name}" for name in recipes.names() if name.startswith("hf_")]
    out = app.ok("-sc", "query=bash", cwd=tmp, env={"COMP_LINE": "python train.py init=variance_scaling init.mo"})
    assert out.split() == ["init.mode="]


def case_a_bad_value_fails_at_compose_time(app: App, tmp: Path, overrides: tuple[str, ...], named: list[str]) -> None:
    done = app.run(*overrides, "save=w.safetensors", cwd=tmp)
    assert done.returncode == 1
    for part in named:
        assert part in done.stderr, done.stderr
    assert "Traceback" not in done.stderr
    assert not (tmp / "w.safetensors").exists()


def case_a_misspelt_name_gets_one_line(app: App, tmp: Path) -> None:
    done = app.run("init=he_normall", cwd=tmp)
    assert done.returncode == 1
    first, *rest = done.stderr.splitlines()
    assert first.startswith("unknown init 'he_normall'; did you mean 'he_normal' or ")
    assert ", variance_scaling, " in first and rest == [
        "",
        "Set the environment variable HYDRA_FULL_ERROR=1 for a complete stack trace.",
    ]


def case_a_bad_interpolated_value_names_its_key(app: App, tmp: Path) -> None:
    done = app.run("init=variance_scaling", "+scale=abc", "init.scale=${scale}", cwd=tmp)
    assert done.returncode == 1
    assert "init.scale: While dereferencing interpolation '${scale}': Value 'abc'" in done.stderr


COMPOSE = """
    import json, pickle, sys
    from hydra import compose, initialize_config_dir, initialize_config_module
    from hydra.utils import instantiate
    import initreg

    import yaml
    from omegaconf import OmegaConf

    with initialize_config_dir(config_dir=sys.argv[1], version_base="1.3"):
        cfg = compose("config", overrides=["init=variance_scaling", "init.scale=2", "init.mode=fan_avg", "init.seed=5"])
        preset = compose("config", overrides=["init=gpt2_normal", "init.seed=3"])
    made = instantiate(cfg.init)
    reference = initreg.VarianceScaling(scale=2.0, mode="fan_avg", seed=5)
    with open(sys.argv[2], "wb") as file:
        pickle.dump(cfg, file)
    container = OmegaConf.to_container(cfg, resolve=True)
    print(json.dumps({
        "instantiated": repr(made),
        "equal": made == reference == initreg.get(cfg.init) == instantiate(cfg.init, _partial_=True)()
        == initreg.get(OmegaConf.to_object(cfg.init)),
        "same_values": bool((made((6, 5)) == reference((6, 5))).all()),
        "dumped": json.loads(json.dumps(container)) == yaml.safe_load(yaml.safe_dump(container)) == container,
        "mode": container["rules"]["weights"]["init"]["mode"],
        "preset": repr(instantiate(preset.init)),
        "preset_target": preset.init.get("_target_"),
    }))
"""

UNPICKLE = """
    import pickle, sys
    from omegaconf import OmegaConf
    with open(sys.argv[1], "rb") as file:
        cfg = pickle.load(file)
    print(cfg.init.name, cfg.init.mode, cfg.rules.weights.init.scale, OmegaConf.get_type(cfg.init).__qualname__)
    try:
        cfg.init.mode = "fan_avgg"
    except Exception as error:
        print(type(error).__name__)
"""


def case_the_compose_api_from_a_plain_script(app: App, tmp: Path) -> None:
    script = write(tmp, {"compose.py": COMPOSE, "unpickle.py": UNPICKLE})
    done = app.script(script / "compose.py", str(app.folder / "conf"), str(tmp / "cfg.pickle"), cwd=tmp)
    assert done.returncode == 0, done.stderr
    found = json.loads(done.stdout)
    assert found["instantiated"].startswith("VarianceScaling(seed=5, scale=2.0, mode='fan_avg'")
    assert found["equal"] and found["same_values"] and found["dumped"] and found["mode"] == "fan_avg"
    assert found["preset"] == "RandomNormal(seed=3, mean=0.0, stddev=0.02)"
    assert found["preset_target"] == "initreg.schemas.make"
    done = app.script(script / "unpickle.py", str(tmp / "cfg.pickle"), cwd=tmp)  # a fresh process
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["variance_scaling", "fan_avg", "2.0", "init/variance_scaling", "ValidationError"]


RECIPE = """
    import sys
    import numpy as np
    from hydra import compose, initialize_config_dir
    import initreg
    from initreg import recipes

    with initialize_config_dir(config_dir=sys.argv[1], version_base="1.3"):
        cfg = compose("config", overrides=["recipe=hf_gpt2"])
    block = {"attn.c_attn.weight": (64, 192), "attn.c_proj.weight": (64, 64), "attn.c_proj.bias": (64,),
             "ln_1.weight": (64,)}
    spec = {f"h.{i}.{name}": shape for i in range(4) for name, shape in block.items()}
    from_app = recipes.from_config("hf_gpt2", cfg.recipe, {"initializer_range": 0.02, "n_layer": 4})
    shipped = recipes.load("hf_gpt2", initializer_range=0.02, n_layer=4)
    made = initreg.init_tree(spec, from_app.rules, seed=2)
    again = initreg.init_tree(spec, shipped.rules, seed=2)
    print(all(np.array_equal(made[path], again[path]) for path in spec))
    print(*(round(entry.target_std, 6) for entry in initreg.plan(spec, from_app.rules)[:2]))
"""


def case_a_recipe_from_the_recipe_group(app: App, tmp: Path) -> None:
    write(tmp, {"recipe.py": RECIPE})
    done = app.script(tmp / "recipe.py", str(app.folder / "conf"), cwd=tmp)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["True", "0.02", str(round(0.02 / 8**0.5, 6))]  # c_proj: 0.02 / sqrt(2 n_layer)


def case_a_recipe_on_a_gpt2_of_another_depth(app: App, tmp: Path) -> None:
    """GPT-2's residual projections get 0.02 / sqrt(2 n_layer) with the model's n_layer (3), not the recipe's 12."""
    out = app.ok("model.name=gpt2", "model.gpt2.n_layer=3", "recipe=hf_gpt2", "seed=2", "save=w.safetensors", cwd=tmp)
    projection = "transformer.h.2.mlp.c_proj.weight [128, 32] rule=residual_projections RandomNormal("
    assert f"{projection}seed=None, mean=0.0, stddev={0.02 / math.sqrt(2 * 3)!r})" in out
    assert f"stddev={0.02 / math.sqrt(2 * 12)!r}" not in out
    written = load_file(tmp / "w.safetensors")
    np.testing.assert_array_equal(written["lm_head.weight"], written["transformer.wte.weight"])  # tied
    spec = {
        name: array.shape for name, array in written.items() if name != "lm_head.weight" and ".attn.bias" not in name
    }
    recipe = recipes.load("hf_gpt2", initializer_range=0.02, n_layer=3)
    wanted = initreg.init_tree(spec, recipe.rules, seed=2, layout="torch")
    for name, array in wanted.items():
        np.testing.assert_array_equal(written[name], array)


def case_a_plugin_is_loaded_only_when_asked_for(app: App, tmp: Path) -> None:
    script = """
        import sys
        from hydra import compose, initialize_config_dir
        with initialize_config_dir(config_dir=sys.argv[1], version_base="1.3"):
            compose("config", overrides=[sys.argv[2]])
        print("initreg_extra" in sys.modules)
    """
    write(tmp, {"loads.py": script})
    conf = str(app.folder / "conf")
    assert app.script(tmp / "loads.py", conf, "init=he_normal", cwd=tmp).stdout.split() == ["False"]
    assert app.script(tmp / "loads.py", conf, "init=torch_default", cwd=tmp).stdout.split() == ["True"]


UNRELATED = {
    "app.py": """
        import hydra
        from hydra.core.config_store import ConfigStore
        from omegaconf import OmegaConf

        ConfigStore.instance().store(group="init", name="lecun_normal", node={"kind": "stored"})

        @hydra.main(config_path="conf", config_name="config", version_base="1.3")
        def main(cfg):
            print(OmegaConf.to_yaml(cfg))

        main()
    """,
    "conf/config.yaml": "defaults:\n  - init: small\n  - _self_\nsteps: 3\n",
    "conf/init/small.yaml": "kind: small\n",
    "conf/init/he_normal.yaml": "kind: mine\n",
    # the plain-Hydra pattern of torch's own init functions
    "conf/init/xavier_normal.yaml": "_target_: torch.nn.init.xavier_normal_\n_partial_: true\n",
    "hidden.py": """
        import runpy, sys
        sys.modules["hydra_plugins"] = None  # Hydra's plugin scan finds no plugin: as if initreg were not installed
        sys.argv = sys.argv[1:]
        runpy.run_path(sys.argv[0], run_name="__main__")
    """,
}
NOT_OPTED_IN_RUNS = [
    [], ["init=he_normal"], ["init=lecun_normal"], ["init=xavier_normal"], ["init=kaiming_normal"],
    ["init=he_normall"], ["+recipe=hf_gpt2"], ["--help"], ["--cfg", "job"], ["-sc", "query=bash"],
]  # fmt: skip


def case_an_app_that_did_not_opt_in_is_untouched(app: App, tmp: Path) -> None:
    folder = write(tmp / "unrelated", UNRELATED)
    for overrides in NOT_OPTED_IN_RUNS:
        env = {"COMP_LINE": "python app.py init="} if overrides[:1] == ["-sc"] else None
        with_plugin = app.script(folder / "app.py", *overrides, cwd=tmp, env=env)
        without = app.script(folder / "hidden.py", str(folder / "app.py"), *overrides, cwd=tmp, env=env)
        assert (with_plugin.returncode, with_plugin.stdout, with_plugin.stderr) == (
            without.returncode, without.stdout, without.stderr,
        ), overrides  # fmt: skip
    assert app.script(folder / "app.py", "init=he_normal", cwd=tmp).stdout == "init:\n  kind: mine\nsteps: 3\n\n"
    assert app.script(folder / "app.py", "init=lecun_normal", cwd=tmp).stdout == "init:\n  kind: stored\nsteps: 3\n\n"
    help_text = app.script(folder / "app.py", "--help", cwd=tmp).stdout
    assert "init: he_normal, lecun_normal, small, xavier_normal\n" in help_text and "recipe" not in help_text
    done = app.script(folder / "app.py", "init=kaiming_normal", cwd=tmp)  # initreg-extra's name: not served here
    assert done.returncode == 1 and "Could not find 'init/kaiming_normal'" in done.stderr


def case_an_unrelated_app_imports_no_heavy_module(app: App, tmp: Path) -> None:
    script = f"""
        import sys
        from hydra import compose, initialize_config_dir
        from hydra.core.global_hydra import GlobalHydra
        with initialize_config_dir(config_dir=sys.argv[1], version_base="1.3"):
            cfg = compose("config")
            paths = [str(p.path) for p in GlobalHydra.instance().config_loader().get_search_path().get_path()]
        heavy = sorted(m for m in sys.modules if m.split(".")[0] in {NOT_IMPORTED!r})
        print(cfg.init.kind, any(path.startswith("initreg://") for path in paths), *heavy)
    """
    folder = write(tmp / "unrelated", {**UNRELATED, "modules.py": script})
    done = app.script(folder / "modules.py", str(folder / "conf"), cwd=tmp)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["small", "False"]  # initreg:// is not on its search path; nothing heavy imported


COMPOSE_ERRORS = {
    "init.scale=abc": ["init.scale=abc", "'abc'", "Float", "full_key: init.scale"],
    "init.mode=fan_avgg": [
        "'fan_avgg'",
        "expected one of [fan_in, fan_out, fan_avg, fan_geo_avg]",
        "full_key: init.mode",
    ],
    "init.scael=2": ["Key 'scael' not in 'init/variance_scaling'", "full_key: init.scael"],
    "init.input_axes=[0,x]": ["'x'", "Integer", "full_key: init.input_axes[1]"],
}
PRESET_ERRORS = {
    "init.stddev=abc": ["'abc'", "Float", "full_key: init.stddev"],
    "init.mean=[1]": ["full_key: init.mean"],
    "init.stdev=2": ["Key 'stdev' not in", "full_key: init.stdev"],
}
PLUGIN_CHOICE_ERRORS = {
    "init.nonlinearity=relux": ["'relux'", "expected one of [linear, ", "full_key: init.nonlinearity"],
    "init.mode=fan_avg": ["'fan_avg'", "expected one of [fan_in, fan_out]", "full_key: init.mode"],
}

CASES: dict[str, Callable[[App, Path], None]] = {
    "init_and_seed": case_an_init_and_a_seed,
    "init_seed_warns": case_an_init_seed_warns_once_and_the_tree_seed_decides,
    "init_arguments": case_an_initializer_with_its_arguments,
    "plugin_name": case_a_plugins_initializer,
    "added_rule": case_an_added_rule,
    "multirun": case_a_multirun,
    "help": case_help_shows_the_node,
    "tab_completion": case_tab_completion,
    **{
        f"compose_error[{override}]": functools.partial(
            case_a_bad_value_fails_at_compose_time, overrides=("init=variance_scaling", override), named=named
        )
        for override, named in COMPOSE_ERRORS.items()
    },
    **{
        f"preset_error[{override}]": functools.partial(
            case_a_bad_value_fails_at_compose_time, overrides=("init=gpt2_normal", override), named=named
        )
        for override, named in PRESET_ERRORS.items()
    },
    **{
        f"plugin_choice_error[{override}]": functools.partial(
            case_a_bad_value_fails_at_compose_time, overrides=("init=kaiming_normal", override), named=named
        )
        for override, named in PLUGIN_CHOICE_ERRORS.items()
    },
    "did_you_mean": case_a_misspelt_name_gets_one_line,
    "interpolated_error": case_a_bad_interpolated_value_names_its_key,
    "compose_api": case_the_compose_api_from_a_plain_script,
    "recipe_group": case_a_recipe_from_the_recipe_group,
    "recipe_gpt2_depth": case_a_recipe_on_a_gpt2_of_another_depth,
    "lazy_plugin": case_a_plugin_is_loaded_only_when_asked_for,
    "not_opted_in": case_an_app_that_did_not_opt_in_is_untouched,
    "unrelated_app_modules": case_an_unrelated_app_imports_no_heavy_module,
}


@pytest.mark.parametrize("case", CASES.values(), ids=CASES.keys())
def test_the_example_app(case: Callable[[App, Path], None], tmp_path: Path) -> None:
    case(App(Path(sys.executable), EXAMPLE), tmp_path)


def test_hydra_discovers_the_config_source_and_no_search_path_plugin_in_this_environment() -> None:
    """Hydra's plugin scan walks hydra_plugins.__path__; after `pip install -e .` it must hold a real folder.
    initreg adds nothing to any app's search path: the app names initreg:// itself."""
    code = (
        "from hydra.core.plugins import Plugins; from hydra.plugins.config_source import ConfigSource; "
        "from hydra.plugins.search_path_plugin import SearchPathPlugin; "
        "print(*[c.__name__ for c in Plugins.instance().discover(ConfigSource)]); "
        "print(*[c.__module__ for c in Plugins.instance().discover(SearchPathPlugin)])"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True)
    sources, search_path_plugins = done.stdout.splitlines()
    assert "InitregConfigSource" in sources.split() and "initreg" not in search_path_plugins


def built_plugin_wheel(workspace: Path) -> Path:
    """The wheel of plugins/initreg-extra, built from a copy (so the checkout gets no build/ folder)."""
    source = workspace / "initreg-extra"
    shutil.copytree(REPO / "plugins" / "initreg-extra", source, ignore=shutil.ignore_patterns("*.egg-info", "build"))
    dist = workspace / "dist"
    run(sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-w", dist, source, cwd=workspace)
    (wheel,) = dist.glob("initreg_extra-*.whl")
    return wheel


@pytest.mark.wheel
def test_the_example_app_from_the_wheels_in_a_fresh_venv(tmp_path: Path) -> None:
    wheels = [build_wheel(tmp_path / "initreg", {PROBE: PROBE_RECIPE}), built_plugin_wheel(tmp_path / "plugin")]
    python = fresh_venv(tmp_path / "venv")
    run(python, "-m", "pip", "install", "--no-deps", "--no-index", *wheels, cwd=tmp_path)
    where = run(
        python,
        "-c",
        "import initreg, hydra_plugins.initreg_config_source as p; print(initreg.__file__, p.__file__)",
        cwd=tmp_path,
    )
    assert all(Path(path).is_relative_to(tmp_path / "venv") for path in where.stdout.split())
    app = App(python, shutil.copytree(EXAMPLE, tmp_path / "hydra_app"))
    for name, case in CASES.items():
        folder = tmp_path / "cases" / name
        folder.mkdir(parents=True)
        case(app, folder)
    # a yaml in configs/public/recipe/ ships and is served as a recipe option, with no code for it
    out = app.ok("recipe=probe", "save=w.safetensors", cwd=tmp_path)
    assert "hidden.bias [16] rule=probe Ones()" in out
    assert_weights(tmp_path / "w.safetensors", expected("he_normal", 0, biases="ones"))
