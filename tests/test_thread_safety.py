"""Threads racing to their first use of initreg, each race in a fresh process where nothing is loaded yet.

16 threads wait at a barrier, then all make their first backend lookup, first plugin-initializer
lookup (a fake distribution on PYTHONPATH whose import takes a while) or first draw through the fused
kernels at once (with numba's default threading layer, and with its workqueue layer, which aborts the
process on concurrent launches); a dask tree is computed on dask's threaded scheduler with 16 workers.
Every thread must succeed and get the same result, in each of several fresh processes. A plugin whose
import blocks must block only lookups of its own name, and two plugins whose imports look each other up
from two threads must not wait for each other forever.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from collections.abc import Callable
from pathlib import Path

import pytest

REPETITIONS = 4
THREADS = 16

RACE = """
import threading

THREADS = {threads}
barrier = threading.Barrier(THREADS)
results, failures = [None] * THREADS, []


def race(index):
    barrier.wait()
    try:
        results[index] = first_use()
    except BaseException as error:
        failures.append(f"{{type(error).__name__}}: {{error}}")


threads = [threading.Thread(target=race, args=(index,)) for index in range(THREADS)]
for thread in threads:
    thread.start()
for thread in threads:
    thread.join()
assert not failures, f"{{len(failures)}} of {{THREADS}} threads failed, first: {{failures[0]}}"
check(results)
print("all threads agree")
"""


def run_fresh(script: str, **environment: str) -> None:
    """Runs `script` in a new interpreter, with these extra environment variables; it must print "all threads agree"."""
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "HYDRA_FULL_ERROR")} | environment
    done = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "all threads agree" in done.stdout


def race_in_fresh_process(setup: str, **environment: str) -> None:
    """Runs `setup` (which defines first_use() and check(results)), then the race, in a new interpreter."""
    run_fresh(textwrap.dedent(setup) + RACE.format(threads=THREADS), **environment)


@pytest.mark.parametrize("repetition", range(REPETITIONS))
def test_first_backend_lookups_race(repetition: int) -> None:
    race_in_fresh_process("""
        from initreg import registry

        def first_use():
            return registry.get_backend("numpy")

        def check(results):
            assert all(result is results[0] for result in results)
            assert results[0].name == "numpy"
    """)


SLOW_PLUGIN = """
import time

from initreg.initializers import RandomNormal

time.sleep(0.2)  # a plugin with a slow import: the other threads ask while it loads


class Wide(RandomNormal):
    '''N(0, 1).'''
"""


@pytest.mark.parametrize("repetition", range(REPETITIONS))
def test_first_plugin_initializer_lookups_race(
    repetition: int, tmp_path: Path, write_distribution: Callable[..., None]
) -> None:
    write_distribution(
        tmp_path,
        "initreg-fake-slow-import",
        {"initreg.initializers": {"wide_normal": "initreg_fake_slow_import:Wide"}},
        {"initreg_fake_slow_import": SLOW_PLUGIN},
    )
    race_in_fresh_process(
        """
        from initreg import registry

        def first_use():
            return registry.initializers.get("wide_normal")

        def check(results):
            assert all(result is results[0] for result in results)
            assert results[0].__module__ == "initreg_fake_slow_import"
            assert registry.initializers.entry("wide_normal").origin == "initreg-fake-slow-import"
        """,
        PYTHONPATH=str(tmp_path),
    )


@pytest.mark.parametrize("repetition", range(REPETITIONS))
@pytest.mark.parametrize("layer", ["default", "workqueue"])  # workqueue aborts the process on concurrent launches
def test_first_draws_through_the_fused_kernels_race(repetition: int, layer: str) -> None:
    race_in_fresh_process(
        """
        import initreg

        def first_use():
            return initreg.LecunNormal(seed=3)((1024, 1024))  # REFERENCE_WORK elements: it loads the kernels

        def check(results):
            import numpy as np
            from initreg.backends.numpy import fused_kernels

            assert fused_kernels() is not None, "numba is a dependency: the draws must use the fused kernels"
            for result in results:
                np.testing.assert_array_equal(result, results[0])
            np.testing.assert_array_equal(results[0], initreg.LecunNormal(seed=3)((1024, 1024)))
        """,
        NUMBA_THREADING_LAYER=layer,
    )


DASK_TREE = """
import dask
import numpy as np

import initreg
from initreg.interop import dask as initreg_dask

spec = {"dense": {"kernel": (256, 64)}}
rules = {"kernels": {"match": "*", "init": "he_normal"}}
tree = initreg_dask.init_tree(spec, rules, seed=5, chunks=(16, 64))
assert tree["dense"]["kernel"].numblocks == (16, 1)  # 16 tasks
with dask.config.set(scheduler="threads", num_workers=16):
    (computed,) = dask.compute(tree)
expected = initreg.init_tree(spec, rules, seed=5)
np.testing.assert_array_equal(computed["dense"]["kernel"], expected["dense"]["kernel"])
print("all threads agree")
"""


@pytest.mark.parametrize("repetition", range(REPETITIONS))
def test_a_dask_tree_on_the_threaded_scheduler_in_a_fresh_process(repetition: int) -> None:
    run_fresh(DASK_TREE)


GATE = """
import threading

entered, release = threading.Event(), threading.Event()
"""
GATED_PLUGIN = """
import initreg_fake_gate
from initreg.initializers import RandomNormal

initreg_fake_gate.entered.set()
initreg_fake_gate.release.wait()  # the import blocks until the test releases it


class Gated(RandomNormal):
    '''N(0, 0.05), from a plugin whose import blocks.'''
"""
BLOCKED_IMPORT = """
import threading
import time

import initreg_fake_gate as gate
from initreg import plugin_registry, registry
from initreg.errors import UnknownNameError

results = {}


def store(key, look_up):
    results[key] = look_up()


def unknown():
    try:
        registry.initializers.get("no_such_initializer")
    except UnknownNameError as error:
        return str(error)


loader = threading.Thread(target=store, args=("loaded", lambda: registry.initializers.get("gated")), daemon=True)
loader.start()
assert gate.entered.wait(60), "the plugin's import never began"
others = [
    threading.Thread(target=store, args=(key, look_up), daemon=True)  # daemons: a blocked one cannot keep us
    for key, look_up in {
        "built_in": lambda: registry.initializers.get("lecun_normal"),
        "backend": lambda: registry.get_backend("numpy"),
        "available": lambda: registry.initializers.available()["gated"],
        "unknown": unknown,
    }.items()
]
for thread in others:
    thread.start()
deadline = time.monotonic() + 60
for thread in others:
    thread.join(max(0.0, deadline - time.monotonic()))
assert not any(thread.is_alive() for thread in others), "a lookup of another name waited for the plugin"
assert gate.entered.is_set() and not gate.release.is_set() and loader.is_alive()
assert results["built_in"].__name__ == "LecunNormal" and results["backend"].name == "numpy"
assert results["available"] == "initreg-fake-gated"
assert results["unknown"].startswith("unknown initializer 'no_such_initializer'")

waiter = threading.Thread(target=store, args=("waited", lambda: registry.initializers.get("gated")), daemon=True)
waiter.start()
while waiter.ident not in plugin_registry._WAITING:  # the waiter now waits for the loader
    assert waiter.is_alive(), results
    waiter.join(0.01)
gate.release.set()
loader.join(60)
waiter.join(60)
assert results["loaded"] is results["waited"] and results["loaded"].__name__ == "Gated"
print("all threads agree")
"""


def test_a_blocked_plugin_import_blocks_only_lookups_of_its_own_name(
    tmp_path: Path, write_distribution: Callable[..., None]
) -> None:
    write_distribution(
        tmp_path,
        "initreg-fake-gated",
        {"initreg.initializers": {"gated": "initreg_fake_gated:Gated"}},
        {"initreg_fake_gated": GATED_PLUGIN, "initreg_fake_gate": GATE},
    )
    run_fresh(BLOCKED_IMPORT, PYTHONPATH=str(tmp_path))


CROSSED_PLUGIN = """
import initreg_fake_crossing as crossing
from initreg import registry
from initreg.errors import UnknownNameError
from initreg.initializers import RandomNormal

crossing.entered["{own}"].set()
crossing.entered["{other}"].wait()  # both imports are under way
try:
    crossing.seen["{own}"] = registry.initializers.get("{other}").__name__
except UnknownNameError:
    crossing.seen["{own}"] = "unknown"


class Crossed(RandomNormal):
    '''N(0, 0.05), from a plugin whose import looks up a plugin that looks it up.'''
"""
CROSSING = """
import threading

entered = {"crossed_a": threading.Event(), "crossed_b": threading.Event()}
seen = {}
"""
CROSSED_LOOKUPS = """
import threading

import initreg_fake_crossing as crossing
from initreg import registry

found = {}
threads = [
    threading.Thread(target=lambda name=name: found.update({name: registry.initializers.get(name)}), daemon=True)
    for name in ("crossed_a", "crossed_b")
]
for thread in threads:
    thread.start()
for thread in threads:
    thread.join(60)
assert not any(thread.is_alive() for thread in threads), "the two imports wait for each other"
assert sorted(crossing.seen.values()) == ["Crossed", "unknown"], crossing.seen  # the waiter sees the other's class
assert {name: cls.__module__ for name, cls in found.items()} == {
    "crossed_a": "initreg_fake_crossed_a",
    "crossed_b": "initreg_fake_crossed_b",
}
print("all threads agree")
"""


def test_two_plugin_imports_looking_each_other_up_in_two_threads_do_not_deadlock(
    tmp_path: Path, write_distribution: Callable[..., None]
) -> None:
    plugins = {
        f"initreg_fake_{own}": CROSSED_PLUGIN.format(own=own, other=other)
        for own, other in (("crossed_a", "crossed_b"), ("crossed_b", "crossed_a"))
    }
    write_distribution(
        tmp_path,
        "initreg-fake-crossed",
        {"initreg.initializers": {name: f"initreg_fake_{name}:Crossed" for name in ("crossed_a", "crossed_b")}},
        {**plugins, "initreg_fake_crossing": CROSSING},
    )
    run_fresh(CROSSED_LOOKUPS, PYTHONPATH=str(tmp_path))
