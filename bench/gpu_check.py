"""One-shot check and benchmark of the CuPy backend on a GPU.

    python bench/gpu_check.py            # from the repository root; initreg need not be installed

Checks the fused kernel against the NumPy reference of initreg.rng (uniform words bit-identical,
uniform samples bit-identical, the rest within a few ulp), slices against the whole, the reference
itself running on CuPy, initializers made on the GPU, and a DTensor model (FSDP2 over a one-rank NCCL group,
built on the meta device) filled on the GPU against the CPU values; then times the kernel against a plain CuPy
fill of the same array (the GPU's write bandwidth) and cupy.random.standard_normal. Prints two tables
and exits 1 if a check failed. Under the device tool, the tables are also written to $OUT/gpu_check.txt.
"""

from __future__ import annotations

import functools
import math
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the repository's initreg, installed or not

import numpy as np

import initreg
from initreg import rng
from initreg.backends.cupy import backend
from initreg.distributions import Distribution, NormalDist, TruncatedNormalDist, UniformDist

KEY = rng.derive_key(1234, "gpu_check.weight")
MAX_ULPS = 4  # in ulps of max(|value|, the distribution's std)
CHECK_ELEMENTS = (1 << 22) + 3
TIMED_ELEMENTS = [1 << 24, 1 << 26, 1 << 28, 1 << 30]
DISTRIBUTIONS: dict[str, Distribution] = {
    "uniform(-0.05, 0.05)": UniformDist(-0.05, 0.05),
    "normal(0, 1)": NormalDist(0.0, 1.0),
    "lecun_normal 1024 (truncated)": TruncatedNormalDist(0.0, math.sqrt(1 / 1024) / 0.87962566103423978),
    "normal(0.5, 2)": NormalDist(0.5, 2.0),
    "truncated(0.1, 0.3, [-1.5, 2.5])": TruncatedNormalDist(0.1, 0.3, -1.5, 2.5),
}
lines: list[str] = []
failures: list[str] = []


def say(text: str = "") -> None:
    print(text, flush=True)
    lines.append(text)


def check(name: str, passed: bool, detail: str) -> None:
    say(f"{'PASS' if passed else 'FAIL'}  {name:58s} {detail}")
    if not passed:
        failures.append(name)


def plain_ulps(actual: np.ndarray, expected: np.ndarray) -> int:
    """max number of floats between actual and expected."""
    signed = np.int32 if expected.dtype == np.float32 else np.int64

    def ordered(values: np.ndarray) -> np.ndarray:
        bits = values.view(signed).astype(np.int64)
        return np.where(bits < 0, -(bits & np.iinfo(signed).max), bits)

    return int(np.abs(ordered(actual) - ordered(expected)).max(initial=0))


def ulps_at_scale(actual: np.ndarray, expected: np.ndarray, scale: float) -> float:
    """max |actual - expected| in ulps of max(|expected|, scale)."""
    magnitude = np.maximum(np.abs(expected), np.asarray(scale, dtype=expected.dtype))
    return float((np.abs(actual.astype(np.float64) - expected) / np.spacing(magnitude)).max(initial=0.0))


def check_words() -> None:
    for start, count in [(0, CHECK_ELEMENTS), (2**32 - 5, 1001), (2**40 + 3, 77)]:
        words = backend.to_numpy(backend.words(KEY, start, count))
        mismatches = int(np.count_nonzero(words != rng.words_range(KEY, start, count, np)))
        check(f"words {start}..+{count} bit-identical", mismatches == 0, f"{mismatches} differ")


def check_draws() -> None:
    for label, dist in DISTRIBUTIONS.items():
        for dtype in ("float32", "float64"):
            expected = rng.draw(dist, KEY, (CHECK_ELEMENTS,), dtype, np)
            for path, xp_draw in (("kernel", backend.draw), ("reference on cupy", _reference_on_cupy)):
                drawn = backend.to_numpy(xp_draw(dist, KEY, (CHECK_ELEMENTS,), dtype))
                same, scaled = float(np.mean(drawn == expected)), ulps_at_scale(drawn, expected, dist.std)
                exact = isinstance(dist, UniformDist) and path == "kernel"
                passed = bool(np.array_equal(drawn, expected)) if exact else scaled <= MAX_ULPS
                detail = f"identical {same:.6f}, ulps {plain_ulps(drawn, expected)}, ulps at scale {scaled:.1f}"
                check(f"{path} {label} {dtype}", passed, detail)


def _reference_on_cupy(dist: Distribution, key: rng.Key, shape: tuple[int, ...], dtype: str) -> Any:
    return rng.draw(dist, key, shape, dtype, backend.xp)


def check_slices() -> None:
    dist, shape = TruncatedNormalDist(0.0, 0.02), (129, 67, 33)
    for dtype in ("float32", "float64"):
        whole = backend.to_numpy(backend.draw(dist, KEY, shape, dtype))
        for index in [(slice(3, 120, 7), slice(None), slice(5, 6)), (slice(128, 129), slice(66, 67), slice(31, 33))]:
            sliced = backend.to_numpy(backend.draw_slice(dist, KEY, shape, index, dtype))
            check(f"slice {index} {dtype} equals the whole's", bool(np.array_equal(sliced, whole[index])), "")


def check_initializers() -> None:
    try:
        by_name: Any = initreg.registry.get_backend("cupy")
        how = 'backend="cupy"'
    except initreg.InitregError as unavailable:  # initreg not installed here: no entry points
        by_name, how = backend, f"the backend object ({unavailable})"
    say(f"initializers through {how}")
    cases: list[tuple[str, dict[str, Any], tuple[int, ...]]] = [
        ("lecun_normal", {"seed": 1}, (1024, 1024)),
        ("he_uniform", {"seed": 2}, (3, 3, 64, 128)),
        ("orthogonal", {"seed": 3}, (512, 256)),
        ("constant", {"value": 0.5}, (64, 64)),
        ("identity", {"gain": 2.0}, (64, 96)),
    ]
    for name, config, shape in cases:
        for dtype in ("float16", "float32", "float64"):
            init = initreg.get(name, **config)
            assert isinstance(init, initreg.Initializer)
            made, expected = init(shape, dtype, backend=by_name), init(shape, dtype)
            on_gpu = type(made).__module__.startswith("cupy") and made.dtype == np.dtype(dtype)
            error = float(np.abs(backend.to_numpy(made).astype(np.float64) - expected.astype(np.float64)).max())
            tolerance = {"float16": 2e-3, "float32": 2e-6, "float64": 1e-12}[dtype]
            check(f"{name} {shape} {dtype}", on_gpu and error <= tolerance, f"max abs diff {error:.3g}")


def check_dtensor_on_cuda() -> None:
    """A meta-built model under FSDP2 on the GPU, initialized in place, equals the CPU model bit for bit."""
    try:
        import torch
        import torch.distributed as dist
        from torch.distributed.device_mesh import init_device_mesh
        from torch.distributed.fsdp import fully_shard

        from initreg.interop import torch_distributed
        from initreg.interop.torch import initialize
    except ImportError as missing:
        say(f"DTensor on CUDA: skipped ({missing})")
        return
    if not torch.cuda.is_available():
        say("DTensor on CUDA: skipped (this torch sees no CUDA device)")
        return
    rules = {
        "weights": {"match": "*weight", "init": "lecun_normal"},
        "square": {"match": "2.weight", "init": "orthogonal"},
        "biases": {"match": "*bias", "init": {"name": "random_normal", "stddev": 0.5}},
    }

    def model() -> Any:
        return torch.nn.Sequential(
            torch.nn.Embedding(1001, 256), torch.nn.Linear(256, 1024), torch.nn.Linear(1024, 1024, bias=False)
        )

    reference = model()
    initialize(reference, rules, seed=5)
    os.environ.setdefault("MASTER_ADDR", "127.0.0.1")
    os.environ.setdefault("MASTER_PORT", "29531")
    dist.init_process_group("nccl", rank=0, world_size=1)
    try:
        with torch.device("meta"):
            sharded = model()
        fully_shard(sharded, mesh=init_device_mesh("cuda", (1,)))
        initialize(sharded, rules, seed=5, device="cuda")
        expected = dict(reference.named_parameters())
        for name, parameter in sharded.named_parameters():
            local = parameter.to_local()
            filled_by = torch_distributed.device_backend(local, None) or "numpy"
            same = local.is_cuda and torch.equal(parameter.full_tensor().cpu(), expected[name].detach())
            check(f"DTensor on CUDA {name} equals the CPU values", bool(same), f"filled by backend {filled_by}")
    finally:
        dist.destroy_process_group()


def gpu_seconds(run: Callable[[], Any], repeats: int = 5) -> float:
    """Median seconds of `run` between CUDA events, after two warm-up runs."""
    cupy = backend.xp
    for _ in range(2):
        run()
    times = []
    for _ in range(repeats):
        start, stop = cupy.cuda.Event(), cupy.cuda.Event()
        start.record()
        run()
        stop.record()
        stop.synchronize()
        times.append(cupy.cuda.get_elapsed_time(start, stop) / 1e3)
    return float(np.median(times))


def benchmark() -> None:
    """Melem/s of the kernel for lecun_normal-style truncated normals and uniforms, against a fill."""
    cupy = backend.xp
    truncated, uniform = DISTRIBUTIONS["lecun_normal 1024 (truncated)"], DISTRIBUTIONS["uniform(-0.05, 0.05)"]
    timed = [
        ("truncated f32", truncated, "float32"),
        ("uniform f32", uniform, "float32"),
        ("truncated f64", truncated, "float64"),
    ]
    say("Melem/s; in brackets, the fraction of a cupy fill of the same array (the GPU's write bandwidth)")
    say(
        f"{'elements':>14} {'fill f32':>9} {'(GB/s)':>8} "
        + " ".join(f"{name:>20}" for name, _, _ in timed)
        + f" {'cupy.random f32 normal':>23}"
    )
    for size in TIMED_ELEMENTS:
        fill = {}
        for dtype in ("float32", "float64"):
            target = cupy.empty(size, dtype=dtype)
            fill[dtype] = size / gpu_seconds(functools.partial(target.fill, 1.0)) / 1e6
            del target
        cells = [f"{size:>14,}", f"{fill['float32']:>9,.0f}", f"{fill['float32'] * 4e-3:>8,.0f}"]
        for _, dist, dtype in timed:
            rate = size / gpu_seconds(functools.partial(backend.draw, dist, KEY, (size,), dtype)) / 1e6
            cells.append(f"{rate:>12,.0f} ({rate / fill[dtype]:>4.0%})")
        normal = size / gpu_seconds(functools.partial(cupy.random.standard_normal, size, dtype=cupy.float32)) / 1e6
        cells.append(f"{normal:>23,.0f}")
        say(" ".join(cells))
        cupy.get_default_memory_pool().free_all_blocks()


def describe() -> None:
    cupy = backend.xp
    properties = cupy.cuda.runtime.getDeviceProperties(cupy.cuda.Device().id)
    say(f"device: {properties['name'].decode()}, {properties['multiProcessorCount']} SMs; cupy {cupy.__version__}")
    for name in ("draw_f32", "draw_f64", "gather_f32"):
        kernel = backend._kernels.get_function(name)
        say(f"kernel {name}: {kernel.num_regs} registers, {kernel.local_size_bytes} bytes of local memory per thread")


def main() -> int:
    reason = backend.unavailable_reason()
    if reason:
        print(f"the cupy backend is unavailable: {reason}")
        return 2
    started = time.perf_counter()
    describe()
    for step in (check_words, check_draws, check_slices, check_initializers, check_dtensor_on_cuda):
        step()
    say()
    benchmark()
    failed = ": " + ", ".join(failures) if failures else ""
    say(f"\n{len(failures)} checks failed{failed}; {time.perf_counter() - started:.0f} s")
    if os.environ.get("OUT"):
        Path(os.environ["OUT"], "gpu_check.txt").write_text("\n".join(lines) + "\n")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
