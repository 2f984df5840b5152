"""The command's start-up: its floor (Python, `import initreg`, a bare Hydra app) and what is left above it.

    .venv/bin/python bench/bench_startup.py [--runs 7] [--before CHECKOUT]

Section 1, each row the median of --runs fresh processes, run in turn (round-robin) in the same
run from one temporary folder, wall and CPU (user + system, of the process and its children):

- ``python -c pass`` and ``python -c "import initreg"``;
- a bare Hydra app: ``@hydra.main`` over a config with the command's shape (a defaults list of three
  groups, Hydra's logging off, output folder '.'), whose task does nothing: Hydra's own compose cost;
- ``initreg init=lecun_normal seed=3`` (the default 235k-parameter MLP) as installed: the NumPy
  reference below REFERENCE_WORK, then os._exit after the output is fsynced;
- the same with the kernels loaded from the start (REFERENCE_WORK = 0, as before the reference served
  small work), and with main() called as a function (the interpreter's ordinary teardown), and both;
- with --before, a checkout of another version (``git worktree add --detach CHECKOUT <commit>``): its
  command, run from this environment with the checkout first on PYTHONPATH.

The runs see the environment without PYTHONDONTWRITEBYTECODE, so that the warm-up run leaves the
bytecode cache that Python keeps by default (an install by pip compiles it up front). Last, the median
over the rounds of each round's ratio of the command to the bare Hydra app (and to the command before),
which holds better than either median on a machine whose speed drifts.

Section 2, how REFERENCE_CALL and REFERENCE_WORK (initreg/backends/numpy.py) were chosen: the reference's
cost per call (best of 200 one-element draws) and per element (best of 5 draws of 2^18, less a call), in
this process, and the kernels' load in a fresh process (numba's import and the first draw's load from
the cache, in CPU seconds, median of --runs), as elements of the reference's work.
"""

from __future__ import annotations

import argparse
import operator
import os
import platform
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from importlib.resources import files
from pathlib import Path

import numpy as np
from machine import cpu_model

from initreg import rng
from initreg.backends import numpy as numpy_backend
from initreg.distributions import NormalDist, TruncatedNormalDist, UniformDist

PYTHON = sys.executable
INITREG = str(Path(PYTHON).parent / "initreg")
ARGUMENTS = ["init=lecun_normal", "seed=3"]
FORCE_KERNELS = "import initreg.backends.numpy as b; b.REFERENCE_WORK = 0; "
CONSOLE, MAIN = "from initreg.cli import console; console()", "from initreg.cli import main; main()"
FLOOR, COMMAND = "bare Hydra app (compose, empty task)", "initreg init=lecun_normal seed=3"
BEFORE = "  the command before (--before)"

BARE_HYDRA_APP = """
import hydra


@hydra.main(config_path="conf", config_name="config", version_base="1.3")
def task(cfg):
    pass


if __name__ == "__main__":
    task()
"""
BARE_CONFIG = """defaults:
  - _self_
  - init: lecun_normal
  - model: mlp
  - backend: numpy
  - override hydra/job_logging: none
  - override hydra/hydra_logging: none
seed: 0
dtype: float32
rules:
  weights: {match: "*", init: "${init}"}
  biases: {match: "*.bias", init: zeros}
hydra:
  run: {dir: .}
  output_subdir: null
  job: {chdir: false}
"""
BARE_GROUPS = {
    "init/lecun_normal.yaml": "name: lecun_normal\nscale: 1.0\n",
    "model/mlp.yaml": (files("initreg.configs.command") / "model" / "mlp.yaml").read_text(),  # the command's own
    "backend/numpy.yaml": "name: numpy\n",
}


def bare_hydra_app(folder: Path) -> Path:
    """Writes the bare Hydra app and its config into `folder`; returns the app's path."""
    for name, text in {"config.yaml": BARE_CONFIG, **BARE_GROUPS}.items():
        (folder / "conf" / name).parent.mkdir(parents=True, exist_ok=True)
        (folder / "conf" / name).write_text(text)
    app = folder / "bare_app.py"
    app.write_text(BARE_HYDRA_APP)
    return app


CACHED_BYTECODE = {name: value for name, value in os.environ.items() if name != "PYTHONDONTWRITEBYTECODE"}


def timed(command: list[str], cwd: Path, env: dict[str, str]) -> tuple[float, float]:
    """(wall s, CPU s of the process and its children) of one run of `command`."""
    before, start = resource.getrusage(resource.RUSAGE_CHILDREN), time.perf_counter()
    subprocess.run(command, cwd=cwd, env=env, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    wall, after = time.perf_counter() - start, resource.getrusage(resource.RUSAGE_CHILDREN)
    return wall, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def start_up(runs: int, before: Path | None) -> None:
    """Section 1; with `before`, a checkout of another version, whose command runs as one more row."""
    with tempfile.TemporaryDirectory(prefix="initreg-startup-") as scratch:
        folder = Path(scratch)
        app = bare_hydra_app(folder)
        rows = {
            "python -c pass": [PYTHON, "-c", "pass"],
            "python -c 'import initreg'": [PYTHON, "-c", "import initreg"],
            FLOOR: [PYTHON, str(app)],
            COMMAND: [INITREG, *ARGUMENTS],
            "  kernels loaded from the start": [PYTHON, "-c", FORCE_KERNELS + CONSOLE, *ARGUMENTS],
            "  main() with the ordinary teardown": [PYTHON, "-c", MAIN, *ARGUMENTS],
            "  both": [PYTHON, "-c", FORCE_KERNELS + MAIN, *ARGUMENTS],
        }  # fmt: skip
        environments = {name: CACHED_BYTECODE for name in rows}
        if before is not None:
            rows[BEFORE] = [PYTHON, "-c", CONSOLE, *ARGUMENTS]
            environments[BEFORE] = {**CACHED_BYTECODE, "PYTHONPATH": str(before)}
        for name, command in rows.items():  # warm the caches: files, bytecode, compiled kernels
            timed(command, folder, environments[name])
        times: dict[str, list[tuple[float, float]]] = {name: [] for name in rows}
        for _ in range(runs):
            for name, command in rows.items():
                times[name].append(timed(command, folder, environments[name]))
    print(f"| median of {runs} fresh processes | wall s | CPU s |")
    print("|---|---:|---:|")
    for name, measured in times.items():
        wall, cpu = statistics.median(t[0] for t in measured), statistics.median(t[1] for t in measured)
        print(f"| {name} | {wall:.3f} | {cpu:.3f} |")
    print("\nwall time, median of the rounds' ratios:")
    ratio, above = (
        paired(times[COMMAND], times[FLOOR], operator.truediv),
        paired(times[COMMAND], times[FLOOR], operator.sub),
    )
    print(f"the command / the bare Hydra app: {ratio:.2f}x, {above:.3f} s above it")
    if before is not None:
        then, now = (
            paired(times[BEFORE], times[FLOOR], operator.truediv),
            paired(times[COMMAND], times[BEFORE], operator.truediv),
        )
        print(f"the command before / the bare Hydra app: {then:.2f}x; the command / the command before: {now:.2f}x")


def paired(
    ours: list[tuple[float, float]], theirs: list[tuple[float, float]], compare: Callable[[float, float], float]
) -> float:
    """The median over the rounds of `compare` of two rows' wall times in the same round."""
    return statistics.median(compare(a[0], b[0]) for a, b in zip(ours, theirs, strict=True))


KERNEL_LOAD = """
import time
from initreg.distributions import NormalDist
start = time.process_time()
from initreg.backends.numpy import fused_kernels
fused_kernels().draw(NormalDist(0.0, 1.0), (1, 2), (16,), "float32")
print(time.process_time() - start)
"""


def best(function: object, repeats: int) -> float:
    assert callable(function)
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        function()
        times.append(time.perf_counter() - start)
    return min(times)


def threshold(runs: int) -> None:
    loads = [float(subprocess.run([PYTHON, "-c", KERNEL_LOAD], capture_output=True, text=True, check=True).stdout)
             for _ in range(runs)]  # fmt: skip
    load = statistics.median(loads)
    print(f"\nkernel load in a fresh process (numba import + first draw from the cache): {load:.3f} CPU s")
    print("| reference, per draw | call us | per element ns | a call in elements | the load in elements |")
    print("|---|---:|---:|---:|---:|")
    key, large = rng.derive_key(1, "w"), 1 << 18
    for dist in [UniformDist(-1.0, 1.0), NormalDist(0.0, 1.0), TruncatedNormalDist(0.0, 1.0)]:
        for precision in ["float32", "float64"]:
            call = best(lambda d=dist, p=precision: rng.draw(d, key, (1,), p, np), 200)
            whole = best(lambda d=dist, p=precision: rng.draw(d, key, (large,), p, np), 5)
            element = (whole - call) / large
            print(f"| {type(dist).__name__} {precision} | {call * 1e6:.0f} | {element * 1e9:.0f} | "
                  f"{call / element:,.0f} | {load / element:,.0f} |")  # fmt: skip
    print(
        f"initreg: REFERENCE_CALL = {numpy_backend.REFERENCE_CALL:,}, REFERENCE_WORK = {numpy_backend.REFERENCE_WORK:,}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument("--before", type=Path, help="a checkout of another version, run as one more row")
    arguments = parser.parse_args()
    runs = arguments.runs
    load = os.getloadavg()[0]
    print(f"machine: {cpu_model()}; Python {platform.python_version()}; load average {load:.1f} at the start\n")
    start_up(runs, arguments.before)
    threshold(runs)


if __name__ == "__main__":
    main()
