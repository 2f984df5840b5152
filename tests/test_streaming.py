"""Streamed writing: `save_tree` and `io.save_streamed` give the bytes of the in-memory path, piece by piece.

A tiny chunk size makes many pieces of every tensor (rows, single rows split along later axes, single
elements), on the fused kernels and on the reference stream, in every float dtype. The pieces cover
each tensor in order and stay within the chunk size; an initializer that cannot slice comes whole.
Errors and SIGTERM leave no file behind. The command streams by default and gives the same file
with stream=false. Large float32/float64 pieces are drawn with their moments into two reused buffers,
one batch ahead of the writer (initreg.ahead), and still make the in-memory file.
"""

from __future__ import annotations

import math
import os
import shutil
import signal
import subprocess
import sys
import threading
from collections import Counter
from pathlib import Path
from typing import Any

import ml_dtypes
import numpy as np
import pytest
from safetensors.numpy import load_file

import initreg
from initreg import ahead, io, tree, write
from initreg.backends import numpy as numpy_backend
from initreg.errors import InvalidArgumentError

SPEC = {
    "embed": (13, 6),
    "conv": {"kernel": (3, 2, 4, 5), "bias": (5,)},
    "block": [{"dense": {"kernel": (7, 9), "bias": (9,)}, "norm": {"scale": (9,)}}] * 2,
    "rotation": (6, 4),
    "eye": (5, 5),
    "table": (4, 3),
    "offset": (),
    "unused": (0, 3),
}
RULES = {
    "weights": {"match": "*", "init": "lecun_normal"},
    "conv": {"match": "conv.kernel", "init": {"name": "he_uniform"}, "dtype": "bfloat16"},
    "embed": {"match": "embed", "init": {"name": "truncated_normal", "stddev": 0.5}, "dtype": "float16"},
    "dense": {"match": "*.dense.kernel", "init": {"name": "random_uniform", "minval": -2, "maxval": 3}},
    "rotation": {"match": "rotation", "init": "orthogonal", "dtype": "float64"},
    "eye": {"match": "eye", "init": {"name": "identity", "gain": 2}},
    "table": {"match": "table", "init": {"name": "constant", "value": [1.0, -2.0, 0.5]}, "dtype": "bfloat16"},
    "normal": {"match": "*.bias", "init": {"name": "random_normal", "stddev": 3}, "dtype": "float64"},
    "scales": {"match": "*.scale", "init": "ones"},
    "bounded": {
        "match": "block.1.dense.kernel",
        "init": {"name": "truncated_normal", "mean": 0.1, "stddev": 0.7, "a": -0.3, "b": 1.9},
        "dtype": "float64",
    },
    "cut": {"match": "conv.bias", "init": {"name": "he_normal", "cutoff": 3.0}},
}
GPT2_XL = {"layers": 48, "d_model": 1600, "vocab": 50257, "positions": 1024}


@pytest.fixture(params=["fused", "reference"])
def stream_path(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """The NumPy backend on its fused kernels, or (with numba hidden) on the reference of initreg.rng."""
    if request.param == "reference":
        monkeypatch.setattr(numpy_backend, "fused_kernels", lambda *_: None)
    elif numpy_backend.fused_kernels() is None:
        pytest.skip("numba is not importable")
    return str(request.param)


def in_memory_file(path: Path, seed: int) -> Path:
    """The tree made whole by init_tree and written by io.save."""
    return io.save(tree.flatten(initreg.init_tree(SPEC, RULES, seed=seed)), path)


@pytest.mark.parametrize("chunk_bytes", [1, 6, 40, 1 << 20])
def test_the_streamed_file_is_byte_identical_to_the_in_memory_file(
    tmp_path: Path, stream_path: str, chunk_bytes: int
) -> None:
    pieces: Counter[str] = Counter()

    def observe(entry: tree.PlanEntry, piece: np.ndarray) -> None:
        pieces[entry.path] += 1

    entries = tree.plan(SPEC, RULES)
    streamed = tree.save_entries(
        entries, 11, tmp_path / "streamed.safetensors", chunk_bytes=chunk_bytes, observe=observe
    )
    expected = in_memory_file(tmp_path / "whole.safetensors", seed=11)
    assert streamed.read_bytes() == expected.read_bytes()
    assert {entry.dtype for entry in entries} == {"float16", "bfloat16", "float32", "float64"}
    if chunk_bytes == 6:  # rows of a row, single rows, and whole tensors
        assert pieces["conv.kernel"] == 3 * 2 * 4 * 2  # 5 bfloat16 (10 bytes) split as 3 + 2 elements
        assert pieces["embed"] == 13 * 2  # rows of 6 float16 (12 bytes): 3 + 3 elements
        assert pieces["block.0.dense.kernel"] == 7 * 9  # one float32 element per piece
        assert pieces["rotation"] == pieces["eye"] == 1  # Orthogonal and Identity cannot slice: whole
        assert pieces["table"] == 4  # Constant slices: one row of 3 bfloat16 each
    if chunk_bytes == 1 << 20:
        assert set(pieces.values()) == {1}


def test_save_tree_takes_the_arguments_of_init_tree(tmp_path: Path) -> None:
    spec = {"a": {"kernel": (30, 20), "bias": (20,)}, "b": {"kernel": (20, 10)}}
    rules = {"all": {"match": "*", "init": "glorot_normal"}, "extra": {"match": "nothing", "init": "zeros"}}
    path = tree.save_tree(
        spec, rules, tmp_path / "tree.safetensors", seed=4, dtype="float64", layout="torch",
        allow_unused_rules=True, chunk_bytes=100, metadata={"made": "here"}, quiet=True,
    )  # fmt: skip
    expected = initreg.init_tree(spec, rules, seed=4, dtype="float64", layout="torch", allow_unused_rules=True)
    loaded = load_file(path)
    assert set(loaded) == {"a.bias", "a.kernel", "b.kernel"}
    for name, array in tree.flatten(expected).items():
        np.testing.assert_array_equal(loaded[name], array)
        assert loaded[name].dtype == np.float64
    assert [info.name for info in io.read_header(path)] == ["a.kernel", "a.bias", "b.kernel"]  # tree order


@pytest.mark.parametrize(
    ("shape", "itemsize", "chunk_bytes", "count"),
    [
        ((10,), 4, 12, 4),  # 3 elements a piece
        ((7, 5), 4, 40, 4),  # 2 rows a piece
        ((7, 5), 4, 8, 7 * 3),  # a row does not fit: 2 + 2 + 1 elements of each row
        ((3, 4, 5), 2, 30, 3 * 2),  # 3 + 1 rows of 5 of each matrix
        ((2, 3, 4, 5), 8, 7, 120),  # an element larger than the chunk size: one a piece
        ((1, 1, 9), 1, 4, 3),
    ],
)
def test_chunk_indices_cover_the_tensor_in_order_within_the_chunk_size(
    shape: tuple[int, ...], itemsize: int, chunk_bytes: int, count: int
) -> None:
    numbered = np.arange(math.prod(shape)).reshape(shape)
    pieces = [numbered[index] for index in tree.chunk_indices(shape, itemsize, chunk_bytes)]
    np.testing.assert_array_equal(np.concatenate([piece.reshape(-1) for piece in pieces]), numbered.reshape(-1))
    assert all(piece.size * itemsize <= max(chunk_bytes, itemsize) for piece in pieces)
    assert len(pieces) == count


@pytest.mark.parametrize("chunk_bytes", [0, -5, 2.5, True, "64M"])
def test_a_bad_chunk_size_is_an_error_naming_it(tmp_path: Path, chunk_bytes: Any) -> None:
    with pytest.raises(InvalidArgumentError, match=rf"chunk_bytes.*{chunk_bytes!r}"):
        tree.save_tree(SPEC, RULES, tmp_path / "x.safetensors", chunk_bytes=chunk_bytes)
    assert list(tmp_path.iterdir()) == []


def test_pieces_never_exceed_the_chunk_size_unless_a_tensor_cannot_slice(tmp_path: Path) -> None:
    spec = {"embed": (300, 64), "head": (64, 300), "rotation": (64, 64), "bias": (300,)}
    rules = {
        "weights": {"match": "*", "init": "he_normal"},
        "head": {"match": "head", "init": "zeros"},
        "rotation": {"match": "rotation", "init": "orthogonal"},
    }
    largest: Counter[str] = Counter()

    def observe(entry: tree.PlanEntry, piece: np.ndarray) -> None:
        largest[entry.path] = max(largest[entry.path], piece.nbytes)

    tree.save_entries(tree.plan(spec, rules), 0, tmp_path / "x.safetensors", chunk_bytes=4096, observe=observe)
    assert largest == {"embed": 4096, "head": 1200 * 3, "rotation": 64 * 64 * 4, "bias": 1200}


def test_constant_slices_equal_the_slices_of_the_whole_tensor() -> None:
    backend = initreg.registry.get_backend("numpy")
    for value, shape in [(0.25, (4, 6)), ([1.0, 2.0, 3.0], (5, 3)), ([[1.0], [2.0]], (2, 7))]:
        constant = initreg.Constant(value)
        whole = constant.generate(shape, "bfloat16", key=(0, 0), backend=backend)
        index = (slice(1, 2, 1), slice(1, shape[1], 2))
        part = constant.generate_slice(shape, index, "bfloat16", key=(0, 0), backend=backend)
        assert part.dtype == ml_dtypes.bfloat16 and part.flags.writeable
        np.testing.assert_array_equal(part, whole[index])


def pieces_of(arrays: dict[str, Any]) -> Any:
    return lambda tensor: iter(np.array_split(arrays[tensor.name].reshape(-1), 3))


def test_save_streamed_writes_what_save_writes(tmp_path: Path) -> None:
    arrays = {
        "a": np.arange(12, dtype=np.float32).reshape(3, 4),
        "b": np.array([1.5, -2], ml_dtypes.bfloat16),
        "c": np.zeros((0, 2), np.float64),
        "d": np.arange(5, dtype=">i4"),  # big-endian values are written little-endian
    }
    tensors = [io.TensorInfo(name, a.shape, a.dtype.newbyteorder("=").name) for name, a in arrays.items()]
    streamed = io.save_streamed(tensors, pieces_of(arrays), tmp_path / "s.safetensors", metadata={"k": "v"})
    expected = io.save(arrays, tmp_path / "m.safetensors", metadata={"k": "v"})
    assert streamed.read_bytes() == expected.read_bytes()


@pytest.mark.parametrize(
    ("pieces", "named"),
    [
        ([np.ones(4, np.float64)], r"'w'.*dtype 'float64'.*'float32'"),
        ([np.ones(4, np.float32), np.ones(1, np.float32)], r"'w'.*more than its 16 bytes"),
        ([np.ones(3, np.float32)], r"'w' hold 12 of its 16 bytes"),
        ([], r"'w' hold 0 of its 16 bytes"),
    ],
)
def test_wrong_pieces_are_errors_and_leave_the_old_file(tmp_path: Path, pieces: list[Any], named: str) -> None:
    target = tmp_path / "params.safetensors"
    target.write_bytes(b"old contents")
    with pytest.raises(InvalidArgumentError, match=named):
        io.save_streamed([io.TensorInfo("w", (2, 2), "float32")], lambda tensor: iter(pieces), target)
    assert target.read_bytes() == b"old contents"
    assert [p.name for p in tmp_path.iterdir()] == ["params.safetensors"]


def test_streaming_makes_safetensors_only(tmp_path: Path) -> None:
    with pytest.raises(InvalidArgumentError, match=r"\.safetensors.*params\.npz"):
        io.save_streamed([], lambda tensor: iter([]), tmp_path / "params.npz")


class FailsOnThirdPiece(initreg.RandomNormal):
    """A normal initializer whose third slice raises, as a draw failing halfway through a file would."""

    def __init__(self) -> None:
        super().__init__()
        self.slices = 0

    def generate_slice(self, *args: Any, **kwargs: Any) -> Any:
        self.slices += 1
        if self.slices == 3:
            raise InvalidArgumentError("the third piece fails")
        return super().generate_slice(*args, **kwargs)


def test_an_error_while_drawing_leaves_no_file(tmp_path: Path) -> None:
    rules = {**RULES, "embed": {"match": "embed", "init": FailsOnThirdPiece()}}
    with pytest.raises(InvalidArgumentError, match=r"parameter 'embed' \(rule 'embed'\): the third piece fails"):
        tree.save_tree(SPEC, rules, tmp_path / "params.safetensors", chunk_bytes=8)
    assert list(tmp_path.iterdir()) == []


TERMINATED_WRITER = """
import sys, time
import numpy as np
from initreg import io

def pieces(tensor):
    yield np.ones(1000, np.float32)
    print("writing", flush=True)
    time.sleep(60)  # SIGTERM or SIGHUP arrives here
    yield np.ones(1000, np.float32)

io.save_streamed([io.TensorInfo("w", (2000,), "float32")], pieces, sys.argv[1])
"""


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGHUP])
def test_sigterm_and_sighup_while_streaming_leave_no_file(tmp_path: Path, signum: int) -> None:
    target = tmp_path / "params.safetensors"
    process = subprocess.Popen(
        [sys.executable, "-c", TERMINATED_WRITER, str(target)], stdout=subprocess.PIPE, text=True
    )
    assert process.stdout is not None and process.stdout.readline() == "writing\n"
    process.send_signal(signum)
    assert process.wait(timeout=30) == 128 + signum
    assert list(tmp_path.iterdir()) == []


def test_the_gpt2_xl_config_has_the_architecture_s_shapes() -> None:
    from importlib.resources import files

    from omegaconf import OmegaConf

    from initreg.model_specs import model_spec

    config = OmegaConf.load(str(files("initreg.configs.command") / "model" / "gpt2_xl.yaml"))
    spec, _ = model_spec(OmegaConf.to_container(config.model, resolve=True))  # type: ignore[arg-type]
    flat = tree.flatten(spec)
    d, layers = GPT2_XL["d_model"], GPT2_XL["layers"]
    block = 2 * d + (d * 3 * d + 3 * d) + (d * d + d) + 2 * d + (d * 4 * d + 4 * d) + (4 * d * d + d)
    expected = GPT2_XL["vocab"] * d + GPT2_XL["positions"] * d + layers * block + 2 * d
    assert sum(math.prod(shape) for shape in flat.values()) == expected == 1_557_611_200
    assert len(flat) == 4 + 12 * layers
    assert flat["h.47.mlp.c_fc.weight"] == (d, 4 * d) and flat["wte.weight"] == (GPT2_XL["vocab"], d)


INITREG = shutil.which("initreg", path=str(Path(sys.executable).parent))


def initreg_command(cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    assert INITREG is not None, "the initreg console script is not installed next to the interpreter"
    env = {k: v for k, v in os.environ.items() if k != "HYDRA_FULL_ERROR"}
    return subprocess.run([INITREG, *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=120)


def std_column(stdout: str) -> dict[str, str]:
    rows = (line.split("│") for line in stdout.splitlines() if line.count("│") > 2)
    return {cells[1].strip(): cells[-2].strip() for cells in rows}


def test_the_command_streams_the_same_file_as_in_memory(tmp_path: Path) -> None:
    rules = ["rules.biases.init=ones", "dtype=bfloat16", "seed=2"]
    streamed = initreg_command(tmp_path, *rules, "chunk_mb=0.0001", "output=streamed.safetensors")
    whole = initreg_command(tmp_path, *rules, "stream=false", "output=whole.safetensors")
    assert streamed.returncode == whole.returncode == 0, streamed.stderr + whole.stderr
    assert streamed.stderr == whole.stderr == ""
    assert (tmp_path / "streamed.safetensors").read_bytes() == (tmp_path / "whole.safetensors").read_bytes()
    measured, expected = std_column(streamed.stdout), std_column(whole.stdout)
    assert measured.keys() == expected.keys() and len(measured) == 6
    for name in measured:
        assert float(measured[name]) == pytest.approx(float(expected[name]), rel=1e-3, abs=1e-12)


@pytest.mark.parametrize(
    ("override", "named"),
    [("chunk_mb=0", "chunk_mb must be a positive number"), ("stream=maybe", "stream must be true or false")],
)
def test_bad_streaming_settings_give_one_line_and_no_file(tmp_path: Path, override: str, named: str) -> None:
    done = initreg_command(tmp_path, override)
    assert done.returncode == 2
    assert done.stderr.startswith(f"initreg: error: {named}") and done.stderr.count("\n") == 1
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("chunk_bytes", [1, 40, 1 << 20])
def test_assemble_gives_generate_s_tensor(chunk_bytes: int, stream_path: str) -> None:
    for entry in tree.plan(SPEC, RULES):
        whole = numpy_backend.backend.to_numpy(tree.generate(entry, 5))
        assembled = tree.assemble(entry, 5, chunk_bytes=chunk_bytes)
        assert assembled.dtype == whole.dtype and assembled.shape == whole.shape, entry.path
        assert assembled.tobytes() == whole.tobytes(), entry.path


def traced_peak(function: Any) -> int:
    """The most bytes tracemalloc saw allocated at once while `function()` ran (NumPy reports its arrays)."""
    import tracemalloc

    tracemalloc.start()
    try:
        function()
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


@pytest.mark.parametrize(
    ("init", "shape", "dtype"),
    [
        ("orthogonal", (1024, 1024), "float32"),
        ("orthogonal", (2048, 512), "bfloat16"),
        ("orthogonal", (256, 4096), "float64"),
        ("identity", (1024, 2048), "float16"),
        ("identity", (1024, 1024), "float64"),
        ("lecun_normal", (1024, 1024), "bfloat16"),
        ("truncated_normal", (1024, 1024), "float64"),
        ("glorot_uniform", (2048, 1024), "float32"),
    ],
)
def test_the_peak_estimate_covers_the_measured_peak(
    init: str, shape: tuple[int, ...], dtype: str, stream_path: str
) -> None:
    (entry,) = tree.plan({"w": shape}, {"all": {"match": "*", "init": init}}, dtype=dtype)
    tree.generate(entry, 0)  # compiles the kernels outside the measurement
    measured = traced_peak(lambda: tree.generate(entry, 0))
    estimate = tree.draw_peak_bytes(entry.initializer, shape, dtype, None, fused=stream_path == "fused")
    assert measured <= estimate + (64 << 10), (measured, estimate)  # 64 KiB: small arrays besides the tensors
    assert estimate <= 2.5 * measured, (measured, estimate)


def test_a_draw_needing_more_than_the_available_memory_is_refused_before_allocating(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from initreg import memory
    from initreg.errors import OutOfMemoryError

    monkeypatch.setattr(memory, "available_bytes", lambda: 40 << 20)  # 40 MiB
    spec = {"rotation": (2048, 2048), "eye": (4096, 4096), "dense": (4096, 4096), "small": (2048, 2048)}
    rules = {
        "dense": {"match": "*", "init": "lecun_normal"},
        "rotation": {"match": "rotation", "init": "orthogonal"},
        "eye": {"match": "eye", "init": "identity"},
    }
    needs = {"rotation": 9 * (16 << 20), "eye": 2 * (64 << 20), "dense": 17 * (4 << 20)}
    entries = {entry.path: entry for entry in tree.plan(spec, rules)}
    for path, needed in needs.items():
        error = None
        try:
            peak = traced_peak(lambda: tree.generate(entries[path], 0))  # noqa: B023
        except OutOfMemoryError as caught:
            error = caught
        assert error is not None and isinstance(error, MemoryError), path
        message = str(error)
        assert f"parameter {path!r}" in message and f"needs about {needed} bytes" in message, message
        assert f"but {40 << 20} bytes (41.9 MB) is available" in message, message
    peak = traced_peak(lambda: tree.generate(entries["small"], 0))  # 16 MiB: fits
    assert peak < 40 << 20


def test_a_tensor_assembled_from_pieces_is_refused_if_it_and_a_piece_do_not_fit(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from initreg import memory
    from initreg.errors import OutOfMemoryError

    (entry,) = tree.plan({"w": (4096, 4096)}, {"all": {"match": "*", "init": "lecun_normal"}})
    monkeypatch.setattr(memory, "available_bytes", lambda: 65 << 20)  # the tensor's 64 MiB and 1 MiB more
    assert tree.assemble(entry, 0, chunk_bytes=1 << 18).nbytes == 64 << 20  # a 256 kiB piece fits
    with pytest.raises(OutOfMemoryError, match=r"parameter 'w' \(rule 'all'\), 67108864 bytes held while"):
        tree.assemble(entry, 0, chunk_bytes=4 << 20)  # a 4 MiB piece does not


def test_refused_draws_allocate_nothing(monkeypatch: pytest.MonkeyPatch) -> None:
    from initreg import memory
    from initreg.errors import OutOfMemoryError

    monkeypatch.setattr(memory, "available_bytes", lambda: 1 << 20)
    (entry,) = tree.plan({"w": (100_000, 100_000)}, {"all": {"match": "*", "init": "orthogonal"}})

    def refused() -> None:
        with pytest.raises(OutOfMemoryError, match=r"needs about 360000000000 bytes \(360.0 GB\)"):
            tree.generate(entry, 0)

    assert traced_peak(refused) < 1 << 20


@pytest.mark.parametrize(
    ("dtype", "shape", "suffix"),
    [
        ("float32", (4096, 4096), ".safetensors"),
        ("bfloat16", (4096, 8192), ".safetensors"),
        ("float32", (4096, 4096), ".npz"),
    ],
)
def test_stream_false_holds_little_more_than_the_tree(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, dtype: str, shape: tuple[int, ...], suffix: str
) -> None:
    from initreg import cli

    monkeypatch.setattr(cli, "_metadata", lambda settings: {})  # the command's metadata needs Hydra's config
    (entry,) = tree.plan({"w": shape}, {"all": {"match": "*", "init": "lecun_normal"}}, dtype=dtype)
    settings = {"progress": False, "stream": False, "chunk_mb": 2, "seed": 0, "init": "lecun_normal"}
    backend = numpy_backend.backend
    cli._draw([entry], settings, backend, tmp_path / f"warm{suffix}")  # compiles the kernels outside the measurement
    peak = traced_peak(lambda: cli._draw([entry], settings, backend, tmp_path / f"w{suffix}"))
    assert peak <= 1.3 * entry.nbytes, peak / entry.nbytes
    assert (tmp_path / f"w{suffix}").read_bytes() == (tmp_path / f"warm{suffix}").read_bytes()


LARGE_SPEC = {"embed": (700, 1000), "head": (1000, 300), "bias": (3000,), "wide": (3, 200_000), "table": (600, 500)}
LARGE_RULES = {
    "weights": {"match": "*", "init": "lecun_normal"},
    "head": {"match": "head", "init": {"name": "random_uniform", "minval": -2, "maxval": 3}, "dtype": "float64"},
    "wide": {"match": "wide", "init": {"name": "truncated_normal", "stddev": 0.5}},
    "table": {"match": "table", "init": "ones"},
}


@pytest.mark.parametrize("chunk_bytes", [1 << 20, 1_500_000, 8 << 20])
def test_pieces_drawn_with_their_moments_into_reused_buffers_make_the_in_memory_file(
    tmp_path: Path, chunk_bytes: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    if numpy_backend.fused_kernels() is None:
        pytest.skip("numba is not importable")
    fused = numpy_backend.fused_kernels()
    filled: list[int] = []
    fill = fused.fill_with_moments
    monkeypatch.setattr(fused, "fill_with_moments", lambda out, *args: filled.append(out.size) or fill(out, *args))
    measured: dict[str, list[tuple[int, float, float]]] = {}
    observed: dict[str, list[tuple[int, float, float]]] = {}
    entries = tree.plan(LARGE_SPEC, LARGE_RULES)
    streamed = tree.save_entries(
        entries, 4, tmp_path / "streamed.safetensors", chunk_bytes=chunk_bytes,
        observe=lambda entry, piece: observed.setdefault(entry.path, []).append(initreg.moments.piece_moments(piece)),
        measure=lambda entry, found: measured.setdefault(entry.path, []).append(found),
    )  # fmt: skip
    whole = io.save(tree.flatten(initreg.init_tree(LARGE_SPEC, LARGE_RULES, seed=4)), tmp_path / "whole.safetensors")
    assert streamed.read_bytes() == whole.read_bytes()
    assert measured == observed  # the draw's own moments are the fused pass's, bit for bit
    assert sum(filled) == sum(math.prod(LARGE_SPEC[name]) for name in ("embed", "head", "bias", "wide"))
    assert max(filled) * 8 >= 1 << 20  # pieces large enough to go through the two buffers
    assert len(measured["table"]) == len(observed["table"]) >= 1  # Constant: measured after its draw


def test_piece_buffers_alternate_and_reuse_their_memory() -> None:
    buffers = write.PieceBuffers()
    first, second = buffers.take(1000, np.dtype(np.float32)), buffers.take(10, np.dtype(np.float64))
    third, fourth = buffers.take(500, np.dtype(np.float64)), buffers.take(20, np.dtype(np.float32))
    assert not np.shares_memory(first, second)
    assert np.shares_memory(first, third) and np.shares_memory(second, fourth)
    assert (third.size, third.dtype, fourth.size, fourth.dtype) == (500, np.float64, 20, np.float32)
    grown = buffers.take(2000, np.dtype(np.float32))  # larger than the first buffer: a new one
    assert grown.size == 2000 and not np.shares_memory(grown, first)


class Tracked:
    """An item of BATCH_BYTES that counts how many of its kind are alive."""

    alive = 0

    def __init__(self, number: int) -> None:
        self.number = number
        Tracked.alive += 1

    def __del__(self) -> None:
        Tracked.alive -= 1


def test_one_batch_ahead_makes_the_next_item_while_one_is_used_holding_at_most_two() -> None:
    making_second = threading.Event()

    def items() -> Any:
        for number in range(20):
            if number == 1:
                making_second.set()
            yield Tracked(number)

    seen = []
    for item in ahead.one_batch_ahead(items(), lambda item: ahead.BATCH_BYTES):
        assert making_second.wait(timeout=30)  # item 1 is being made while item 0 is held
        assert Tracked.alive <= 2
        seen.append(item.number)
        del item
    assert seen == list(range(20))
    small = list(ahead.one_batch_ahead(iter(range(100_000)), lambda item: 8))  # batches of many items
    assert small == list(range(100_000))


def test_one_batch_ahead_raises_the_iterator_s_error_after_its_items_and_keeps_the_context() -> None:
    import contextvars

    where: contextvars.ContextVar[str] = contextvars.ContextVar("where", default="unset")
    where.set("caller")

    def items() -> Any:
        yield where.get()
        yield threading.current_thread() is threading.main_thread()
        raise InvalidArgumentError("the third item fails")

    made = []
    with pytest.raises(InvalidArgumentError, match="the third item fails"):
        for item in ahead.one_batch_ahead(items(), lambda item: 1):
            made.append(item)
    assert made == ["caller", False]


def test_one_batch_ahead_closes_the_iterator_when_the_caller_stops() -> None:
    closed = threading.Event()

    def items() -> Any:
        try:
            yield from range(1000)
        finally:
            closed.set()

    for number in ahead.one_batch_ahead(items(), lambda item: ahead.BATCH_BYTES):
        if number == 3:
            break
    assert closed.wait(timeout=30)


def test_one_batch_ahead_s_worker_has_ended_when_the_items_do() -> None:
    before = threading.active_count()
    assert list(ahead.one_batch_ahead(iter(range(5)), lambda item: ahead.BATCH_BYTES)) == list(range(5))
    assert threading.active_count() == before  # a process may leave at once (the command's os._exit)
