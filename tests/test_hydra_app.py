"""initreg inside a Hydra app of one's own: examples/hydra_app run as a user would, in subprocesses.

Every case runs against this environment (an editable install, in development and CI) and, in one
`wheel` test, against the built wheels installed into a fresh venv. The cases: overrides of the `init`
group (a plugin's name too), added rules, a multirun, --help and tab completion, the four compose-time
errors, the Compose API from a plain script (instantiate, initreg.get and a pickle read back in a fresh
process), the switch, and an unrelated app with its own `init` group, which the plugin leaves alone.
"""

from __future__ import annotations

import functools
import json
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


def case_help_lists_the_group(app: App, tmp: Path) -> None:
    out = app.ok("--help", cwd=tmp)
    (line,) = [line for line in out.splitlines() if line.startswith("init: ")]
    options = line.removeprefix("init: ").split(", ")
    assert {"he_normal", "HeNormal", "variance_scaling", "gpt2_normal", "torch_default"} <= set(options)
    assert "init:\n  _target_: initreg.schemas.make\n  name: he_normal\n" in out


def case_tab_completion(app: App, tmp: Path) -> None:
    out = app.ok("-sc", "query=bash", cwd=tmp, env={"COMP_LINE": "python train.py init=he_"})
    assert sorted(out.split()) == ["init=he_normal", "init=he_uniform"]
    out = app.ok("-sc", "query=bash", cwd=tmp, env={"COMP_LINE": "python train.py init=variance_scaling init.mo"})
    assert out.split() == ["init.mode="]


def case_a_bad_value_fails_at_compose_time(app: App, tmp: Path, override: str, named: list[str]) -> None:
    done = app.run("init=variance_scaling", override, "save=w.safetensors", cwd=tmp)
    assert done.returncode == 1
    for part in named:
        assert part in done.stderr, done.stderr
    assert not (tmp / "w.safetensors").exists()


COMPOSE = """
    import json, pickle, sys
    from hydra import compose, initialize_config_dir, initialize_config_module
    from hydra.utils import instantiate
    import initreg

    with initialize_config_dir(config_dir=sys.argv[1], version_base="1.3"):
        cfg = compose("config", overrides=["init=variance_scaling", "init.scale=2", "init.mode=fan_avg", "init.seed=5"])
    with initialize_config_module("initreg.configs.public", version_base="1.3"):
        bare = compose(overrides=["+init=gpt2_normal"])
    made = instantiate(cfg.init)
    reference = initreg.VarianceScaling(scale=2.0, mode="fan_avg", seed=5)
    with open(sys.argv[2], "wb") as file:
        pickle.dump(cfg, file)
    print(json.dumps({
        "instantiated": repr(made),
        "equal": made == reference == initreg.get(cfg.init),
        "same_values": bool((made((6, 5)) == reference((6, 5))).all()),
        "preset": repr(initreg.get(bare.init)),
        "preset_target": bare.init.get("_target_"),
    }))
"""

UNPICKLE = """
    import pickle, sys
    from omegaconf import OmegaConf
    with open(sys.argv[1], "rb") as file:
        cfg = pickle.load(file)
    print(cfg.init.name, cfg.init.mode.name, cfg.rules.weights.init.scale, OmegaConf.get_type(cfg.init).__qualname__)
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
    assert found["equal"] and found["same_values"]
    assert found["preset"] == "RandomNormal(seed=None, mean=0.0, stddev=0.02)" and found["preset_target"] is None
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
        cfg = compose("config", overrides=["+recipe=hf_gpt2"])
    block = {"attn.c_attn.weight": (64, 192), "attn.c_proj.weight": (64, 64), "attn.c_proj.bias": (64,),
             "ln_1.weight": (64,)}
    spec = {f"h.{i}.{name}": shape for i in range(4) for name, shape in block.items()}
    from_app = recipes.from_config("hf_gpt2", cfg.recipe, {"n_layer": 4})
    shipped = recipes.load("hf_gpt2", n_layer=4)
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


def case_the_switch_turns_the_plugin_off(app: App, tmp: Path) -> None:
    done = app.run(cwd=tmp, env={"INITREG_HYDRA_PLUGIN": "0"})
    assert done.returncode == 1 and "Could not find 'init/he_normal'" in done.stderr
    assert "initreg" not in done.stderr.replace(str(app.folder), "")  # the search path it prints


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
}


def case_an_app_with_its_own_init_group_keeps_it(app: App, tmp: Path) -> None:
    folder = write(tmp / "unrelated", UNRELATED)
    for overrides, kind in [([], "small"), (["init=he_normal"], "mine"), (["init=lecun_normal"], "stored")]:
        with_plugin = app.script(folder / "app.py", *overrides, cwd=tmp)
        without = app.script(folder / "app.py", *overrides, cwd=tmp, env={"INITREG_HYDRA_PLUGIN": "0"})
        assert with_plugin.returncode == 0, with_plugin.stderr
        assert with_plugin.stdout == without.stdout == f"init:\n  kind: {kind}\nsteps: 3\n\n"


def case_an_unrelated_app_imports_no_heavy_module(app: App, tmp: Path) -> None:
    script = f"""
        import sys
        from hydra import compose, initialize_config_dir
        from hydra.core.global_hydra import GlobalHydra
        with initialize_config_dir(config_dir=sys.argv[1], version_base="1.3"):
            cfg = compose("config")
            paths = [str(p.path) for p in GlobalHydra.instance().config_loader().get_search_path().get_path()]
        heavy = sorted(m for m in sys.modules if m.split(".")[0] in {NOT_IMPORTED!r})
        print(cfg.init.kind, "initreg://" in paths, *heavy)
    """
    folder = write(tmp / "unrelated", {**UNRELATED, "modules.py": script})
    done = app.script(folder / "modules.py", str(folder / "conf"), cwd=tmp)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["small", "True"]  # the plugin is active; nothing heavy was imported


COMPOSE_ERRORS = {
    "init.scale=abc": ["init.scale=abc", "'abc'", "Float", "full_key: init.scale"],
    "init.mode=fan_avgg": ["'fan_avgg'", "fan_in, fan_out, fan_avg, fan_geo_avg", "full_key: init.mode"],
    "init.scael=2": ["Key 'scael' not in 'init/variance_scaling'", "full_key: init.scael"],
    "init.input_axes=[0,x]": ["'x'", "Integer", "full_key: init.input_axes[1]"],
}

CASES: dict[str, Callable[[App, Path], None]] = {
    "init_and_seed": case_an_init_and_a_seed,
    "init_seed_warns": case_an_init_seed_warns_once_and_the_tree_seed_decides,
    "init_arguments": case_an_initializer_with_its_arguments,
    "plugin_name": case_a_plugins_initializer,
    "added_rule": case_an_added_rule,
    "multirun": case_a_multirun,
    "help": case_help_lists_the_group,
    "tab_completion": case_tab_completion,
    **{
        f"compose_error[{override}]": functools.partial(
            case_a_bad_value_fails_at_compose_time, override=override, named=named
        )
        for override, named in COMPOSE_ERRORS.items()
    },
    "compose_api": case_the_compose_api_from_a_plain_script,
    "recipe_group": case_a_recipe_from_the_recipe_group,
    "lazy_plugin": case_a_plugin_is_loaded_only_when_asked_for,
    "switch": case_the_switch_turns_the_plugin_off,
    "own_init_group": case_an_app_with_its_own_init_group_keeps_it,
    "unrelated_app_modules": case_an_unrelated_app_imports_no_heavy_module,
}


@pytest.mark.parametrize("case", CASES.values(), ids=CASES.keys())
def test_the_example_app(case: Callable[[App, Path], None], tmp_path: Path) -> None:
    case(App(Path(sys.executable), EXAMPLE), tmp_path)


def test_hydra_discovers_the_plugin_in_this_environment() -> None:
    """Hydra's plugin scan walks hydra_plugins.__path__; after `pip install -e .` it must hold a real folder."""
    code = (
        "from hydra.core.plugins import Plugins; from hydra.plugins.search_path_plugin import SearchPathPlugin; "
        "print(*[c.__name__ for c in Plugins.instance().discover(SearchPathPlugin)])"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True)
    assert "InitregSearchPathPlugin" in done.stdout.split()


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
        "import initreg, hydra_plugins.initreg_searchpath as p; print(initreg.__file__, p.__file__)",
        cwd=tmp_path,
    )
    assert all(Path(path).is_relative_to(tmp_path / "venv") for path in where.stdout.split())
    app = App(python, shutil.copytree(EXAMPLE, tmp_path / "hydra_app"))
    for name, case in CASES.items():
        folder = tmp_path / "cases" / name
        folder.mkdir(parents=True)
        case(app, folder)
    # a yaml in configs/public/recipe/ ships and is served as a recipe option, with no code for it
    out = app.ok("+recipe=probe", "save=w.safetensors", cwd=tmp_path)
    assert "hidden.bias [16] rule=probe Ones()" in out
    assert_weights(tmp_path / "w.safetensors", expected("he_normal", 0, biases="ones"))
