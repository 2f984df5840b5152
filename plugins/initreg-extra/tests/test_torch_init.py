"""torch.nn.init's own initializers (gains, kaiming, xavier, trunc_normal, dirac, sparse) against torch itself."""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest
from initreg_extra import Dirac, KaimingNormal, Sparse, TruncNormal, calculate_gain

import initreg
from initreg.errors import InvalidArgumentError

torch = pytest.importorskip("torch")
stats = pytest.importorskip("scipy.stats")

GAIN_CASES = [
    ("linear", None), ("conv1d", None), ("conv2d", None), ("conv3d", None), ("conv_transpose1d", None),
    ("conv_transpose2d", None), ("conv_transpose3d", None), ("sigmoid", None), ("tanh", None), ("relu", None),
    ("leaky_relu", None), ("leaky_relu", 0.2), ("leaky_relu", 0), ("leaky_relu", 3), ("selu", None),
]  # fmt: skip


@pytest.mark.parametrize(("nonlinearity", "param"), GAIN_CASES)
def test_gains_are_torchs_exactly(nonlinearity: str, param: float | None) -> None:
    assert calculate_gain(nonlinearity, param) == torch.nn.init.calculate_gain(nonlinearity, param)


def test_bad_gain_arguments_are_clear_errors() -> None:
    with pytest.raises(InvalidArgumentError, match="Unsupported nonlinearity 'gelu'; valid: 'linear'"):
        calculate_gain("gelu")
    with pytest.raises(InvalidArgumentError, match="negative_slope True is not a valid number"):
        calculate_gain("leaky_relu", True)  # type: ignore[arg-type]


def _torch_values(function, shape, **arguments) -> np.ndarray:  # type: ignore[no-untyped-def]
    torch.manual_seed(0)
    return function(torch.empty(shape, dtype=torch.float64), **arguments).numpy().ravel()


KAIMING_XAVIER = [
    ("kaiming_normal", torch.nn.init.kaiming_normal_, {}),
    ("kaiming_normal", torch.nn.init.kaiming_normal_, {"a": 0.1, "mode": "fan_out", "nonlinearity": "leaky_relu"}),
    ("kaiming_uniform", torch.nn.init.kaiming_uniform_, {"nonlinearity": "relu"}),
    ("kaiming_uniform", torch.nn.init.kaiming_uniform_, {"a": math.sqrt(5)}),
    ("xavier_normal", torch.nn.init.xavier_normal_, {"gain": 5 / 3}),
    ("xavier_uniform", torch.nn.init.xavier_uniform_, {}),
]


@pytest.mark.parametrize(("name", "function", "arguments"), KAIMING_XAVIER)
@pytest.mark.parametrize("shape", [(128, 64, 3, 3), (300, 200)], ids=str)
def test_kaiming_and_xavier_draw_torchs_distribution_in_the_torch_layout(name, function, arguments, shape) -> None:  # type: ignore[no-untyped-def]
    init = initreg.get(name, seed=1, **arguments)
    theirs = _torch_values(function, shape, **arguments)
    ours = np.asarray(init(shape, dtype="float64")).ravel()
    assert stats.ks_2samp(ours, theirs).pvalue > 1e-3
    assert init.target_std(shape) == pytest.approx(float(theirs.std()), rel=0.01)
    if "uniform" in name:
        assert np.abs(ours).max() <= np.abs(theirs).max() * 1.001 and np.abs(ours).max() > 0.999 * np.abs(theirs).max()


def test_kaiming_std_is_torchs_formula_and_the_keras_layout_can_be_asked_for() -> None:
    init = KaimingNormal(a=0.2, mode="fan_out", seed=0)
    gain = torch.nn.init.calculate_gain("leaky_relu", 0.2)
    assert init.target_std((16, 8, 3, 3)) == pytest.approx(gain / math.sqrt(16 * 9), rel=1e-15)
    assert init.target_std((3, 3, 8, 16), layout="keras") == pytest.approx(gain / math.sqrt(16 * 9), rel=1e-15)


@pytest.mark.parametrize("name", ["kaiming_normal", "kaiming_uniform", "xavier_normal", "xavier_uniform"])
def test_fan_based_torch_initializers_refuse_rank_below_two_as_torch_does(name: str) -> None:
    with pytest.raises(ValueError, match="fewer than 2 dimensions"):
        getattr(torch.nn.init, f"{name}_")(torch.empty(5))
    with pytest.raises(InvalidArgumentError, match=r"fewer than 2 dimensions.*shape=\(5,\)"):
        initreg.get(name)((5,))


def test_strict_fans_is_optional_on_the_keras_family() -> None:
    assert initreg.HeNormal(seed=0)((5,)).shape == (5,)  # Keras's rule: (n, n)
    strict = initreg.HeNormal(seed=0, strict_fans=True)
    with pytest.raises(InvalidArgumentError, match="strict_fans=True"):
        strict((5,))
    with pytest.raises(InvalidArgumentError, match=r"received shape=\(\) of rank 0"):
        initreg.VarianceScaling(strict_fans=True)(())
    assert strict.get_config()["strict_fans"] is True and "strict_fans" not in initreg.HeNormal().get_config()
    assert initreg.deserialize(initreg.serialize(strict)) == strict
    with pytest.raises(InvalidArgumentError, match="`strict_fans` must be True or False"):
        initreg.VarianceScaling(strict_fans=1)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("arguments", "shape"),
    [
        ({}, (200_000,)),
        ({"mean": 0.5, "std": 2.0, "a": -1.0, "b": 3.0}, (400, 500)),
        ({"a": -0.5, "b": 0.25}, (50_000,)),
    ],
)
def test_trunc_normal_is_torchs_with_its_defaults(arguments: dict[str, float], shape: tuple[int, ...]) -> None:
    full = {"mean": 0.0, "std": 1.0, "a": -2.0, "b": 2.0, **arguments}
    init = initreg.get("trunc_normal", seed=4, **arguments)
    assert init.get_config() == {**full, "seed": 4}
    ours = np.asarray(init(shape, dtype="float64")).ravel()
    theirs = _torch_values(torch.nn.init.trunc_normal_, shape, **arguments)
    assert ours.min() >= full["a"] and ours.max() <= full["b"]
    assert theirs.min() >= full["a"] and theirs.max() <= full["b"]
    assert stats.ks_2samp(ours, theirs).pvalue > 1e-3
    exact = stats.truncnorm((full["a"] - full["mean"]) / full["std"], (full["b"] - full["mean"]) / full["std"],
                            loc=full["mean"], scale=full["std"])  # fmt: skip
    assert stats.kstest(ours, exact.cdf).pvalue > 1e-3
    assert init.target_std(shape) == pytest.approx(float(exact.std()), rel=1e-12)
    assert TruncNormal.from_config(init.get_config()) == init


@pytest.mark.parametrize(
    ("shape", "groups"), [((6, 4, 3), 1), ((8, 8, 3, 3), 1), ((8, 3, 4, 4), 2), ((6, 4, 3, 5, 2), 3), ((4, 6, 2, 2), 1)]
)
def test_dirac_is_torchs_exactly(shape: tuple[int, ...], groups: int) -> None:
    theirs = torch.nn.init.dirac_(torch.empty(shape, dtype=torch.float64), groups=groups).numpy()
    init = initreg.get("dirac", groups=groups)
    np.testing.assert_array_equal(init(shape, dtype="float64", layout="torch"), theirs)
    np.testing.assert_array_equal(init(shape, dtype="float64"), theirs)  # torch's layout by default
    keras_shape = (*shape[2:], shape[1], shape[0])
    np.testing.assert_array_equal(
        init(keras_shape, layout="keras"), np.transpose(theirs, (*range(2, len(shape)), 1, 0))
    )
    assert init.target_std(shape) == pytest.approx(float(theirs.std()), rel=1e-12)


def test_dirac_makes_a_convolution_the_identity() -> None:
    conv = torch.nn.Conv2d(5, 5, 3, padding=1, bias=False)
    with torch.no_grad():
        conv.weight.copy_(torch.from_numpy(np.asarray(Dirac()((5, 5, 3, 3)))))
    image = torch.randn(1, 5, 7, 7)
    torch.testing.assert_close(conv(image), image)


def test_dirac_refuses_what_torch_refuses() -> None:
    for shape, groups, message in [((4, 4), 1, "3, 4 or 5 dimensions"), ((5, 4, 3), 2, "divisible by groups")]:
        with pytest.raises(ValueError):
            torch.nn.init.dirac_(torch.empty(shape), groups=groups)
        with pytest.raises(InvalidArgumentError, match=message):
            Dirac(groups)(shape)
    with pytest.raises(InvalidArgumentError, match="`groups` must be a positive integer"):
        Dirac(0)


@pytest.mark.parametrize(("sparsity", "shape"), [(0.1, (200, 300)), (0.75, (64, 500)), (0.0, (10, 10)), (1.0, (7, 3))])
def test_sparse_has_torchs_structure_and_distribution(sparsity: float, shape: tuple[int, int]) -> None:
    rows = shape[0]
    zeros = math.ceil(sparsity * rows)
    theirs = torch.nn.init.sparse_(torch.empty(shape, dtype=torch.float64), sparsity, std=0.02).numpy()
    ours = np.asarray(Sparse(sparsity, 0.02, seed=5)(shape, dtype="float64"))
    for values in (theirs, ours):
        assert ((values == 0).sum(axis=0) == zeros).all()  # exactly ceil(sparsity rows) zeros per column
    if zeros < rows:
        assert stats.ks_2samp(ours[ours != 0], theirs[theirs != 0]).pvalue > 1e-3
        assert stats.kstest(ours[ours != 0], stats.norm(0, 0.02).cdf).pvalue > 1e-3
        assert Sparse(sparsity, 0.02).target_std(shape) == pytest.approx(float(ours.std()), rel=0.05)


def test_sparse_zeros_fall_on_uniformly_random_rows() -> None:
    rows, cols = 20, 20_000
    values = np.asarray(Sparse(0.25, seed=9)((rows, cols)))
    per_row = (values == 0).sum(axis=1)  # 5 zeros per column: each row expects cols / 4
    assert stats.chisquare(per_row).pvalue > 1e-3
    # cols draws from the comb(20, 5) subsets: a uniform choice leaves N (1 - (1 - 1/N)^cols) distinct ones
    subsets = math.comb(rows, 5)
    expected = subsets * (1 - (1 - 1 / subsets) ** cols)
    distinct = len({column.tobytes() for column in (values == 0).T})
    assert distinct == pytest.approx(expected, rel=0.01)


def test_sparse_is_reproducible_slices_like_the_whole_and_refuses_bad_input() -> None:
    whole = initreg.init_slice({"class_name": "sparse", "config": {"sparsity": 0.5}}, (30, 8), (), seed=1, path="w")
    part = initreg.init_slice({"class_name": "sparse", "config": {"sparsity": 0.5}}, (30, 8), (slice(3, 9),), 1, "w")
    np.testing.assert_array_equal(part, whole[3:9])
    assert not np.array_equal(whole, initreg.init_slice("sparse", (30, 8), (), seed=2, path="w"))
    with pytest.raises(InvalidArgumentError, match="only tensors with 2 dimensions"):
        Sparse()((3, 4, 5))
    with pytest.raises(InvalidArgumentError, match=r"`sparsity` must be in \[0, 1\]"):
        Sparse(1.5)
    with pytest.raises(InvalidArgumentError, match=r"at most 2\^32 = 4294967296 rows; received shape=\(4294967297, 1"):
        Sparse()((2**32 + 1, 1))  # its ranks pack (word, row) into an int64


def test_gains_whose_square_overflows_or_vanishes_are_refused_by_name() -> None:
    with pytest.raises(InvalidArgumentError, match=r"negative_slope 1e\+200 is too large"):
        calculate_gain("leaky_relu", 1e200)
    with pytest.raises(InvalidArgumentError, match=r"negative_slope 1e\+200 is too large"):
        initreg.get("kaiming_normal", a=1e200)
    for gain in (1e200, 1e-200, 0.0):
        with pytest.raises(InvalidArgumentError, match=r"`gain` must be nonzero, with a finite square"):
            initreg.get("xavier_normal", gain=gain)


def torchs_zero_element_warning() -> str:
    """The message torch.nn.init gives for an empty tensor (its kaiming_* warn; normal_ and the rest do not)."""
    with pytest.warns(UserWarning) as caught:
        torch.nn.init.kaiming_normal_(torch.empty(0, 1))
    return str(caught[0].message)


@pytest.mark.parametrize(
    ("name", "shape"),
    [
        ("kaiming_normal", (0, 3)), ("kaiming_uniform", (3, 0, 2)), ("xavier_normal", (0, 0)),
        ("xavier_uniform", (4, 0)), ("trunc_normal", (0,)), ("dirac", (0, 2, 3)), ("sparse", (5, 0)),
    ],
)  # fmt: skip
def test_zero_element_tensors_warn_with_torchs_words(name: str, shape: tuple[int, ...]) -> None:
    expected = torchs_zero_element_warning()
    init = initreg.get(name, seed=0) if name != "dirac" else initreg.get(name)
    with pytest.warns(UserWarning) as caught:
        made = init(shape)
    assert [str(warning.message) for warning in caught] == [expected]
    assert made.shape == shape
    with pytest.warns(UserWarning) as caught:
        part = initreg.init_slice(name, shape, (slice(0, 1),), seed=0, path="w")
    assert [str(warning.message) for warning in caught] == [expected]
    assert part.shape == (min(shape[0], 1), *shape[1:])


@pytest.mark.parametrize(
    ("name", "shape"),
    [
        ("kaiming_normal", (4, 3)), ("kaiming_uniform", (3, 1, 2)), ("xavier_normal", (1, 1)),
        ("xavier_uniform", (4, 3)), ("trunc_normal", ()), ("dirac", (2, 2, 3)), ("sparse", (5, 1)),
    ],
)  # fmt: skip
def test_tensors_with_elements_do_not_warn(name: str, shape: tuple[int, ...]) -> None:
    init = initreg.get(name, seed=0) if name != "dirac" else initreg.get(name)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert init(shape).shape == shape
