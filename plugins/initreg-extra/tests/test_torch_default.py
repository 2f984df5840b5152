"""TorchDefault against torch.nn.Linear / nn.ConvNd's own default initialization."""

from __future__ import annotations

import math

import numpy as np
import pytest
from initreg_extra import TorchDefault

import initreg
from initreg.errors import InvalidArgumentError

torch = pytest.importorskip("torch")
LAYERS = [
    lambda: torch.nn.Linear(37, 11),
    lambda: torch.nn.Conv1d(4, 9, 5),
    lambda: torch.nn.Conv2d(6, 10, (3, 5)),
    lambda: torch.nn.Conv2d(6, 10, 3, groups=2),
    lambda: torch.nn.Conv3d(2, 3, (2, 3, 4)),
    lambda: torch.nn.ConvTranspose2d(5, 7, 3),
]


def torch_bound(weight: torch.Tensor) -> float:
    """The bound PyTorch itself uses: kaiming_uniform_ with a=sqrt(5), from its own fan computation."""
    fan_in, _ = torch.nn.init._calculate_fan_in_and_fan_out(weight)
    return torch.nn.init.calculate_gain("leaky_relu", math.sqrt(5)) * math.sqrt(3.0 / fan_in)


@pytest.mark.parametrize("make_layer", LAYERS, ids=lambda make: repr(make()))
def test_weight_and_bias_bounds_are_torchs(make_layer) -> None:  # type: ignore[no-untyped-def]
    layer = make_layer()
    shape = tuple(layer.weight.shape)
    bound = torch_bound(layer.weight)
    assert math.isclose(TorchDefault().bound(shape), bound, rel_tol=1e-12)
    weight = TorchDefault(seed=1)(shape)
    assert weight.shape == shape and np.abs(weight).max() <= bound
    assert float(layer.weight.detach().abs().max()) <= bound
    fan_in = torch.nn.init._calculate_fan_in_and_fan_out(layer.weight)[0]
    bias = TorchDefault(fan_in=fan_in, seed=2)(tuple(layer.bias.shape))
    assert math.isclose(TorchDefault(fan_in=fan_in).bound(bias.shape), 1 / math.sqrt(fan_in), rel_tol=1e-12)
    assert float(layer.bias.detach().abs().max()) <= 1 / math.sqrt(fan_in) and np.abs(bias).max() <= 1 / math.sqrt(
        fan_in
    )


def test_same_distribution_as_torch() -> None:
    """A two-sample Kolmogorov-Smirnov test between torch's Linear weights and ours (2^17 samples each)."""
    stats = pytest.importorskip("scipy.stats")
    torch.manual_seed(0)
    theirs = torch.nn.Linear(512, 256).weight.detach().numpy().ravel()
    ours = TorchDefault(seed=0)((256, 512)).ravel()
    assert stats.ks_2samp(theirs, ours).pvalue > 1e-3
    assert math.isclose(float(ours.std()), TorchDefault().target_std((256, 512)), rel_tol=0.01)
    assert math.isclose(TorchDefault().target_std((256, 512)), 1 / math.sqrt(3 * 512), rel_tol=1e-12)


def test_other_layouts_and_explicit_fans() -> None:
    assert TorchDefault().bound((37, 11), layout="keras") == TorchDefault().bound((11, 37))
    assert TorchDefault(fan_in=100).bound((3, 3, 3, 3)) == 0.1
    for bad in (0, -3, 2.5, True, "8"):
        with pytest.raises(InvalidArgumentError, match="fan_in"):
            TorchDefault(fan_in=bad)  # type: ignore[arg-type]


def test_usable_by_name_with_a_config() -> None:
    made = initreg.get("torch_default", fan_in=16, seed=3)((10,))
    np.testing.assert_array_equal(made, TorchDefault(fan_in=16, seed=3)((10,)))
    assert np.abs(made).max() <= 0.25
