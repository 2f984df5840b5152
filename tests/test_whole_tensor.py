"""Whole-tensor initializers: declared by the class, made once and sliced by every caller that makes pieces.

delta_orthogonal (a shipped plugin) and a third-party initializer that declares nothing are streamed in
chunks, sliced and made on Dask without a traceback, each equal to the whole tensor made in one call.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from initreg_extra import DeltaOrthogonal, Sparse
from safetensors.numpy import load_file

import initreg
from initreg.initializers import ElementwiseInitializer, Initializer, RandomInitializer
from initreg.initializers.overlay import Overlay, Part

INITREG = shutil.which("initreg", path=str(Path(sys.executable).parent))
CONVNET_RULES = ["model=convnet", "init=delta_orthogonal", "rules.weights.match=conv*.kernel"]
DENSE_RULE = '+rules.dense={match:"dense.kernel",init:glorot_uniform}'
KERNEL = (3, 3, 64, 128)  # conv_2.kernel of the convnet model: 294,912 bytes in float32


class CumulativeSum(Initializer):
    """A third-party whole-tensor initializer that declares nothing: element i is the sum of the first i
    of a fixed draw, divided by the total, so that it depends on the whole tensor. Counts what it makes."""

    def __init__(self) -> None:
        self.wholes = 0
        self.slices = 0

    def generate(self, shape: Any, dtype: str, *, key: Any, backend: Any, layout: str | None = None) -> Any:
        self.wholes += 1
        draws = np.random.default_rng(list(key)).uniform(size=int(np.prod(shape)))
        total = np.cumsum(draws)
        return (total / total[-1]).reshape(shape).astype(dtype)

    def generate_slice(self, *args: Any, **kwargs: Any) -> Any:
        self.slices += 1
        return super().generate_slice(*args, **kwargs)


class Box(RandomInitializer):
    """A third-party random initializer written to the old contract: distribution_for only, no declaration."""

    def distribution_for(self, shape: Any, layout: str | None = None) -> Any:
        return initreg.distributions.UniformDist(-1.0, 1.0)


def run_command(cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    assert INITREG is not None, "the initreg console script is not installed next to the interpreter"
    return subprocess.run([INITREG, *args], cwd=cwd, capture_output=True, text=True, timeout=180)


def test_delta_orthogonal_is_streamed_in_chunks_by_the_command(tmp_path: Path) -> None:
    chunked = run_command(tmp_path, *CONVNET_RULES, DENSE_RULE, "chunk_mb=0.01", "output=chunked.safetensors")
    assert chunked.returncode == 0, chunked.stderr
    assert "Traceback" not in chunked.stderr
    whole = run_command(tmp_path, *CONVNET_RULES, DENSE_RULE, "output=whole.safetensors")
    assert whole.returncode == 0, whole.stderr
    assert (tmp_path / "chunked.safetensors").read_bytes() == (tmp_path / "whole.safetensors").read_bytes()
    kernel = load_file(tmp_path / "chunked.safetensors")["conv_2.kernel"].astype(np.float64)
    assert kernel.shape == KERNEL
    centre = kernel[1, 1]
    np.testing.assert_allclose(centre @ centre.T, np.eye(64), atol=1e-5)  # Q Q^T = I: in=64 <= out=128
    assert not np.delete(kernel.reshape(9, 64, 128), 4, axis=0).any()


def test_delta_orthogonal_is_streamed_once_and_saved_equal_to_the_in_memory_tree(tmp_path: Path) -> None:
    rules = {"conv": {"match": "kernel", "init": "delta_orthogonal"}}
    expected = initreg.init_tree({"kernel": KERNEL}, rules, seed=3)["kernel"]
    path = initreg.save_tree({"kernel": KERNEL}, rules, tmp_path / "p.safetensors", seed=3, chunk_bytes=10_000)
    np.testing.assert_array_equal(load_file(path)["kernel"], expected)


@pytest.mark.parametrize(
    "index", [(1, 1), (slice(0, 2), slice(None), slice(10, 20)), (Ellipsis, slice(None, None, -3))]
)
def test_a_slice_of_delta_orthogonal_is_that_slice_of_the_whole(index: Any) -> None:
    whole = initreg.init_slice(DeltaOrthogonal(), KERNEL, (), seed=5, path="conv_2.kernel")
    part = initreg.init_slice(DeltaOrthogonal(), KERNEL, index, seed=5, path="conv_2.kernel")
    np.testing.assert_array_equal(part, whole[index])
    assert np.abs(whole).max() > 0


def test_delta_orthogonal_on_dask_is_one_task_equal_to_the_whole() -> None:
    pytest.importorskip("dask")
    from initreg.interop import dask as initreg_dask

    spec = {"conv": {"kernel": KERNEL}, "dense": {"kernel": (64, 32)}}
    rules = {
        "conv": {"match": "conv.kernel", "init": "delta_orthogonal"},
        "dense": {"match": "dense.*", "init": "he_normal"},
    }
    lazy = initreg_dask.init_tree(spec, rules, seed=2, chunks=16)
    assert lazy["conv"]["kernel"].npartitions == 1
    assert lazy["dense"]["kernel"].npartitions > 1  # an element-wise one is still made chunk by chunk
    expected = initreg.init_tree(spec, rules, seed=2)
    for name in ("conv", "dense"):
        np.testing.assert_array_equal(lazy[name]["kernel"].compute(scheduler="synchronous"), expected[name]["kernel"])


def test_a_third_party_whole_tensor_initializer_is_made_once_and_sliced(tmp_path: Path) -> None:
    shape = (40, 25)
    init = CumulativeSum()
    expected = initreg.init_slice(init, shape, (), seed=1, path="w")
    assert init.wholes == 1
    np.testing.assert_array_equal(initreg.init_slice(init, shape, (slice(3, 9), 7), seed=1, path="w"), expected[3:9, 7])
    assert init.wholes == 2

    init = CumulativeSum()
    path = initreg.save_tree({"w": shape}, {"w": {"match": "w", "init": init}}, tmp_path / "w.safetensors", seed=1,
                             chunk_bytes=64)  # fmt: skip
    assert (init.wholes, init.slices) == (1, 0)  # made once, not once per 64-byte piece
    np.testing.assert_array_equal(load_file(path)["w"], expected)


def test_a_third_party_whole_tensor_initializer_on_dask_is_one_task() -> None:
    pytest.importorskip("dask")
    from initreg.interop import dask as initreg_dask

    init = CumulativeSum()
    lazy = initreg_dask.init_tree({"w": (40, 25)}, {"w": {"match": "w", "init": init}}, seed=1, chunks=(4, 5))
    assert lazy["w"].npartitions == 1
    np.testing.assert_array_equal(
        lazy["w"].compute(scheduler="synchronous"), initreg.init_slice(CumulativeSum(), (40, 25), (), seed=1, path="w")
    )


def test_a_random_initializer_that_declares_nothing_is_drawn_whole_and_sliced(tmp_path: Path) -> None:
    shape = (30, 20)
    whole = initreg.init_slice(Box(), shape, (), seed=4, path="b")
    assert -1 <= whole.min() < -0.9 and 0.9 < whole.max() < 1
    np.testing.assert_array_equal(initreg.init_slice(Box(), shape, (slice(5, 6),), seed=4, path="b"), whole[5:6])
    path = initreg.save_tree({"b": shape}, {"b": {"match": "b", "init": Box()}}, tmp_path / "b.safetensors", seed=4,
                             chunk_bytes=64)  # fmt: skip
    np.testing.assert_array_equal(load_file(path)["b"], whole)


def test_the_capability_is_declared_by_each_class() -> None:
    assert not Initializer.slices_independently and not RandomInitializer.slices_independently
    assert ElementwiseInitializer.slices_independently
    assert not CumulativeSum.slices_independently and not Box.slices_independently
    assert not DeltaOrthogonal.slices_independently and not Sparse.slices_independently
    assert initreg.get("torch_default").slices_independently and initreg.get("kaiming_uniform").slices_independently
    assert not initreg.get("dirac").slices_independently and not initreg.get("stft").slices_independently


def test_an_overlay_slices_independently_only_if_every_part_does() -> None:
    row = (slice(0, 1, 1), slice(0, 8, 1))
    assert Overlay(initreg.GlorotUniform(), [Part(row, initreg.Zeros())]).slices_independently
    assert not Overlay(initreg.GlorotUniform(), [Part(row, initreg.Orthogonal())]).slices_independently
    assert not Overlay(initreg.Orthogonal(), [Part(row, initreg.Zeros())]).slices_independently


def test_an_orthogonal_tensor_with_zeroed_rows_states_the_std_of_the_mixture() -> None:
    rules = {"q": {"match": "w", "init": "orthogonal"}, "rows": {"match": "w", "index": "[0:16]", "init": "zeros"}}
    (entry,) = initreg.plan({"w": (64, 64)}, rules)
    values = initreg.init_tree({"w": (64, 64)}, rules, seed=0)["w"].astype(np.float64)
    # the 48 rows of Q left are unit vectors: a square sum of exactly 48 over 4096 elements
    assert entry.target_std == pytest.approx(np.sqrt(48 / 4096), rel=1e-12)
    assert values.std() == pytest.approx(entry.target_std, rel=0.01)


def test_fans_and_moments_are_methods_of_the_initializer() -> None:
    shape = (3, 3, 16, 32)
    assert initreg.Orthogonal().fans(shape) == (144, 288)
    assert initreg.Orthogonal().fans((32, 16, 3, 3), "torch") == (144, 288)
    assert initreg.VarianceScaling(input_axes=[2], output_axes=[3]).fans(shape) == (16, 32)
    overlay = Overlay(initreg.VarianceScaling(input_axes=[2], output_axes=[3]), [])
    assert overlay.fans(shape) == (16, 32)
    assert initreg.RandomUniform(0.0, 2.0).moments(shape) == (1.0, pytest.approx(2 / np.sqrt(12)))
    assert initreg.Identity(gain=2.0).moments((4, 8)) == (2.0 * 4 / 32, pytest.approx(2.0 * np.sqrt(1 / 8 * 7 / 8)))
    assert CumulativeSum().moments(shape) is None
    assert np.isnan(CumulativeSum().target_std(shape))


def test_a_torch_distributed_shard_of_a_whole_tensor_initializer_is_cut_from_one_whole_draw() -> None:
    pytest.importorskip("torch")
    import torch

    from initreg.interop.torch_distributed import shard_pieces

    init = CumulativeSum()
    (entry,) = initreg.plan({"w": (40, 25)}, {"w": {"match": "w", "init": init}})
    indices = [list(range(10, 30)), [*range(0, 5), *range(12, 25)]]  # two runs on the second axis
    local = torch.zeros((20, 18), dtype=torch.float32)
    for view, values in shard_pieces(entry, local, indices, seed=6, backend=None, chunk_bytes=64):
        view.copy_(torch.from_numpy(np.asarray(values)))
    assert (init.wholes, init.slices) == (1, 0)
    whole = initreg.init_slice(CumulativeSum(), (40, 25), (), seed=6, path="w")
    np.testing.assert_array_equal(local.numpy(), whole[np.ix_(*indices)])
