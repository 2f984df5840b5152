"""Dask: chunked trees on a LocalCluster of worker processes equal the in-memory tree, written in place."""

import os

import numpy as np
import pytest

dask = pytest.importorskip("dask")
da = pytest.importorskip("dask.array")
distributed = pytest.importorskip("distributed")
zarr = pytest.importorskip("zarr")

import initreg  # noqa: E402
from initreg.errors import InitregError  # noqa: E402
from initreg.interop.dask import init_tree, to_safetensors, to_zarr  # noqa: E402
from initreg.io import save  # noqa: E402
from initreg.tree import flatten  # noqa: E402

SPEC = {
    "embed": (1000, 64),
    "blocks": [{"w": (64, 256), "b": (256,)}, {"w": (64, 256), "b": (256,)}],
    "mix": (64, 64),
    "conv": (8, 4, 3, 3),
}
RULES = {
    "all": {"match": "*", "init": "glorot_uniform"},
    "biases": {"match": "*.b", "init": {"name": "random_normal", "stddev": 0.1}},
    "embed": {"match": "embed", "init": "truncated_normal"},
    "mix": {"match": "mix", "init": "orthogonal"},
    "conv": {"match": "conv", "init": "he_normal", "layout": "torch"},
}


@pytest.fixture(scope="module")
def client():
    """Two single-threaded worker processes: chunks are computed and written outside this process."""
    with (
        distributed.LocalCluster(
            n_workers=2, threads_per_worker=1, processes=True, dashboard_address=":0", memory_limit="1GiB"
        ) as cluster,
        distributed.Client(cluster) as connected,
    ):
        connected.wait_for_workers(2)
        yield connected


@pytest.fixture(params=["threads", "cluster"])
def scheduler(request):
    """Runs a test on local threads, then on the cluster."""
    if request.param == "cluster":
        yield request.getfixturevalue("client")
        return
    with dask.config.set(scheduler="threads"):
        yield None


@pytest.fixture(scope="module")
def expected():
    return flatten(initreg.init_tree(SPEC, RULES, seed=3))


def test_chunks_are_independent_tasks_computed_on_the_workers_equal_to_the_in_memory_tree(client, expected):
    tree = init_tree(SPEC, RULES, seed=3, chunks=100)
    assert tree["embed"].numblocks == (10, 1)
    assert tree["mix"].numblocks == (1, 1)  # Orthogonal is made whole
    with distributed.get_task_stream(client) as stream:
        computed = flatten(client.compute(tree, sync=True))
    assert {task["worker"] for task in stream.data} == set(client.scheduler_info()["workers"])
    assert computed.keys() == expected.keys()
    for path, values in computed.items():
        np.testing.assert_array_equal(values, expected[path], err_msg=path)
    block = tree["embed"].blocks[7, 0]
    np.testing.assert_array_equal(block.compute(), expected["embed"][700:800])


def test_zarr_is_written_by_the_workers_and_reads_back_as_the_in_memory_tree(client, expected, tmp_path):
    tree = init_tree(SPEC, RULES, seed=3, chunks="16KiB")
    with distributed.get_task_stream(client) as stream:
        written = to_zarr(tree, tmp_path / "params.zarr")
    assert {task["worker"] for task in stream.data} == set(client.scheduler_info()["workers"])
    assert sorted(os.listdir(tmp_path)) == ["params.zarr"]
    group = zarr.open_group(str(written), mode="r")
    assert sorted(group.array_keys()) == sorted(expected)
    for path, values in expected.items():
        np.testing.assert_array_equal(group[path][...], values, err_msg=path)
    assert group["embed"].chunks == tree["embed"].chunksize


def test_bfloat16_goes_to_safetensors_and_zarr_refuses_it_by_name(client, tmp_path):
    from safetensors.numpy import load_file

    tree = init_tree(SPEC, RULES, seed=0, dtype="bfloat16", chunks=64)
    to_safetensors(tree, tmp_path / "bf16.safetensors")
    loaded = load_file(tmp_path / "bf16.safetensors")
    reference = flatten(initreg.init_tree(SPEC, RULES, seed=0, dtype="bfloat16"))
    for path, values in reference.items():
        assert loaded[path].dtype == values.dtype
        np.testing.assert_array_equal(loaded[path].astype(np.float32), values.astype(np.float32), err_msg=path)
    with pytest.raises(InitregError, match="'embed' is bfloat16"):
        to_zarr(tree, tmp_path / "bf16.zarr")


def _fail():
    raise RuntimeError("chunk failed")


def test_safetensors_written_chunk_by_chunk_is_byte_identical_to_the_in_memory_file(scheduler, expected, tmp_path):
    tree = init_tree(SPEC, RULES, seed=3, chunks=50)
    to_safetensors(tree, tmp_path / "chunked.safetensors", metadata={"seed": "3"})
    save(expected, tmp_path / "whole.safetensors", metadata={"seed": "3"})
    assert (tmp_path / "chunked.safetensors").read_bytes() == (tmp_path / "whole.safetensors").read_bytes()
    assert sorted(os.listdir(tmp_path)) == ["chunked.safetensors", "whole.safetensors"]


def test_a_failed_write_leaves_nothing_behind_and_an_existing_target_is_refused(scheduler, tmp_path):
    broken = {
        "good": da.ones((200, 200), chunks=25),
        "bad": da.from_delayed(dask.delayed(_fail)(), (3,), np.float32),
    }
    for write, name in ((to_safetensors, "out.safetensors"), (to_zarr, "out.zarr")):
        with pytest.raises(RuntimeError, match="chunk failed"):
            write(broken, tmp_path / name)
    assert os.listdir(tmp_path) == []
    (tmp_path / "taken.safetensors").write_bytes(b"keep")
    with pytest.raises(InitregError, match="taken.safetensors"):
        to_safetensors({"good": da.ones(3)}, tmp_path / "taken.safetensors")
    assert (tmp_path / "taken.safetensors").read_bytes() == b"keep"


def test_bad_input_is_refused_by_name(tmp_path):
    with pytest.raises(InitregError, match=r"'blocks\.0\.b'"):
        init_tree(SPEC, RULES, chunks=(100, 10))
    with pytest.raises(InitregError, match="'x' is not one"):
        to_safetensors({"x": np.zeros(3)}, tmp_path / "x.safetensors")
    with pytest.raises(InitregError, match="match no rule"):
        init_tree({"extra": (2, 2), "w": (2, 2)}, {"kernels": {"match": "w", "init": "zeros"}})
    with pytest.raises(InitregError, match="2.5"):
        init_tree(SPEC, RULES, seed=2.5)


FULL_DISK_WRITER = """
import resource, signal, sys
signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a write past the limit fails with EFBIG, as on a full disk
resource.setrlimit(resource.RLIMIT_FSIZE, (1 << 20, 1 << 20))
import dask
from initreg.errors import InitregError
from initreg.interop import dask as initreg_dask

dask.config.set(scheduler="threads")
tree = initreg_dask.init_tree({"w": (1024, 1024)}, {"all": {"match": "*", "init": "he_normal"}}, chunks=(512, 1024))
try:
    getattr(initreg_dask, sys.argv[1])(tree, sys.argv[2])
except InitregError as error:
    print(type(error).__name__, error)
"""


@pytest.mark.parametrize(("writer", "name"), [("to_safetensors", "w.safetensors"), ("to_zarr", "w.zarr")])
def test_a_full_disk_is_an_error_naming_the_target_and_leaves_nothing(tmp_path, writer, name):
    import subprocess
    import sys

    done = subprocess.run(
        [sys.executable, "-c", FULL_DISK_WRITER, writer, str(tmp_path / name)],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr  # not 135 (SIGBUS) and no traceback
    assert done.stdout.startswith(f"WriteError cannot write {str(tmp_path / name)!r}: File too large"), done.stdout
    assert os.listdir(tmp_path) == []


def test_free_space_is_checked_before_writing(tmp_path, monkeypatch):
    import shutil

    usage = shutil.disk_usage(tmp_path)
    monkeypatch.setattr(shutil, "disk_usage", lambda folder: usage._replace(free=1000))
    tree = init_tree({"w": (100, 100)}, {"all": {"match": "*", "init": "zeros"}})
    for write, name in ((to_safetensors, "w.safetensors"), (to_zarr, "w.zarr")):
        with pytest.raises(
            InitregError, match=rf"{name}': it needs 40\d\d\d bytes \(40.\d kB\), .* has 1000 bytes \(1.0 kB\) free"
        ):
            write(tree, tmp_path / name)
    assert os.listdir(tmp_path) == []


SIGNALED_WRITER = """
import sys, time
import dask
import numpy as np
from initreg.interop import dask as initreg_dask

def slow(block):
    sys.stdout.write("writing\\n")  # one write: print's two (text, then newline) interleave across threads
    sys.stdout.flush()
    time.sleep(1)
    return block

dask.config.set(scheduler="threads")
tree = initreg_dask.init_tree({"w": (64, 1024)}, {"all": {"match": "*", "init": "he_normal"}}, chunks=(8, 1024))
slowed = tree["w"].map_blocks(slow, meta=np.empty((0, 0), np.float32))
getattr(initreg_dask, sys.argv[1])({"w": slowed}, sys.argv[2])
"""


@pytest.mark.parametrize("signum", ["SIGTERM", "SIGHUP"])
@pytest.mark.parametrize(("writer", "name"), [("to_safetensors", "w.safetensors"), ("to_zarr", "w.zarr")])
def test_sigterm_and_sighup_while_writing_leave_nothing(tmp_path, writer, name, signum):
    import signal
    import subprocess
    import sys

    process = subprocess.Popen(
        [sys.executable, "-c", SIGNALED_WRITER, writer, str(tmp_path / name)], stdout=subprocess.PIPE, text=True
    )
    assert process.stdout is not None and process.stdout.readline() == "writing\n"
    process.send_signal(getattr(signal, signum))
    assert process.wait(timeout=60) == 128 + getattr(signal, signum)
    assert os.listdir(tmp_path) == []


@pytest.mark.parametrize(("write", "name"), [(to_safetensors, "w.safetensors"), (to_zarr, "w.zarr")])
def test_a_signal_while_the_pool_starts_a_thread_leaves_no_task_running(tmp_path, monkeypatch, write, name):
    """ThreadPoolExecutor.submit records a worker thread only after starting it: SIGTERM's handler raising
    in between must not leave that thread's task running after the write gave up (zarr would remake the
    removed temporary folder for its chunk)."""
    import signal
    import threading
    import time

    from initreg.io import exit_on_signal

    monkeypatch.setattr(os, "cpu_count", lambda: 4)  # the pool starts a second thread
    start = threading.Thread.start
    started: list[threading.Thread] = []
    unrecorded_busy, gave_up = threading.Event(), threading.Event()
    late: list[str] = []

    def start_then_signal(thread: threading.Thread) -> None:
        pooled = threading.current_thread() is threading.main_thread() and thread.name.startswith("ThreadPoolExecutor-")
        if pooled:
            started.append(thread)
        start(thread)
        if pooled and len(started) == 2:
            assert unrecorded_busy.wait(10)
            exit_on_signal(signal.SIGTERM, None)  # before submit records the thread

    def slow(block):
        if len(started) == 2 and threading.current_thread() is started[1]:
            unrecorded_busy.set()
            time.sleep(0.3)
        else:
            unrecorded_busy.wait(10)  # so that the second thread takes the second task
        if gave_up.is_set():
            late.append(threading.current_thread().name)
        return block

    monkeypatch.setattr(threading.Thread, "start", start_then_signal)
    tree = init_tree({"w": (64, 1024)}, {"all": {"match": "*", "init": "he_normal"}}, chunks=(8, 1024))
    slowed = tree["w"].map_blocks(slow, meta=np.empty((0, 0), np.float32))
    with dask.config.set(scheduler="threads"), pytest.raises(SystemExit) as raised:
        write({"w": slowed}, tmp_path / name)
    gave_up.set()
    monkeypatch.undo()
    started[1].join(10)
    assert raised.value.code == 128 + signal.SIGTERM
    assert late == []
    assert os.listdir(tmp_path) == []


@pytest.mark.skipif(os.name != "posix", reason="needs POSIX signals")
def test_a_signal_while_zarr_writes_the_metadata_leaves_nothing(tmp_path, monkeypatch):
    """Zarr writes from its own event loop thread: a signal's handler raising while the main thread waits for
    the group's metadata must not let that write go on after the temporary folder is removed."""
    import asyncio
    import signal
    import threading

    from zarr.storage import LocalStore

    from initreg.io import exit_on_signal

    set_key = LocalStore.set
    signaled: list[str] = []
    written = threading.Event()

    async def set_after_a_signal(store, key, value):
        if not signaled:
            signaled.append(key)
            signal.pthread_kill(threading.main_thread().ident, signal.SIGUSR1)
            await asyncio.sleep(0.3)  # the main thread gives up meanwhile
        await set_key(store, key, value)
        written.set()

    monkeypatch.setattr(LocalStore, "set", set_after_a_signal)
    tree = init_tree({"w": (64, 64)}, {"all": {"match": "*", "init": "he_normal"}})
    previous = signal.signal(signal.SIGUSR1, exit_on_signal)
    try:
        with dask.config.set(scheduler="threads"), pytest.raises(SystemExit):
            to_zarr(tree, tmp_path / "w.zarr")
    finally:
        signal.signal(signal.SIGUSR1, previous)
    assert written.wait(10)
    assert os.listdir(tmp_path) == []


@pytest.mark.skipif(not hasattr(os, "posix_fallocate"), reason="needs posix_fallocate")
def test_the_safetensors_file_is_allocated_before_chunks_are_mapped(tmp_path):
    """A sparse file written through a memory map dies with SIGBUS when the disk fills; an allocated one cannot."""
    from initreg.interop.dask import _allocate

    with open(tmp_path / "f", "wb") as file:
        file.write(b"header")
        _allocate(file.fileno(), 1 << 20)
        status = os.fstat(file.fileno())
    assert status.st_size == 1 << 20
    assert status.st_blocks * 512 >= 1 << 20  # blocks reserved: not a hole
    assert (tmp_path / "f").read_bytes()[:6] == b"header"
