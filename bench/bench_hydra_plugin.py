"""The start-up initreg's Hydra plugin adds to a Hydra app that has not opted in, and to one that has; prints a table.

Every run is a fresh interpreter that imports Hydra, then times Hydra's start-up and one composition:
``initialize_config_dir`` + ``compose`` of a small app with groups of its own (``db`` and its own
``init``), which Hydra's plugin scan, search path and config lookups all take part in. Settings:

- without:       the hydra_plugins package hidden, as if initreg were not installed;
- not opted in:  the plugin installed, the app's search path without ``initreg://``;
- opted in:      the same app with ``hydra.searchpath: [initreg://]``, composing its own defaults;
- opted in, init=he_normal: composing initreg's group, which imports initreg (not part of the budget).

Times are the interpreter's CPU time (time.process_time), which other processes on a shared machine
disturb less than wall-clock time. Medians over runs; the budget is not opted in - without < 50 ms.

Run: python bench/bench_hydra_plugin.py [runs]
"""

from __future__ import annotations

import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

BUDGET_MS = 50.0
CONFIG = "defaults:\n  - db: sqlite\n  - init: small\n  - _self_\nsteps: 3\n"
OPT_IN = "hydra:\n  searchpath: [initreg://]\n"
APP = {
    "config.yaml": CONFIG,
    "opted_in.yaml": CONFIG + OPT_IN,
    "db/sqlite.yaml": "driver: sqlite\n",
    "db/postgres.yaml": "driver: postgres\n",
    "init/small.yaml": "scale: 0.1\n",
}
TIMED = """
import sys, time
if sys.argv[2] == "without":
    sys.modules["hydra_plugins"] = None  # Hydra's scan then finds no plugin package
import hydra
from hydra import compose, initialize_config_dir
start = time.process_time()
with initialize_config_dir(config_dir=sys.argv[1], version_base="1.3"):
    compose(sys.argv[3], overrides=sys.argv[4:])
print((time.process_time() - start) * 1e3)
"""


def compose_ms(conf: Path, setting: str, config: str, overrides: list[str]) -> float:
    command = [sys.executable, "-c", TIMED, str(conf), setting, config, *overrides]
    return float(subprocess.run(command, capture_output=True, text=True, check=True).stdout)


def main() -> None:
    runs = int(sys.argv[1]) if len(sys.argv) > 1 else 15
    with tempfile.TemporaryDirectory() as folder:
        conf = Path(folder)
        for name, text in APP.items():
            (conf / name).parent.mkdir(parents=True, exist_ok=True)
            (conf / name).write_text(text)
        cases = {
            "without": ("without", "config", []),
            "not opted in": ("installed", "config", []),
            "opted in": ("installed", "opted_in", []),
            "opted in, init=he_normal": ("installed", "opted_in", ["init=he_normal"]),
        }
        times: dict[str, list[float]] = {case: [] for case in cases}
        for _ in range(runs):  # interleaved, so that a busy moment of the machine hits every setting alike
            for case, (setting, config, overrides) in cases.items():
                times[case].append(compose_ms(conf, setting, config, overrides))
    baseline = statistics.median(times["without"])
    print(f"a Hydra app: import hydra, then initialize_config_dir + compose; {runs} fresh interpreters each")
    print(f"{'setting':<26} {'median CPU ms':>14} {'min ms':>8} {'max ms':>8} {'added ms':>9} {'ratio':>6}")
    for case, found in times.items():
        median = statistics.median(found)
        print(
            f"{case:<26} {median:>14.1f} {min(found):>8.1f} {max(found):>8.1f} "
            f"{median - baseline:>9.1f} {median / baseline:>6.2f}"
        )
    added = statistics.median(times["not opted in"]) - baseline
    print(f"added by the plugin to an app that has not opted in: {added:.1f} ms; budget {BUDGET_MS:.0f} ms")


if __name__ == "__main__":
    main()
