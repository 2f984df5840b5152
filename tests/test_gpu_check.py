"""bench/gpu_check.py without a GPU: its --device cpu run, as a user starts it, passes every check and names each;
its file comparison fails, naming the tensor, on a file changed beyond what the stream's contract allows; and
on a machine without a GPU its default run fails loudly instead of skipping."""

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("torch")
pytest.importorskip("transformers")
pytest.importorskip("initreg_torch")
safetensors_numpy = pytest.importorskip("safetensors.numpy")
from safetensors import safe_open  # noqa: E402

from initreg.backends.cupy import backend as cupy_backend  # noqa: E402

SCRIPT = Path(__file__).resolve().parents[1] / "bench" / "gpu_check.py"
ON_CPU = ["--device", "cpu", "--model", "mlp", "--layers", "0"]
GPT2_TINY_PARAMETERS = 2 + 2 * 12 + 2  # embeddings, 12 per block, the final norm


def run_script(*arguments: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, str(SCRIPT), *arguments], capture_output=True, text=True, timeout=900, cwd=cwd
    )


@pytest.fixture(scope="module")
def cpu_run(tmp_path_factory):
    """The --device cpu run (its output) and the folder holding the command's two files."""
    parent = tmp_path_factory.mktemp("gpu_check")
    done = run_script(*ON_CPU, "--torch-model", "gpt2_tiny", "--dir", str(parent), "--keep", cwd=parent)
    (folder,) = [path for path in parent.iterdir() if path.is_dir()]
    return done, folder


def test_the_cpu_run_passes_every_check_and_names_each(cpu_run):
    done, folder = cpu_run
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    lines = done.stdout.splitlines()
    assert lines[-1].startswith("0 checks failed")
    assert not [line for line in lines if line.startswith("FAIL")]
    passed = [line for line in lines if line.startswith("PASS")]
    expected = {
        "dense_0.bias": "bit for bit",  # zeros
        "dense_1.kernel": "bit for bit",  # glorot_uniform
        "dense_0.kernel": "within 4 ulps",  # lecun_normal: truncated normal, through erfinv
        "dense_2.kernel": "within 4 ulps",  # random_normal
    }
    for name, how in expected.items():
        assert any(f"file tensor {name} {how}" in line for line in passed), name
    assert sum(" file tensor " in line for line in passed) == 6
    assert any("the device path draws nothing through NumPy" in line for line in passed)
    compared = [line for line in passed if line.startswith("PASS  torch gpt2_tiny") and "equals the CPU values" in line]
    assert len(compared) == GPT2_TINY_PARAMETERS
    assert sorted(path.name for path in folder.glob("mlp_*.safetensors")) == [
        "mlp_cpu_numpy.safetensors",
        "mlp_device_numpy.safetensors",
    ]


def changed_copy(folder: Path, target: Path, name: str, change, metadata_change=None) -> Path:
    """The device file with tensor `name` replaced by change(its values) (and its metadata changed)."""
    with safe_open(str(folder / "mlp_device_numpy.safetensors"), framework="numpy") as file:
        names = list(file.keys())
        tensors = {key: file.get_tensor(key) for key in names}
        metadata = dict(file.metadata())
    if name:
        tensors[name] = change(tensors[name].copy())
    if metadata_change:
        metadata["initreg"] = metadata_change(metadata["initreg"])
    safetensors_numpy.save_file(tensors, str(target), metadata=metadata)
    return target


def by_ulps(count: int):
    """Moves element 7 by `count` ulps of the tensor's std (so the change is `count` ulps at scale)."""

    def change(values: np.ndarray) -> np.ndarray:
        flat = values.reshape(-1)
        step = np.spacing(np.maximum(np.abs(flat[7]), np.float32(np.std(values, dtype=np.float64))))
        flat[7] = flat[7] + count * step
        return values

    return change


@pytest.mark.parametrize(
    ("name", "change", "failed"),
    [
        ("dense_1.kernel", lambda values: np.nextafter(values, np.float32(1), dtype=np.float32), "dense_1.kernel"),
        ("dense_0.bias", lambda values: values + np.float32(1e-30), "dense_0.bias"),
        ("dense_2.kernel", by_ulps(16), "dense_2.kernel"),
        ("dense_0.kernel", by_ulps(-16), "dense_0.kernel"),
        ("dense_2.kernel", by_ulps(2), None),  # within the bound: samples through erfinv need not be bit for bit
        ("", None, None),  # an unchanged copy
    ],
    ids=[
        "uniform by one ulp",
        "zeros made nonzero",
        "normal by 16 ulps",
        "truncated by 16 ulps",
        "normal by 2",
        "same",
    ],
)
def test_the_file_comparison_fails_naming_the_tensor_changed_beyond_the_contract(
    cpu_run, tmp_path, name, change, failed
):
    _, folder = cpu_run
    other = changed_copy(folder, tmp_path / "other.safetensors", name, change)
    done = run_script(*ON_CPU, "--compare", str(folder / "mlp_cpu_numpy.safetensors"), str(other), cwd=tmp_path)
    failures = [line for line in done.stdout.splitlines() if line.startswith("FAIL")]
    if failed is None:
        assert done.returncode == 0 and not failures, done.stdout + done.stderr
    else:
        assert done.returncode == 1, done.stdout + done.stderr
        assert len(failures) == 1 and f"file tensor {failed} " in failures[0], failures
        assert done.stdout.splitlines()[-1].startswith("1 checks failed")


def test_files_of_runs_with_different_settings_are_refused(cpu_run, tmp_path):
    _, folder = cpu_run
    other = changed_copy(
        folder, tmp_path / "other.safetensors", "", None, lambda made: made.replace('"seed": 5', '"seed": 6')
    )
    done = run_script(*ON_CPU, "--compare", str(folder / "mlp_cpu_numpy.safetensors"), str(other), cwd=tmp_path)
    assert done.returncode == 1
    assert (
        "FAIL  backend=numpy against numpy: file settings and tensor names agree settings differing: ['seed']"
        in done.stdout
    )


@pytest.mark.skipif(cupy_backend.unavailable_reason() is None, reason="the cupy backend is available here")
def test_without_a_gpu_the_default_run_fails_loudly(tmp_path):
    done = run_script(cwd=tmp_path)
    assert done.returncode == 1
    assert "FAIL  the cupy backend is available" in done.stdout
    assert cupy_backend.unavailable_reason() in done.stdout
    assert done.stdout.splitlines()[-1].startswith("1 checks failed: the cupy backend is available")


def test_a_file_that_cannot_be_read_is_a_failed_check(cpu_run, tmp_path):
    _, folder = cpu_run
    (tmp_path / "truncated.safetensors").write_bytes((folder / "mlp_device_numpy.safetensors").read_bytes()[:100])
    for other in ("missing.safetensors", "truncated.safetensors"):
        done = run_script(*ON_CPU, "--compare", str(folder / "mlp_cpu_numpy.safetensors"), other, cwd=tmp_path)
        assert done.returncode == 1, other
        assert done.stdout.startswith("FAIL  the comparison runs "), done.stdout + done.stderr
