"""Threads racing to their first use of initreg, each race in a fresh process where nothing is loaded yet.

16 threads wait at a barrier, then all make their first backend lookup, first plugin-initializer
lookup (a fake distribution on PYTHONPATH whose import takes a while) or first draw through the fused
kernels at once (with numba's default threading layer, and with its workqueue layer, which aborts the
process on concurrent launches); a dask tree is computed on dask's threaded scheduler with 16 workers.
Every thread must succeed and get the same result, in each of several fresh processes.
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
            return initreg.LecunNormal(seed=3)((64, 256))

        def check(results):
            import numpy as np
            from initreg.backends.numpy import fused_kernels

            assert fused_kernels() is not None, "numba is a dependency: the draws must use the fused kernels"
            for result in results:
                np.testing.assert_array_equal(result, results[0])
            np.testing.assert_array_equal(results[0], initreg.LecunNormal(seed=3)((64, 256)))
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
