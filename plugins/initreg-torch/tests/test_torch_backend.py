"""The torch backend: found through its entry point, the same stream as NumPy bit for bit, every initializer."""

from __future__ import annotations

import io
import subprocess
import sys
from typing import Any

import numpy as np
import pytest
import torch
from initreg_torch import TorchBackend

import initreg
from initreg import registry, rng
from initreg.distributions import Distribution, NormalDist, TruncatedNormalDist, UniformDist
from initreg.errors import BackendUnavailableError, InvalidArgumentError
from initreg.interop.torch import initialize
from initreg.listing import print_listing

KEY = rng.derive_key(77, "decoder.proj.weight")
DISTRIBUTIONS = [UniformDist(-0.1, 0.3), NormalDist(0.0, 0.02), TruncatedNormalDist(0.0, 1.0), NormalDist(2.0, 0.5)]
DTYPES = ["float16", "bfloat16", "float32", "float64"]
TORCH_DTYPES = {
    "float16": torch.float16,
    "bfloat16": torch.bfloat16,
    "float32": torch.float32,
    "float64": torch.float64,
}
CUDA_REASON = None if torch.cuda.is_available() else "torch sees no CUDA device"


@pytest.fixture(scope="module")
def backend() -> TorchBackend:
    return registry.get_backend("torch")  # type: ignore[return-value]


def bits(array: np.ndarray) -> np.ndarray:
    """The raw bits, so that equality is bit-for-bit (and works for bfloat16)."""
    return array.view(f"u{array.dtype.itemsize}")


def test_the_backends_come_from_the_distribution() -> None:
    assert registry.backends.entry("torch").origin == "initreg-torch"
    assert registry.backends.entry("torch_cuda").origin == "initreg-torch"
    assert isinstance(registry.backends.get("torch"), TorchBackend)


def test_listing_reports_them_without_importing_torch() -> None:
    script = (
        "import io, sys\n"
        "from initreg.listing import print_listing\n"
        "print_listing(io.StringIO())\n"
        "assert 'torch' not in sys.modules, 'listing imported torch'\n"
    )
    subprocess.run([sys.executable, "-c", script], check=True)
    out = io.StringIO()
    print_listing(out)
    rows = {
        line.split()[0]: line.split(maxsplit=2)[1:] for line in out.getvalue().splitlines() if line.startswith("  ")
    }
    assert rows["torch"] == ["initreg-torch", "available"]
    assert rows["torch_cuda"][0] == "initreg-torch"


@pytest.mark.parametrize(("start", "count"), [(0, 1), (3, 10), (5, 4099), (2**33 + 1, 7)])
def test_words_are_bit_identical(backend: TorchBackend, start: int, count: int) -> None:
    words = backend.words(KEY, start, count)
    assert isinstance(words, torch.Tensor) and words.dtype == torch.uint32
    np.testing.assert_array_equal(backend.to_numpy(words), rng.words_range(KEY, start, count, np))


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("dist", DISTRIBUTIONS, ids=repr)
def test_draws_are_bit_identical_to_numpy(backend: TorchBackend, dist: Distribution, dtype: str) -> None:
    shape = (37, 3, 11)
    drawn = backend.draw(dist, KEY, shape, dtype)
    assert isinstance(drawn, torch.Tensor) and drawn.dtype == TORCH_DTYPES[dtype] and drawn.device.type == "cpu"
    assert tuple(drawn.shape) == shape
    expected = registry.get_backend("numpy").draw(dist, KEY, shape, dtype)
    np.testing.assert_array_equal(bits(backend.to_numpy(drawn)), bits(expected))
    index = (slice(2, 30, 4), slice(None), slice(10, 11))
    sliced = backend.draw_slice(dist, KEY, shape, index, dtype)
    np.testing.assert_array_equal(bits(backend.to_numpy(sliced)), bits(expected[index]))


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize(
    ("name", "config", "shape"),
    [
        ("lecun_normal", {"seed": 1}, (64, 32)),
        ("glorot_uniform", {"seed": 2}, (3, 3, 4, 8)),
        ("he_normal", {"seed": 3}, (16,)),
        ("truncated_normal", {"stddev": 0.02, "seed": 4}, (10, 10)),
        ("constant", {"value": [[0.5], [1.5]]}, (2, 3)),
        ("ones", {}, (4,)),
        ("identity", {"gain": 3.0}, (3, 5)),
        ("orthogonal", {"gain": 1.5, "seed": 5}, (20, 12)),
    ],
)
def test_initializers_make_torch_tensors_equal_to_numpys(
    name: str, config: dict[str, Any], shape: tuple[int, ...], dtype: str
) -> None:
    init = initreg.get(name, **config)
    assert isinstance(init, initreg.Initializer)
    made = init(shape, dtype, backend="torch")
    assert isinstance(made, torch.Tensor) and made.dtype == TORCH_DTYPES[dtype] and tuple(made.shape) == shape
    expected = init(shape, dtype)
    as_numpy = registry.get_backend("torch").to_numpy(made)
    if name == "orthogonal":  # torch's QR (LAPACK through torch) against NumPy's: equal as numbers
        atol = {"float16": 4e-3, "bfloat16": 3e-2, "float32": 1e-5, "float64": 1e-12}[dtype]
        np.testing.assert_allclose(as_numpy.astype(np.float64), expected.astype(np.float64), atol=atol)
    else:
        np.testing.assert_array_equal(bits(as_numpy), bits(expected))


def test_creation_functions_and_results_go_to_the_backends_device() -> None:
    """On the "meta" device (shapes without storage), every array an initializer makes lands there."""
    meta = TorchBackend("torch_meta", "meta")
    for name, config in [("lecun_normal", {"seed": 0}), ("constant", {"value": 2.0}), ("identity", {})]:
        made = initreg.get(name, **config)((4, 4), backend=meta)
        assert made.device.type == "meta" and made.dtype == torch.float32


def test_bad_dtypes_and_missing_cuda_are_initreg_errors(backend: TorchBackend) -> None:
    with pytest.raises(InvalidArgumentError, match="'int8'"):
        backend.dtype("int8")
    if CUDA_REASON is not None:
        with pytest.raises(BackendUnavailableError, match="'torch_cuda' is unavailable"):
            initreg.LecunNormal(seed=0)((2, 2), backend="torch_cuda")


MAX_ULPS = 4  # in ulps of max(|value|, the distribution's std): docs/stream.md, "Reference and fast paths"


def assert_within_the_ulp_bound(actual: np.ndarray, expected: np.ndarray, dist: Distribution) -> None:
    """Uniform samples bit for bit (no libm call); the rest within MAX_ULPS of max(|expected|, std)."""
    assert actual.dtype == expected.dtype and actual.shape == expected.shape
    if isinstance(dist, UniformDist):
        np.testing.assert_array_equal(bits(actual), bits(expected))
        return
    magnitude = np.maximum(np.abs(expected), np.asarray(dist.std, dtype=expected.dtype))
    assert float((np.abs(actual.astype(np.float64) - expected) / np.spacing(magnitude)).max()) <= MAX_ULPS
    assert np.mean(actual == expected) > 0.9  # the same stream, not merely close


def test_the_backends_draw_where_their_tensors_live() -> None:
    assert not registry.get_backend("torch").stream_on_device  # type: ignore[attr-defined]
    assert registry.backends.get("torch_cuda").stream_on_device  # type: ignore[attr-defined]
    assert TorchBackend("torch_meta", "meta").stream_on_device
    assert not TorchBackend("torch_cpu", "cpu", stream_on_device=False).stream_on_device


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("dist", DISTRIBUTIONS, ids=repr)
def test_the_stream_on_the_device_gives_numpys_words_and_samples_within_the_bound(
    dist: Distribution, dtype: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The device path, run on the CPU: the reference on torch tensors, never through NumPy."""
    on_device = TorchBackend("torch_stream_on_cpu", "cpu", stream_on_device=True)
    numpy = registry.get_backend("numpy")
    shape, index = (37, 3, 111), (slice(2, 30, 4), slice(None), slice(10, 101))
    expected, expected_words = numpy.draw(dist, KEY, shape, dtype), numpy.words(KEY, 2**33 + 1, 4099)

    def refused(*arguments: Any) -> None:
        raise AssertionError("drawn through NumPy")

    monkeypatch.setattr(TorchBackend, "_from_numpy", refused)
    drawn, sliced = on_device.draw(dist, KEY, shape, dtype), on_device.draw_slice(dist, KEY, shape, index, dtype)
    words = on_device.words(KEY, 2**33 + 1, 4099)
    assert drawn.dtype == TORCH_DTYPES[dtype] and sliced.dtype == TORCH_DTYPES[dtype] and words.dtype == torch.uint32
    np.testing.assert_array_equal(on_device.to_numpy(words), expected_words)
    assert_within_the_ulp_bound(on_device.to_numpy(drawn), expected, dist)
    assert_within_the_ulp_bound(on_device.to_numpy(sliced), expected[index], dist)


@pytest.mark.skipif(CUDA_REASON is not None, reason=f"torch_cuda unavailable: {CUDA_REASON}")
def test_cuda_tensors_equal_the_cpu_ones_within_the_bound() -> None:
    for dist in DISTRIBUTIONS:
        for dtype in ("float32", "float64"):
            on_gpu = registry.get_backend("torch_cuda").draw(dist, KEY, (128, 640), dtype)
            assert on_gpu.device.type == "cuda"
            expected = registry.get_backend("numpy").draw(dist, KEY, (128, 640), dtype)
            assert_within_the_ulp_bound(on_gpu.cpu().numpy(), expected, dist)
    eye = initreg.Identity()((3, 3), backend="torch_cuda")
    assert eye.device.type == "cuda"


def test_a_constant_that_does_not_broadcast_is_an_initreg_error() -> None:
    with pytest.raises(InvalidArgumentError, match="does not broadcast"):
        initreg.Constant([1.0, 2.0, 3.0])((2, 2), backend="torch")


def test_sparse_through_initialize_on_the_torch_backend_equals_numpys() -> None:
    """Sparse ranks its rows by words of stream 1 drawn with the reference on the torch namespace, which
    once shifted uint64 tensors: '"rshift_cpu" not implemented for 'UInt64''."""
    pytest.importorskip("initreg_extra")
    rules = {"w": {"match": "weight", "init": "sparse"}}
    on_torch, on_numpy = torch.nn.Linear(30, 40, bias=False), torch.nn.Linear(30, 40, bias=False)
    initialize(on_torch, rules, seed=3, backend="torch")
    initialize(on_numpy, rules, seed=3, backend="numpy")
    assert torch.equal(on_torch.weight, on_numpy.weight)
    zeros_per_column = (on_torch.weight == 0).sum(dim=0)
    assert zeros_per_column.tolist() == [4] * 30  # ceil(0.1 * 40) in every column, as torch's sparse_
