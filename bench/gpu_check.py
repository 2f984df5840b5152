"""One-shot check and benchmark of initreg on a GPU: the CuPy backend, the command, and torch models.

    python bench/gpu_check.py [--layers 48]    # from the repository root; see docs/performance.md for what to install
    python bench/gpu_check.py --device cpu --model mlp --layers 0 --torch-model gpt2_tiny   # no GPU: see below

On a GPU (--device cuda, the default), in one run:

- the CuPy kernel against the NumPy reference of initreg.rng (uniform words bit-identical, uniform samples
  bit-identical, the rest within a few ulp), slices against the whole, the reference itself running on
  CuPy, initializers made on the GPU, and a DTensor model (FSDP2 over a one-rank NCCL group, built on the
  meta device) filled on the GPU against the CPU values;
- the command: ``initreg model=gpt2_xl model.layers=N backend=cupy`` and the same run with
  ``backend=numpy``, each in its own process (wall time, the table's statistics included), with rules that
  draw uniforms, truncated normals and normals (COMMAND_RULES); the two .safetensors files are then compared
  tensor by tensor (bench/file_comparison.py: uniforms and constants bit for bit, normals within its
  MAX_ULPS);
- torch models: ``interop.torch.initialize`` on GPT-2 small built on the meta device and materialized on
  the GPU (the device path: no NumPy draw), against the CPU values and timed against a plain torch.nn.init
  loop on the GPU drawing the same distributions (bench/bench_torch_init.py's rules) and against the host
  path (``backend="numpy"``: drawn on the CPU, copied);
- then times the kernel against a plain CuPy fill of the same array (the GPU's write bandwidth) and
  cupy.random.standard_normal.

With --device cpu, the parts that need no GPU run with the NumPy backend against itself (the command
twice with backend=numpy) and the device path of initreg-torch on CPU tensors
(``TorchBackend(..., stream_on_device=True)``), so that their comparison logic is tested on any machine
(tests/test_gpu_check.py); the CuPy checks are reported as not run. Every check prints one PASS or FAIL line;
a failed or impossible check (no GPU, no cupy, a command that fails) is a FAIL, and the script exits 1 if any
failed. --keep leaves the two command files in --dir; --compare CPU_FILE DEVICE_FILE compares two such files
only. Under the device tool, the lines are also written to $OUT/gpu_check.txt.
"""

from __future__ import annotations

import argparse
import functools
import math
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the repository's initreg, installed or not

import numpy as np
from file_comparison import MAX_ULPS, compare_files, plain_ulps, ulps_at_scale

import initreg
from initreg import rng
from initreg.backends.cupy import backend
from initreg.distributions import Distribution, NormalDist, TruncatedNormalDist, UniformDist

KEY = rng.derive_key(1234, "gpu_check.weight")
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


def tensors_agree(name: str, actual: Any, expected: Any, exact: bool) -> None:
    """A check that two torch tensors (any devices) agree: bit for bit if `exact`, else within MAX_ULPS at the
    scale of `expected`'s std (samples through erfinv; docs/stream.md, "Reference and fast paths")."""
    got, wanted = actual.detach().cpu().numpy(), expected.detach().cpu().numpy()
    if exact or got.shape != wanted.shape or got.dtype != wanted.dtype:
        check(name, bool(np.array_equal(got, wanted)) and got.dtype == wanted.dtype, "bit for bit")
        return
    scaled = ulps_at_scale(got, wanted, float(np.std(wanted, dtype=np.float64)))
    check(name, scaled <= MAX_ULPS, f"identical {float(np.mean(got == wanted)):.6f}, ulps at scale {scaled:.1f}")


def check_dtensor_on_cuda() -> None:
    """A meta-built model under FSDP2 on the GPU, initialized in place by the device path, equals the CPU model
    (within the ulp bound; Orthogonal's QR, on the GPU, within 1e-5)."""
    import torch
    import torch.distributed as dist
    from torch.distributed.device_mesh import init_device_mesh
    from torch.distributed.fsdp import fully_shard

    from initreg.interop import torch_distributed
    from initreg.interop.torch import initialize

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
            filled_by = torch_distributed.device_backend(local, None)
            on_device = local.is_cuda and filled_by == "torch_cuda"
            check(f"DTensor on CUDA {name} filled on the device by torch_cuda", on_device, f"by {filled_by or 'numpy'}")
            full = parameter.full_tensor()
            if name == "2.weight":
                error = float((full.cpu().double() - expected[name].detach().double()).abs().max())
                check(f"DTensor on CUDA {name} (orthogonal) within 1e-5 of the CPU's", error <= 1e-5, f"{error:.3g}")
            else:
                tensors_agree(f"DTensor on CUDA {name} equals the CPU values", full, expected[name], exact=False)
    finally:
        dist.destroy_process_group()


# --- the command: the same run on the device's backend and on the CPU ----------------------------------

COMMAND_RULES = {  # added to the model's own rules (weights: init=lecun_normal, biases zeros, GPT-2's norms ones)
    "uniform_attention": '{match:"*c_attn.weight",init:glorot_uniform}',  # GPT-2
    "normal_embeddings": '{match:"w?e.weight",init:{name:random_normal,mean:0.5,stddev:2.0}}',
    "uniform_hidden": '{match:"dense_1.kernel",init:glorot_uniform}',  # the MLP
    "normal_output": '{match:"dense_2.kernel",init:{name:random_normal,mean:0.5,stddev:2.0}}',
}
COMMAND = """
import sys
sys.path.insert(0, sys.argv[1])
from initreg.cli import main
sys.argv = ["initreg", *sys.argv[2:]]
main()
"""


def command_line(arguments: list[str]) -> list[str]:
    """``initreg *arguments`` run by this interpreter from this repository."""
    return [sys.executable, "-c", COMMAND, str(Path(__file__).resolve().parents[1]), *arguments]


def run_command(arguments: list[str]) -> tuple[float, str]:
    """(wall s, '' or the last line of its stderr on failure) of ``initreg *arguments`` in a new interpreter."""
    start = time.perf_counter()
    done = subprocess.run(command_line(arguments), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    wall = time.perf_counter() - start
    return wall, "" if done.returncode == 0 else (done.stderr.strip().splitlines() or ["?"])[-1]


def composed_config(arguments: list[str]) -> dict[str, Any]:
    """The command's config for `arguments`, composed and resolved (``--cfg job --resolve``): its rules in order."""
    import yaml

    done = subprocess.run(command_line([*arguments, "--cfg", "job", "--resolve"]), capture_output=True, text=True)
    if done.returncode:
        raise RuntimeError(f"initreg {' '.join(arguments)} --cfg job failed: {done.stderr.strip()}")
    return dict(yaml.safe_load(done.stdout))


def compare_command_files(reference: Path, other: Path, model: str, layers: int, device_backend: str) -> None:
    """A check per tensor of `other` against `reference`, both written by `command_arguments` runs."""
    config = composed_config(command_arguments(model, layers, "numpy", reference))
    rules, variables = config["rules"], config["model"].get("variables") or {}
    for name, passed, detail in compare_files(reference, other, rules, variables):
        check(f"backend={device_backend} against numpy: {name}", passed, detail)


def command_arguments(model: str, layers: int, backend_name: str, output: Path) -> list[str]:
    """The command line of one run: `model` (with model.layers=`layers` unless 0), COMMAND_RULES, `backend_name`."""
    arguments = [f"model={model}", "init=lecun_normal", "seed=5", "allow_unused_rules=true", "progress=false"]
    arguments += [f"model.layers={layers}"] * (layers > 0)
    arguments += [f"+rules.{name}={rule}" for name, rule in COMMAND_RULES.items()]
    return [*arguments, f"backend={backend_name}", f"output={output}"]


def check_command(device_backend: str, model: str, layers: int, folder: Path) -> None:
    """The command on `device_backend` and on numpy, timed each in its own process, then their files compared."""
    for name in dict.fromkeys(["numpy", device_backend]):  # untimed: kernels compiled and cached, as after a first run
        _, failure = run_command(["model=mlp", f"backend={name}", f"output={folder / f'warm_{name}.safetensors'}"])
        check(f"command warm-up with backend={name}", not failure, failure)
    runs = {"cpu": "numpy", "device": device_backend}
    files = {role: folder / f"{model}_{role}_{name}.safetensors" for role, name in runs.items()}
    walls = {}
    for role, name in runs.items():
        walls[role], failure = run_command(command_arguments(model, layers, name, files[role]))
        check(f"initreg model={model} backend={name} ({role}) runs", not failure, failure or f"{walls[role]:.1f} s")
        if failure:
            return
    size = files["cpu"].stat().st_size
    say(f"initreg model={model} model.layers={layers}: {size / 1e9:.2f} GB; backend=numpy {walls['cpu']:.1f} s, "
        f"backend={device_backend} {walls['device']:.1f} s wall ({walls['cpu'] / walls['device']:.2f}x)")  # fmt: skip
    compare_command_files(files["cpu"], files["device"], model, layers, device_backend)


# --- torch models: interop.torch.initialize on the device ----------------------------------------------------


def synchronized_seconds(work: Callable[[Any], Any], model: Any, device: str) -> float:
    """Wall seconds of `work(model)`, after the device has finished its work."""
    import torch

    start = time.perf_counter()
    work(model)
    if device == "cuda":
        torch.cuda.synchronize()
    return time.perf_counter() - start


def check_torch_models(device: str, model_name: str, repeats: int = 3) -> None:
    """initialize on `device` through the device path against the CPU values, timed against a torch.nn.init loop
    on `device` and against the host path. On the CPU the device path is selected by its backend."""
    import bench_torch_init as bench
    import torch
    from initreg_torch import TorchBackend

    from initreg.backends.numpy import NumpyBackend

    on_device = None if device == "cuda" else TorchBackend("torch_stream_on_cpu", "cpu", stream_on_device=True)
    expected = bench.on_meta(model_name)
    bench.fill(expected)  # the CPU values, drawn straight into the parameters
    host_draws = []
    draw, draw_slice = NumpyBackend.draw, NumpyBackend.draw_slice
    NumpyBackend.draw = lambda *arguments: host_draws.append(1) or draw(*arguments)  # type: ignore[method-assign]
    NumpyBackend.draw_slice = lambda *arguments: host_draws.append(1) or draw_slice(*arguments)  # type: ignore[method-assign]
    try:
        model = bench.on_meta(model_name)
        first = synchronized_seconds(lambda fresh: bench.fill(fresh, device, on_device), model, device)
    finally:
        NumpyBackend.draw, NumpyBackend.draw_slice = draw, draw_slice  # type: ignore[method-assign]
    check(f"torch {model_name} on {device}: the device path draws nothing through NumPy", not host_draws,
          f"{len(host_draws)} NumPy draws")  # fmt: skip
    wanted = dict(expected.named_parameters())
    for name, parameter in model.named_parameters():
        exact = name.endswith("bias") or ".ln_" in name or name.startswith("ln_")  # zeros and ones
        right_place = parameter.device.type == device
        check(f"torch {model_name} {name} on {device}", right_place, str(parameter.device))
        tensors_agree(f"torch {model_name} {name} equals the CPU values", parameter, wanted[name], exact)
    del model, expected, wanted

    def best(work: Callable[[torch.nn.Module], Any]) -> float:
        times = []
        for _ in range(repeats):
            times.append(synchronized_seconds(work, bench.on_meta(model_name), device))
        return min(times)

    ours = best(lambda model: bench.fill(model, device, on_device))
    host = best(lambda model: bench.fill(model, device, "numpy"))
    loop = best(lambda model: bench.torch_loop(model, device))
    say(f"torch {model_name} on {device} (best of {repeats}; to_empty included): initialize {ours:.3f} s "
        f"(first {first:.3f} s), through the host {host:.3f} s, torch.nn.init loop {loop:.3f} s; "
        f"loop / initialize {loop / ours:.2f}x")  # fmt: skip


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
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--device", choices=("cuda", "cpu"), default="cuda", help="cpu: no GPU, see above")
    parser.add_argument("--model", default="gpt2_xl", help="the command's model (configs/command/model)")
    parser.add_argument("--layers", type=int, default=48, help="model.layers of the command's run; 0: not set")
    parser.add_argument("--torch-model", default="gpt2_small", help="of bench/bench_torch_init.py's MODELS")
    parser.add_argument("--dir", default=None, help="where the command writes its two files (a temporary folder)")
    parser.add_argument("--keep", action="store_true", help="leave the command's files in --dir")
    parser.add_argument(
        "--compare", nargs=2, metavar=("CPU_FILE", "DEVICE_FILE"),
        help="only compare two files written by the command's runs (the same --model and --layers)",
    )  # fmt: skip
    args = parser.parse_args()
    started = time.perf_counter()
    if args.compare:
        device_backend = "cupy" if args.device == "cuda" else "numpy"
        try:
            compare_command_files(*map(Path, args.compare), args.model, args.layers, device_backend)
        except Exception as error:  # an unreadable file is a failed check too
            check("the comparison runs", False, f"{type(error).__name__}: {error}")
        return finish(started)
    steps: list[tuple[str, Callable[[], Any]]]
    if args.device == "cuda":
        reason = backend.unavailable_reason()
        if reason:
            check("the cupy backend is available", False, reason)
            return finish(started)
        device_backend = "cupy"
        steps = [("describe", describe)] + [
            (step.__name__, step) for step in (check_words, check_draws, check_slices, check_initializers)
        ]
        steps.append(("check_dtensor_on_cuda", check_dtensor_on_cuda))
    else:
        say("--device cpu: the command with backend=numpy against itself, initreg-torch's device path on CPU "
            "tensors; the CuPy kernel, DTensor-on-CUDA checks and the kernel benchmark are not run")  # fmt: skip
        device_backend, steps = "numpy", []
    folder = Path(tempfile.mkdtemp(prefix="gpu_check_", dir=args.dir))
    steps.append(("check_command", lambda: check_command(device_backend, args.model, args.layers, folder)))
    steps.append(("check_torch_models", lambda: check_torch_models(args.device, args.torch_model)))
    if args.device == "cuda":
        steps.append(("benchmark", benchmark))
    try:
        for name, step in steps:
            try:
                step()
            except Exception as error:  # a step that cannot run is a failed check, and the others still run
                check(f"{name} runs", False, f"{type(error).__name__}: {error}")
            say()
    finally:
        if not args.keep:
            shutil.rmtree(folder, ignore_errors=True)
    return finish(started)


def finish(started: float) -> int:
    """Prints the count of failed checks (and writes the lines to $OUT/gpu_check.txt); 1 if any failed."""
    failed = ": " + ", ".join(failures) if failures else ""
    say(f"{len(failures)} checks failed{failed}; {time.perf_counter() - started:.0f} s")
    if os.environ.get("OUT"):
        Path(os.environ["OUT"], "gpu_check.txt").write_text("\n".join(lines) + "\n")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
