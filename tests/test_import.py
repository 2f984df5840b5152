"""`import initreg` stays light: no hydra, numba, cupy, torch, jax or keras at import time."""

import subprocess
import sys

HEAVY = ["hydra", "omegaconf", "numba", "cupy", "torch", "jax", "keras", "scipy", "rich", "safetensors"]


def test_import_initreg_loads_no_heavy_module():
    code = f"import sys, initreg; print(' '.join(sorted(m for m in sys.modules if m.split('.')[0] in {HEAVY!r})))"
    loaded = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split()
    assert loaded == []


def test_a_direct_call_and_a_listing_load_no_framework():
    frameworks = ["hydra", "cupy", "torch", "jax", "keras"]
    code = (
        "import sys, initreg; initreg.LecunNormal(seed=1)((3, 4)); initreg.registry.names(); "
        f"print(' '.join(sorted(m for m in sys.modules if m.split('.')[0] in {frameworks!r})))"
    )
    loaded = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split()
    assert loaded == []
