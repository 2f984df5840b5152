"""The start-up initreg's Hydra plugin adds to an unrelated Hydra app, and print a table.

Every run is a fresh interpreter that imports Hydra, then times Hydra's start-up and one composition:
``initialize_config_dir`` + ``compose`` of a small app with groups of its own (``db`` and its own
``init``), which Hydra's plugin scan, search path and config lookups all take part in. Three settings:

- without: the hydra_plugins package hidden, as if initreg were not installed;
- off:     the plugin installed but turned off (INITREG_HYDRA_PLUGIN=0);
- on:      the plugin on (the default).

A last row times a composition that uses initreg's group (``init=he_normal``), which imports initreg;
it is not part of the budget. Times are the interpreter's CPU time (time.process_time), which other
processes on a shared machine disturb less than wall-clock time. Medians over runs; the budget is
on - without < 50 ms.

Run: python bench/bench_hydra_plugin.py [runs]
"""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

BUDGET_MS = 50.0
APP = {
    "config.yaml": "defaults:\n  - db: sqlite\n  - init: small\n  - _self_\nsteps: 3\n",
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
    compose("config", overrides=sys.argv[3:])
print((time.process_time() - start) * 1e3)
"""


def compose_ms(conf: Path, setting: str, overrides: list[str]) -> float:
    env = {**os.environ, "INITREG_HYDRA_PLUGIN": "0" if setting == "off" else "1"}
    command = [sys.executable, "-c", TIMED, str(conf), setting, *overrides]
    return float(subprocess.run(command, env=env, capture_output=True, text=True, check=True).stdout)


def main() -> None:
    runs = int(sys.argv[1]) if len(sys.argv) > 1 else 15
    with tempfile.TemporaryDirectory() as folder:
        conf = Path(folder)
        for name, text in APP.items():
            (conf / name).parent.mkdir(parents=True, exist_ok=True)
            (conf / name).write_text(text)
        cases = {
            "without": ("without", []),
            "off": ("off", []),
            "on": ("on", []),
            "on, init=he_normal": ("on", ["init=he_normal"]),
        }
        times: dict[str, list[float]] = {case: [] for case in cases}
        for _ in range(runs):  # interleaved, so that a busy moment of the machine hits every setting alike
            for case, (setting, overrides) in cases.items():
                times[case].append(compose_ms(conf, setting, overrides))
    baseline = statistics.median(times["without"])
    print(f"an unrelated Hydra app: import hydra, then initialize_config_dir + compose; {runs} fresh interpreters each")
    print(f"{'setting':<20} {'median CPU ms':>14} {'min ms':>8} {'max ms':>8} {'added ms':>9} {'ratio':>6}")
    for case, found in times.items():
        median = statistics.median(found)
        print(
            f"{case:<20} {median:>14.1f} {min(found):>8.1f} {max(found):>8.1f} "
            f"{median - baseline:>9.1f} {median / baseline:>6.2f}"
        )
    added = statistics.median(times["on"]) - baseline
    print(f"added by the plugin (on - without): {added:.1f} ms; budget {BUDGET_MS:.0f} ms")


if __name__ == "__main__":
    main()
