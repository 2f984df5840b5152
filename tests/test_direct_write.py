"""initreg.direct_write: a large .safetensors file written with O_DIRECT through an aligned stage holds the
same bytes as a buffered write, at its exact length, and every way O_DIRECT can fail falls back to buffered
writing without losing a byte. The stage and the size threshold are shrunk so that small files cross many
stages and end on a partial one."""

from __future__ import annotations

import errno
import fcntl
import hashlib
import os
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from initreg import direct_write, io
from initreg.errors import WriteError

pytestmark = pytest.mark.skipif(not hasattr(os, "O_DIRECT"), reason="O_DIRECT is Linux's")

STAGE = 8 * direct_write.ALIGNMENT


def arrays(seed: int) -> dict[str, np.ndarray]:
    """Tensors whose sizes put the stage boundaries and the file's end at unaligned offsets."""
    generator = np.random.default_rng(seed)
    sizes = [1, 4097, 3 * STAGE // 4 + 3, 0, 2 * STAGE + 5, 17]
    return {f"t{i}": generator.standard_normal(size).astype(np.float32) for i, size in enumerate(sizes)}


@pytest.fixture
def direct(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Direct writing for every file, with a small stage; returns the O_DIRECT state seen at each stage write."""
    monkeypatch.setattr(direct_write, "DIRECT_FROM", 0)
    monkeypatch.setattr(direct_write, "STAGE_BYTES", STAGE)
    monkeypatch.delenv(direct_write.SWITCH, raising=False)
    seen: list[int] = []
    flush = direct_write._StagedWriter._flush_stage

    def observed(self: Any, length: int) -> None:
        seen.append(fcntl.fcntl(self.descriptor, fcntl.F_GETFL) & os.O_DIRECT)
        flush(self, length)

    monkeypatch.setattr(direct_write._StagedWriter, "_flush_stage", observed)
    return seen


def buffered_bytes(tmp_path: Path, values: dict[str, np.ndarray]) -> bytes:
    path = io.save(values, tmp_path / "buffered.safetensors")
    return path.read_bytes()


def streamed(values: dict[str, np.ndarray], path: Path, piece: int = 1000) -> Path:
    infos = [io.TensorInfo(name, array.shape, "float32") for name, array in values.items()]
    return io.save_streamed(
        infos, lambda info: (values[info.name][i : i + piece] for i in range(0, values[info.name].size, piece)), path
    )


def test_direct_writes_give_the_buffered_bytes_at_the_exact_length(tmp_path: Path, direct: list[int]) -> None:
    values = arrays(0)
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv(direct_write.SWITCH, "0")
        wanted = buffered_bytes(tmp_path, values)
    assert direct == []  # switched off: no stage at all
    for save in (lambda path: io.save(values, path), lambda path: streamed(values, path)):
        direct.clear()
        path = save(tmp_path / "direct.safetensors")
        assert path.read_bytes() == wanted and path.stat().st_size == len(wanted)
        assert len(direct) == -(-len(wanted) // STAGE) and all(direct), direct  # every stage went direct
    assert io.read_header(tmp_path / "direct.safetensors")[2].shape == (3 * STAGE // 4 + 3,)


def test_a_file_system_that_refuses_o_direct_gets_the_same_bytes_buffered(tmp_path: Path, direct: list[int]) -> None:
    shm = Path("/dev/shm")
    if not shm.is_dir() or not os.access(shm, os.W_OK):
        pytest.skip("no writable /dev/shm (tmpfs, which refuses O_DIRECT)")
    values = arrays(1)
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv(direct_write.SWITCH, "0")
        wanted = buffered_bytes(tmp_path, values)
    path = shm / f"initreg-test-{os.getpid()}.safetensors"
    try:
        streamed(values, path)
        assert path.read_bytes() == wanted
    finally:
        path.unlink(missing_ok=True)


@pytest.mark.parametrize("failure", ["short_aligned", "short_unaligned", "einval_first"])
def test_a_short_or_refused_direct_write_continues_buffered_where_it_stopped(
    tmp_path: Path, direct: list[int], monkeypatch: pytest.MonkeyPatch, failure: str
) -> None:
    values = arrays(2)
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv(direct_write.SWITCH, "0")
        wanted = buffered_bytes(tmp_path, values)
    real_write, calls = os.write, []

    def flaky(descriptor: int, data: Any) -> int:
        calls.append(len(data))
        if failure == "einval_first" and len(calls) == 1:
            raise OSError(errno.EINVAL, "Invalid argument")
        if failure == "short_aligned" and len(calls) == 2:
            return real_write(descriptor, data[: direct_write.ALIGNMENT])  # the next write starts aligned
        if failure == "short_unaligned" and len(calls) == 2:  # as a write that O_DIRECT let through buffered
            flags = fcntl.fcntl(descriptor, fcntl.F_GETFL)
            fcntl.fcntl(descriptor, fcntl.F_SETFL, flags & ~os.O_DIRECT)
            return real_write(descriptor, data[: direct_write.ALIGNMENT + 100])
        return real_write(descriptor, data)

    monkeypatch.setattr(direct_write.os, "write", flaky)
    path = streamed(values, tmp_path / "flaky.safetensors")
    assert path.read_bytes() == wanted
    assert len(calls) > 2  # the rest of the file went on, buffered


def test_a_full_disk_during_a_direct_write_leaves_no_file(
    tmp_path: Path, direct: list[int], monkeypatch: pytest.MonkeyPatch
) -> None:
    real_write, calls = os.write, []

    def full(descriptor: int, data: Any) -> int:
        calls.append(1)
        if len(calls) == 3:
            raise OSError(errno.ENOSPC, "No space left on device")
        return real_write(descriptor, data)

    monkeypatch.setattr(direct_write.os, "write", full)
    with pytest.raises(WriteError, match="No space left on device"):
        streamed(arrays(3), tmp_path / "full.safetensors")
    assert list(tmp_path.iterdir()) == []


def test_only_large_files_are_written_direct_unless_switched_off(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(direct_write.SWITCH, raising=False)
    assert direct_write.direct_writing_wanted(direct_write.DIRECT_FROM)
    assert not direct_write.direct_writing_wanted(direct_write.DIRECT_FROM - 1)
    monkeypatch.setenv(direct_write.SWITCH, "0")
    assert not direct_write.direct_writing_wanted(direct_write.DIRECT_FROM)


def test_a_tree_past_the_threshold_is_written_direct_with_the_buffered_digest(tmp_path: Path) -> None:
    """A 350 MB tree through save_tree (O_DIRECT at the default thresholds, past DIRECT_FROM) against the same
    tree written buffered: one digest."""
    import initreg

    spec = {"a": (8192, 9600 + 3), "b": (7, 5), "c": (3000, 3001)}
    digests = []
    for switch in ("1", "0"):
        with pytest.MonkeyPatch.context() as patch:
            patch.setenv(direct_write.SWITCH, switch)
            path = tmp_path / f"tree{switch}.safetensors"
            initreg.save_tree(spec, {"w": {"match": "*", "init": "lecun_normal"}}, path, seed=4, quiet=True)
            digests.append(hashlib.sha256(path.read_bytes()).hexdigest())
            path.unlink()
    assert digests[0] == digests[1]
