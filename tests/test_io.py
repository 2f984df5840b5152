"""Writing .safetensors and .npz: loaded back by the safetensors package, torch and NumPy; byte-identical
for the same input; atomic (a failed or killed write leaves no partial file); headers read without data.
"""

from __future__ import annotations

import itertools
import json
import os
import signal
import struct
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, cast

import ml_dtypes
import numpy as np
import pytest

import initreg
from initreg import io
from initreg.errors import InvalidArgumentError, WriteError

ARRAYS = {
    "dense.kernel": np.arange(12, dtype=np.float32).reshape(3, 4) / 7,
    "dense.bias": np.array([1.5, -2.25, 3.0], dtype=ml_dtypes.bfloat16),
    "half": np.linspace(-1, 1, 5, dtype=np.float16),
    "double": np.array([[np.pi]], dtype=np.float64),
    "empty": np.zeros((0, 3), np.float32),
    "scalar": np.array(2.5, np.float32),
    "ids": np.arange(4, dtype=np.int64),
}
SPEC = {"embed": (50, 8), "block": [{"kernel": (8, 8), "bias": (8,)}] * 2}
RULES = {"weights": {"match": "*", "init": "glorot_uniform"}, "biases": {"match": "*.bias", "init": "zeros"}}


def as_bits(array: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(array).view(np.uint8)


def header_of(raw: bytes) -> dict[str, Any]:
    """The JSON header of safetensors bytes, parsed as the format defines it."""
    (length,) = struct.unpack("<Q", raw[:8])
    return cast(dict[str, Any], json.loads(raw[8 : 8 + length]))


def test_safetensors_loads_back_with_the_safetensors_package(tmp_path: Path) -> None:
    from safetensors import safe_open
    from safetensors.numpy import load_file

    path = io.save(ARRAYS, tmp_path / "params.safetensors", metadata={"seed": "3"})
    loaded = load_file(path)
    assert set(loaded) == set(ARRAYS)
    for name, array in ARRAYS.items():
        assert loaded[name].shape == array.shape
        np.testing.assert_array_equal(as_bits(loaded[name]), as_bits(array))
    with safe_open(path, "np") as file:
        assert file.metadata() == {"seed": "3"}


def test_safetensors_loads_into_torch_with_bfloat16_as_bf16(tmp_path: Path) -> None:
    import torch
    from safetensors.torch import load_file

    path = io.save(ARRAYS, tmp_path / "params.safetensors")
    loaded = load_file(path)
    expected_dtypes = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}
    expected_dtypes |= {"float64": torch.float64, "int64": torch.int64}
    for name, array in ARRAYS.items():
        assert loaded[name].dtype == expected_dtypes[array.dtype.name]
        np.testing.assert_array_equal(loaded[name].to(torch.float64).numpy(), array.astype(np.float64))
    assert header_of(path.read_bytes())["dense.bias"]["dtype"] == "BF16"


def test_the_header_is_aligned_and_the_data_contiguous(tmp_path: Path) -> None:
    raw = io.save(ARRAYS, tmp_path / "params.safetensors").read_bytes()
    (length,) = struct.unpack("<Q", raw[:8])
    assert (8 + length) % 8 == 0
    header = header_of(raw)
    spans = sorted(entry["data_offsets"] for name, entry in header.items() if name != "__metadata__")
    assert spans[0][0] == 0 and spans[-1][1] == len(raw) - 8 - length
    assert all(previous[1] == following[0] for previous, following in itertools.pairwise(spans))


def test_big_endian_arrays_are_written_little_endian(tmp_path: Path) -> None:
    from safetensors.numpy import load_file

    big = np.arange(6, dtype=">f4").reshape(2, 3)
    loaded = load_file(io.save({"big": big}, tmp_path / "big.safetensors"))
    np.testing.assert_array_equal(loaded["big"], big)


def test_the_same_seed_gives_byte_identical_files(tmp_path: Path) -> None:
    first = io.save(initreg.tree.flatten(initreg.init_tree(SPEC, RULES, seed=9)), tmp_path / "a.safetensors")
    second = io.save(initreg.tree.flatten(initreg.init_tree(SPEC, RULES, seed=9)), tmp_path / "b.safetensors")
    other = io.save(initreg.tree.flatten(initreg.init_tree(SPEC, RULES, seed=10)), tmp_path / "c.safetensors")
    assert first.read_bytes() == second.read_bytes()
    assert first.read_bytes() != other.read_bytes()


def test_npz_loads_back_and_is_byte_identical_at_any_time(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    arrays = {name: array for name, array in ARRAYS.items() if array.dtype != ml_dtypes.bfloat16}
    first = io.save(arrays, tmp_path / "a.npz").read_bytes()
    monkeypatch.setattr(time, "time", lambda: 2_000_000_000.0)  # a zip stamped with the clock would differ
    second = io.save(arrays, tmp_path / "b.npz").read_bytes()
    assert first == second
    with np.load(tmp_path / "b.npz") as loaded:
        assert set(loaded.files) == set(arrays)
        for name, array in arrays.items():
            np.testing.assert_array_equal(loaded[name], array)
            assert loaded[name].dtype == array.dtype


def test_npz_refuses_bfloat16_and_writes_nothing(tmp_path: Path) -> None:
    with pytest.raises(InvalidArgumentError, match=r"'dense.bias'.*bfloat16.*safetensors"):
        io.save(ARRAYS, tmp_path / "params.npz")
    assert list(tmp_path.iterdir()) == []


def test_a_failed_write_leaves_the_old_file_and_no_temporary(tmp_path: Path) -> None:
    target = tmp_path / "params.safetensors"
    target.write_bytes(b"old contents")
    bad = {"good": np.ones(3, np.float32), "bad": np.array(["text"])}
    with pytest.raises(InvalidArgumentError, match="'bad'"):
        io.save(bad, target)
    assert target.read_bytes() == b"old contents"
    assert [p.name for p in tmp_path.iterdir()] == ["params.safetensors"]
    with pytest.raises(KeyboardInterrupt), io.atomic_file(tmp_path / "new.bin") as file:
        file.write(b"partial")
        raise KeyboardInterrupt
    assert [p.name for p in tmp_path.iterdir()] == ["params.safetensors"]


KILLED_WRITER = """
import sys
from initreg import InitregError, io
with io.atomic_file(sys.argv[1]) as file:
    file.write(b"x" * 1_000_000)
    file.flush()
    print("writing", flush=True)
    sys.stdin.read()  # blocks until killed
"""


def test_a_killed_writer_leaves_no_file_at_the_target(tmp_path: Path) -> None:
    target = tmp_path / "params.safetensors"
    process = subprocess.Popen(
        [sys.executable, "-c", KILLED_WRITER, str(target)], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    )
    assert process.stdout is not None and process.stdout.readline() == "writing\n"
    process.send_signal(signal.SIGKILL)
    process.wait()
    assert not target.exists()
    leftovers = list(tmp_path.iterdir())
    assert len(leftovers) == 1 and leftovers[0].name.startswith(".params.safetensors.")


def test_files_get_the_usual_permissions(tmp_path: Path) -> None:
    umask = os.umask(0o022)
    try:
        path = io.save({"w": np.ones(2, np.float32)}, tmp_path / "w.safetensors")
    finally:
        os.umask(umask)
    assert path.stat().st_mode & 0o777 == 0o644


@pytest.mark.parametrize("umask", [0o022, 0o077, 0o002], ids=oct)
def test_a_new_file_gets_the_mode_open_gives_under_the_umask(tmp_path: Path, umask: int) -> None:
    previous = os.umask(umask)
    try:
        path = io.save({"w": np.ones(2, np.float32)}, tmp_path / "w.safetensors")
        with open(tmp_path / "by_open", "wb"):
            pass
    finally:
        os.umask(previous)
    assert path.stat().st_mode & 0o7777 == 0o666 & ~umask == (tmp_path / "by_open").stat().st_mode & 0o7777


@pytest.mark.parametrize("mode", [0o600, 0o640, 0o755, 0o444], ids=oct)
@pytest.mark.parametrize("suffix", [".safetensors", ".npz"])
def test_a_replaced_file_keeps_its_mode_owner_and_group(tmp_path: Path, mode: int, suffix: str) -> None:
    target = tmp_path / f"w{suffix}"
    target.write_bytes(b"old")
    target.chmod(mode)
    before = target.stat()
    previous = os.umask(0o022)  # which would give 0o644 to a new file
    try:
        io.save({"w": np.ones(2, np.float32)}, target)
    finally:
        os.umask(previous)
    after = target.stat()
    assert after.st_ino != before.st_ino  # replaced, not rewritten in place
    assert (after.st_mode & 0o7777, after.st_uid, after.st_gid) == (mode, before.st_uid, before.st_gid)
    assert io.read_header(target) == [io.TensorInfo("w", (2,), "float32")]


@pytest.mark.skipif(not hasattr(os, "geteuid") or os.geteuid() != 0, reason="giving a file away takes root")
def test_a_replaced_file_keeps_another_users_owner_and_group(tmp_path: Path) -> None:
    target = tmp_path / "w.safetensors"
    target.write_bytes(b"old")
    os.chown(target, 4321, 8765)
    io.save({"w": np.ones(2, np.float32)}, target)
    assert (target.stat().st_uid, target.stat().st_gid) == (4321, 8765)


def test_a_file_being_replaced_is_written_readable_by_its_owner_only(tmp_path: Path) -> None:
    target = tmp_path / "w.safetensors"
    target.write_bytes(b"old")
    target.chmod(0o600)
    with io.atomic_file(target) as file:
        assert os.fstat(file.fileno()).st_mode & 0o777 == 0o600
        file.write(b"new")
    assert target.read_bytes() == b"new" and target.stat().st_mode & 0o777 == 0o600


def test_read_header_gives_shapes_and_dtypes_without_the_data(tmp_path: Path) -> None:
    expected = [io.TensorInfo(name, array.shape, array.dtype.name) for name, array in ARRAYS.items()]
    path = io.save(ARRAYS, tmp_path / "params.safetensors")
    raw = path.read_bytes()
    (length,) = struct.unpack("<Q", raw[:8])
    with path.open("r+b") as file:  # the data is gone (a hole of zeros): only the header can be read
        file.truncate(8 + length)
        file.truncate(len(raw))
    assert io.read_header(path) == expected
    without_bf16 = [info for info in expected if info.dtype != "bfloat16"]
    npz = io.save({name: a for name, a in ARRAYS.items() if a.dtype != ml_dtypes.bfloat16}, tmp_path / "p.npz")
    assert io.read_header(npz) == without_bf16


def test_read_header_reads_files_written_by_others(tmp_path: Path) -> None:
    import torch
    from safetensors.torch import save_file

    save_file(
        {"w": torch.zeros(2, 3, dtype=torch.bfloat16), "n": torch.zeros(4, dtype=torch.int32)},
        tmp_path / "t.safetensors",
    )
    np.savez(tmp_path / "n.npz", w=np.zeros((2, 3), np.float32))
    assert set(io.read_header(tmp_path / "t.safetensors")) == {
        io.TensorInfo("w", (2, 3), "bfloat16"),
        io.TensorInfo("n", (4,), "int32"),
    }
    assert io.read_header(tmp_path / "n.npz") == [io.TensorInfo("w", (2, 3), "float32")]


@pytest.mark.parametrize(
    ("name", "contents", "named"),
    [
        ("missing.safetensors", None, "No such file"),
        ("text.safetensors", b"hello, this is not a header", "not a safetensors file"),
        ("text.npz", b"not a zip", "not an .npz file"),
        ("weights.pt", b"", "'.safetensors', '.npz'"),
    ],
)
def test_read_header_errors_name_the_file(tmp_path: Path, name: str, contents: bytes | None, named: str) -> None:
    if contents is not None:
        (tmp_path / name).write_bytes(contents)
    with pytest.raises(InvalidArgumentError) as error:
        io.read_header(tmp_path / name)
    assert name in str(error.value) and named in str(error.value)


CHILD_READER = """
import sys
from initreg import InitregError, io
try:
    io.read_header(sys.argv[1])
except InitregError as error:
    print(error)
"""


def read_header_in_child(path: Path) -> str:
    """The message of the error `io.read_header(path)` raises in a fresh process (which must end within 60 s)."""
    done = subprocess.run([sys.executable, "-c", CHILD_READER, str(path)], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0 and not done.stderr, done.stderr
    return done.stdout.strip()


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="FIFOs are POSIX")
@pytest.mark.parametrize("suffix", [".npz", ".safetensors"])
def test_a_fifo_is_refused_at_once_by_name(tmp_path: Path, suffix: str) -> None:
    os.mkfifo(tmp_path / f"pipe{suffix}")  # no writer: a blocking open would wait for ever
    message = read_header_in_child(tmp_path / f"pipe{suffix}")
    assert f"pipe{suffix}" in message and "is a FIFO" in message and "valid: a regular file" in message


@pytest.mark.skipif(not Path("/dev/urandom").exists(), reason="needs /dev/urandom")
@pytest.mark.parametrize("suffix", [".npz", ".safetensors"])
def test_a_symlink_to_a_device_is_refused_without_reading_it(tmp_path: Path, suffix: str) -> None:
    (tmp_path / f"random{suffix}").symlink_to("/dev/urandom")
    message = read_header_in_child(tmp_path / f"random{suffix}")
    assert f"random{suffix}" in message and "is a character device" in message


@pytest.mark.parametrize("suffix", [".npz", ".safetensors"])
def test_a_folder_is_refused_by_name(tmp_path: Path, suffix: str) -> None:
    (tmp_path / f"folder{suffix}").mkdir()
    with pytest.raises(InvalidArgumentError, match=rf"'.*folder{suffix}' is a folder; valid: a regular file"):
        io.read_header(tmp_path / f"folder{suffix}")


@pytest.mark.parametrize("suffix", [".npz", ".safetensors"])
def test_a_symlink_to_a_regular_file_is_read(tmp_path: Path, suffix: str) -> None:
    arrays = {"w": np.ones((2, 3), np.float32), "b": np.zeros(3, np.float32)}
    target = io.save(arrays, tmp_path / f"target{suffix}")
    (tmp_path / f"link{suffix}").symlink_to(target)
    assert io.read_header(tmp_path / f"link{suffix}") == [
        io.TensorInfo("w", (2, 3), "float32"),
        io.TensorInfo("b", (3,), "float32"),
    ]


@pytest.mark.parametrize("suffix", [".npz", ".safetensors"])
def test_more_tensors_than_the_cap_are_refused_by_name(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, suffix: str
) -> None:
    arrays = {f"t{i}": np.zeros(i, np.float32) for i in range(4)}
    path = io.save(arrays, tmp_path / f"many{suffix}", metadata={"note": "not a tensor"})
    monkeypatch.setattr(io, "MAX_TENSORS", 4)
    assert len(io.read_header(path)) == 4
    monkeypatch.setattr(io, "MAX_TENSORS", 3)
    with pytest.raises(InvalidArgumentError, match=rf"'.*many{suffix}' declares 4 tensors; valid: at most 3"):
        io.read_header(path)


def test_the_command_shares_the_cap_of_files() -> None:
    from initreg import model_specs

    assert model_specs.MAX_TENSORS == io.MAX_TENSORS == 1_000_000


def header_fuzzer() -> Any:
    """bench/fuzz_headers.py as a module."""
    import importlib.util

    location = Path(__file__).resolve().parents[1] / "bench" / "fuzz_headers.py"
    spec = importlib.util.spec_from_file_location("fuzz_headers", location)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.filterwarnings("ignore::UserWarning", "ignore::SyntaxWarning", "ignore::DeprecationWarning")
def test_every_mutated_header_gives_tensors_or_one_error_naming_the_file(tmp_path: Path) -> None:
    fuzz = header_fuzzer()
    counts = fuzz.fuzz_library(tmp_path, fuzz.seed_files(tmp_path), 1_500, seed=15)
    outcomes = {outcome for _, outcome in counts}
    assert outcomes == {"ok", "error"}, counts
    assert all(counts[kind, "error"] >= 100 for kind in fuzz.KINDS), counts


def test_the_command_reports_mutated_headers_in_one_line(tmp_path: Path) -> None:
    fuzz = header_fuzzer()
    counts = fuzz.fuzz_command(tmp_path, fuzz.seed_files(tmp_path), 30, seed=15)
    assert {outcome for _, outcome in counts} == {"ok", "error"}, counts


def test_the_format_comes_from_the_suffix_or_the_argument(tmp_path: Path) -> None:
    assert io.file_format("a.safetensors") == "safetensors"
    assert io.file_format("a.npz") == "npz"
    assert io.file_format("a.bin", "npz") == "npz"
    with pytest.raises(InvalidArgumentError, match="'a.bin'"):
        io.file_format("a.bin")
    with pytest.raises(InvalidArgumentError, match="'pickle'"):
        io.file_format("a.npz", "pickle")
    with np.load(io.save({"w": np.ones(2)}, tmp_path / "w.bin", format="npz")) as loaded:
        np.testing.assert_array_equal(loaded["w"], np.ones(2))


def safetensors_bytes(header: str, data_bytes: int) -> bytes:
    """A safetensors file with this JSON header text (padded as the format asks) and zeroed data."""
    text = header.encode()
    text += b" " * (-len(text) % 8)
    return struct.pack("<Q", len(text)) + text + bytes(data_bytes)


def entry(shape: str, offsets: str, dtype: str = "F32") -> str:
    return f'{{"dtype":"{dtype}","shape":{shape},"data_offsets":{offsets}}}'


@pytest.mark.parametrize(
    ("header", "data_bytes", "named"),
    [
        (
            '{"w":' + entry("[1000000000000000]", "[0,4000000000000000]") + "}",
            0,
            ["'w'", "4000000000000000", "0 bytes"],
        ),
        ('{"w":' + entry("[1000000000000000]", "[0,8]") + "}", 8, ["'w'", "4000000000000000", "[0, 8] hold 8"]),
        ('{"w":{"dtype":"F32","shape":[2]}}', 8, ["'w'", "data_offsets"]),
        ('{"w":' + entry("[2]", '["0","8"]') + "}", 8, ["'w'", "data_offsets ['0', '8']"]),
        ('{"w":' + entry("[2]", "[0,8,8]") + "}", 8, ["'w'", "[0, 8, 8]"]),
        ('{"w":' + entry("[2]", "[4,12]") + "}", 12, ["'w'", "starts at byte 4", "where 0", "gap"]),
        ('{"a":' + entry("[2]", "[0,8]") + ',"b":' + entry("[1]", "[4,8]") + "}", 8, ["'b'", "byte 4", "overlaps"]),
        ('{"w":' + entry("[2]", "[0,8]") + "}", 12, ["'w'", "ends at byte 8", "holds 12 bytes"]),
        ('{"w":' + entry("[Infinity]", "[0,8]") + "}", 8, ["Infinity"]),
        ('{"w":' + entry("[2.0]", "[0,8]") + "}", 8, ["'w'", "shape [2.0]"]),
        ('{"w":' + entry("[-2]", "[0,8]") + "}", 8, ["'w'", "shape [-2]"]),
        (
            '{"w":' + entry("[3]", "[0,2]", "F4") + "}",
            2,
            ["'w'", "F4", "12 bits, not a whole number of bytes", "hold 2"],
        ),
        ('{"w":' + entry("[2]", "[0,8]", "F33") + "}", 8, ["'w'", "'F33'", "'BF16'"]),
        ('{"w":' + "[" * 100_000 + "]" * 100_000 + "}", 0, ["nested too deeply"]),
        ('{"__metadata__":{"seed":3},"w":' + entry("[2]", "[0,8]") + "}", 8, ["__metadata__"]),
    ],
)
def test_inconsistent_safetensors_headers_are_refused_as_the_safetensors_package_refuses_them(
    tmp_path: Path, header: str, data_bytes: int, named: list[str]
) -> None:
    from safetensors import safe_open

    path = tmp_path / "hostile.safetensors"
    path.write_bytes(safetensors_bytes(header, data_bytes))
    with pytest.raises(InvalidArgumentError) as error:
        io.read_header(path)
    for part in ["'" + str(path) + "'", *named]:
        assert part in str(error.value)
    with pytest.raises(Exception, match="Error while deserializing header"), safe_open(path, "np"):
        pass


@pytest.mark.parametrize(
    ("header", "data_bytes", "expected"),
    [
        (
            '{"a":' + entry("[2]", "[4,12]") + ',"b":' + entry("[2,1]", "[0,4]", "F16") + "}",
            12,
            [io.TensorInfo("a", (2,), "float32"), io.TensorInfo("b", (2, 1), "float16")],
        ),
        (
            '{"e":' + entry("[0,5]", "[0,0]") + ',"f":' + entry("[4]", "[0,2]", "F4") + "}",
            2,
            [io.TensorInfo("e", (0, 5), "float32"), io.TensorInfo("f", (4,), "F4")],
        ),
    ],
)
def test_consistent_headers_in_any_order_are_read_as_the_safetensors_package_reads_them(
    tmp_path: Path, header: str, data_bytes: int, expected: list[io.TensorInfo]
) -> None:
    from safetensors import safe_open

    path = tmp_path / "fine.safetensors"
    path.write_bytes(safetensors_bytes(header, data_bytes))
    assert io.read_header(path) == expected
    with safe_open(path, "np") as file:
        assert sorted(file.keys()) == sorted(info.name for info in expected)


def test_a_rank_above_numpys_limit_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "deep.safetensors"
    path.write_bytes(safetensors_bytes('{"w":' + entry("[" + ",".join(["1"] * 65) + "]", "[0,4]") + "}", 4))
    with pytest.raises(InvalidArgumentError, match="'w' has shape .* at most 64"):
        io.read_header(path)


def npy_member(shape: tuple[int, ...], data: bytes, dtype: str = "<f4") -> bytes:
    import io as bytes_io

    buffer = bytes_io.BytesIO()
    np.lib.format.write_array_header_1_0(buffer, {"descr": dtype, "fortran_order": False, "shape": shape})
    return buffer.getvalue() + data


def test_npz_members_must_hold_what_their_header_declares(tmp_path: Path) -> None:
    import zipfile

    path = tmp_path / "bomb.npz"
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("w.npy", npy_member((10**15,), b""))
    assert path.stat().st_size < 300
    with pytest.raises(InvalidArgumentError, match=r"'w' of dtype float32 and shape \[1000000000000000\] needs "
                       r"4000000000000000 bytes, but its member stores 0"):  # fmt: skip
        io.read_header(path)
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("w.npy", npy_member((2, 3), bytes(20)))
    with pytest.raises(InvalidArgumentError, match=r"'w' .* needs 24 bytes, but its member stores 20"):
        io.read_header(path)
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("w.npy", npy_member((2,), bytes(16), "|O"))
    with pytest.raises(InvalidArgumentError, match="'w' .* no Python objects"):
        io.read_header(path)


def corrupt(path: Path, how: str) -> None:
    """Breaks the one member of a compressed .npz: an unknown compression method, or damaged data."""
    raw = bytearray(path.read_bytes())
    if how == "method":
        central = raw.find(b"PK\x01\x02")
        raw[8:10] = raw[central + 10 : central + 12] = (99).to_bytes(2, "little")
    else:
        (name_length, extra_length) = struct.unpack("<HH", raw[26:30])
        start = 30 + name_length + extra_length
        raw[start : start + 40] = bytes(range(40))
    path.write_bytes(bytes(raw))


@pytest.mark.parametrize(("how", "named"), [("method", "compression method"), ("data", "")])
def test_an_npz_member_that_cannot_be_read_is_one_error(tmp_path: Path, how: str, named: str) -> None:
    path = tmp_path / "broken.npz"
    np.savez_compressed(path, w=np.arange(1000, dtype=np.float32))
    corrupt(path, how)
    with pytest.raises(InvalidArgumentError, match=f"'{path}' is not an .npz file or cannot be read .*{named}"):
        io.read_header(path)


def test_a_bad_crc_is_one_error(tmp_path: Path) -> None:
    import zipfile

    path = tmp_path / "crc.npz"
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("w.npy", npy_member((0,), b""))
    raw = bytearray(path.read_bytes())
    raw[14:18] = raw[raw.find(b"PK\x01\x02") + 16 : raw.find(b"PK\x01\x02") + 20] = b"\x01\x02\x03\x04"
    path.write_bytes(bytes(raw))
    with pytest.raises(InvalidArgumentError, match="Bad CRC-32"):
        io.read_header(path)


def test_free_space_is_checked_before_anything_is_written(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import shutil

    usage = shutil.disk_usage(tmp_path)
    monkeypatch.setattr(shutil, "disk_usage", lambda folder: usage._replace(free=4000))
    arrays = {"w": np.zeros(1000, np.float32)}
    needs = r"not enough space for '{}': it needs {} bytes \({} kB\), '{}' has 4000 bytes \(4\.0 kB\) free"
    header = io.safetensors_header([io.TensorInfo("w", (1000,), "float32")])
    with pytest.raises(WriteError, match=needs.format(tmp_path / "w.safetensors", 4000 + len(header), "4.1", tmp_path)):
        io.save(arrays, tmp_path / "w.safetensors")
    with pytest.raises(WriteError, match=needs.format(tmp_path / "w.npz", io.npz_size(arrays), "6.0", tmp_path)):
        io.save(arrays, tmp_path / "w.npz")
    drawn = []
    with pytest.raises(WriteError, match="not enough space for .*sub/w.safetensors"):
        io.save_streamed([io.TensorInfo("w", (1000,), "float32")], drawn.append, tmp_path / "sub" / "w.safetensors")
    with pytest.raises(WriteError, match="not enough space"):
        initreg.save_tree({"w": (1000,)}, {"all": {"match": "*", "init": "zeros"}}, tmp_path / "t.safetensors")
    assert drawn == [] and list(tmp_path.iterdir()) == []


FULL_DISK_WRITER = """
import resource, signal, sys
import numpy as np
from initreg import InitregError, io
from initreg.errors import WriteError

signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a write past the limit fails with EFBIG, as on a full disk
resource.setrlimit(resource.RLIMIT_FSIZE, (1 << 16, 1 << 16))
try:
    io.save({"w": np.zeros(1 << 16, np.float32)}, sys.argv[1])
except WriteError as error:
    print(error)
"""


@pytest.mark.parametrize("name", ["w.safetensors", "w.npz"])
def test_a_full_disk_is_an_error_naming_the_target_and_leaves_nothing(tmp_path: Path, name: str) -> None:
    target = tmp_path / name
    done = subprocess.run(
        [sys.executable, "-c", FULL_DISK_WRITER, str(target)], capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0 and done.stderr == ""
    assert done.stdout == f"cannot write {str(target)!r}: File too large\n"
    assert list(tmp_path.iterdir()) == []


@pytest.mark.skipif(not Path("/proc/self").is_dir(), reason="needs Linux's /proc")
def test_an_unwritable_folder_is_reported_at_the_target_path() -> None:
    with pytest.raises(WriteError) as error:
        io.save({"w": np.ones(2, np.float32)}, "/proc/x.safetensors")
    assert str(error.value).startswith("cannot write '/proc/x.safetensors': ")
    assert ".tmp" not in str(error.value) and isinstance(error.value, OSError)


def test_the_longest_names_work_and_longer_ones_are_one_error_naming_the_target(tmp_path: Path) -> None:
    longest = tmp_path / ("w" * (255 - len(".safetensors")) + ".safetensors")
    io.save({"w": np.ones(2, np.float32)}, longest)  # its temporary name is cut to fit
    assert [p.name for p in tmp_path.iterdir()] == [longest.name]
    too_long = tmp_path / ("w" * 256 + ".npz")
    with pytest.raises(WriteError) as error:
        io.save({"w": np.ones(2, np.float32)}, too_long)
    assert str(error.value) == f"cannot write {str(too_long)!r}: File name too long"
    assert [p.name for p in tmp_path.iterdir()] == [longest.name]
