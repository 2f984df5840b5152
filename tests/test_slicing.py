"""init_slice: any slice of a parameter equals that slice of the whole, and bad indices are named."""

import itertools
import subprocess
import sys

import numpy as np
import pytest

import initreg
from initreg import init_slice
from initreg.errors import InitregError
from initreg.initializers import RandomInitializer
from initreg.slicing import normalize_index

SHAPE = (6, 10, 3)
INITIALIZERS = [
    "glorot_uniform",
    "lecun_normal",
    "he_uniform",
    {"class_name": "RandomNormal", "config": {"mean": 1.0, "stddev": 0.5}},
    {"class_name": "TruncatedNormal", "config": {"stddev": 2.0}},
    {"class_name": "TruncatedNormal", "config": {"stddev": 2.0, "cutoff": 3.5}},
    {"class_name": "TruncatedNormal", "config": {"mean": 0.1, "stddev": 0.7, "a": -0.3, "b": 1.9}},
    {"class_name": "GlorotNormal", "config": {"cutoff": 1.5}},
    {"class_name": "VarianceScaling", "config": {"mode": "fan_geo_avg", "distribution": "untruncated_normal"}},
    {"class_name": "Constant", "config": {"value": [1.0, 2.0, 3.0]}},
    "zeros",
]
INDICES = [
    (),
    (2,),
    (-1, slice(1, 9, 3), 0),
    (Ellipsis, 1),
    (slice(None, None, -1),),
    (slice(5, 0, -2), Ellipsis, slice(None, None, -1)),
    (slice(-2, None, -3), slice(7, 100)),
    (slice(3, 3),),
    slice(1, 4),
    np.int64(4),
    Ellipsis,
]


@pytest.mark.parametrize("initializer", INITIALIZERS, ids=str)
@pytest.mark.parametrize("index", INDICES, ids=repr)
def test_a_slice_equals_that_slice_of_the_whole_parameter(initializer, index):
    whole = init_slice(initializer, SHAPE, (), seed=5, path="block.0.kernel")
    part = init_slice(initializer, SHAPE, index, seed=5, path="block.0.kernel")
    assert part.shape == whole[index].shape
    assert part.dtype == whole.dtype
    np.testing.assert_array_equal(part, whole[index])


@pytest.mark.parametrize("dtype", ["float16", "bfloat16", "float32", "float64"])
@pytest.mark.parametrize("layout", [None, "torch"])
def test_tiles_assemble_into_the_whole_parameter_in_every_dtype_and_layout(dtype, layout):
    shape = (9, 14)
    whole = init_slice("he_normal", shape, (), seed=1, path="w", dtype=dtype, layout=layout)
    assembled = np.empty(shape, dtype=whole.dtype)
    for rows, cols in itertools.product([slice(0, 4), slice(4, 9)], [slice(0, 5), slice(5, 10), slice(10, 14)]):
        assembled[rows, cols] = init_slice(
            "he_normal", shape, (rows, cols), seed=1, path="w", dtype=dtype, layout=layout
        )
    assert str(whole.dtype) == dtype
    np.testing.assert_array_equal(assembled, whole)


def test_random_strided_slices_match_numpy_indexing_of_the_whole():
    generator = np.random.default_rng(0)
    shape = (7, 5, 11)
    whole = init_slice("random_uniform", shape, (), seed=3, path="p", dtype="float64")
    for _ in range(60):
        index = []
        for size in shape:
            start, stop = (int(v) for v in generator.integers(-size - 2, size + 2, 2))
            step = int(generator.choice([-3, -2, -1, 1, 2, 3]))
            index.append(slice(start, stop, step) if generator.random() < 0.8 else int(generator.integers(-size, size)))
        np.testing.assert_array_equal(
            init_slice("random_uniform", shape, tuple(index), 3, "p", "float64"), whole[tuple(index)]
        )


def test_the_whole_index_gives_what_a_seeded_initializer_gives_for_the_empty_path():
    expected = initreg.GlorotNormal(seed=17)((20, 30))
    np.testing.assert_array_equal(init_slice("glorot_normal", (20, 30), (), seed=17, path=""), expected)


def test_the_stream_is_keyed_by_seed_and_path_not_by_the_initializers_own_seed():
    base = init_slice(initreg.LecunNormal(seed=1), (8, 8), (), seed=2, path="a")
    np.testing.assert_array_equal(init_slice(initreg.LecunNormal(seed=99), (8, 8), (), seed=2, path="a"), base)
    assert not np.array_equal(init_slice("lecun_normal", (8, 8), (), seed=2, path="b"), base)
    assert not np.array_equal(init_slice("lecun_normal", (8, 8), (), seed=3, path="a"), base)


def test_fans_come_from_the_whole_shape_not_the_slices():
    shape = (4000, 50)
    part = init_slice("lecun_uniform", shape, (slice(0, 10),), seed=0, path="w")
    assert np.abs(part).max() <= np.sqrt(3.0 / shape[0])
    assert np.abs(part).max() > 0.9 * np.sqrt(3.0 / shape[0])


def test_a_slice_of_orthogonal_is_that_slice_of_the_whole():
    whole = init_slice("orthogonal", (8, 5), (), seed=4, path="q")
    np.testing.assert_allclose(whole.T @ whole, np.eye(5), atol=1e-5)
    np.testing.assert_array_equal(init_slice("orthogonal", (8, 5), (slice(None), Ellipsis), seed=4, path="q"), whole)
    for index in [(slice(0, 4),), (slice(None, None, -2), 3), (Ellipsis, slice(1, 2))]:
        np.testing.assert_array_equal(init_slice("orthogonal", (8, 5), index, seed=4, path="q"), whole[index])


def test_each_class_declares_whether_it_slices_independently():
    assert not initreg.Orthogonal.slices_independently
    assert not initreg.Identity.slices_independently  # a slice is cut from the whole matrix
    assert not initreg.Initializer.slices_independently  # an initializer that declares nothing is whole-tensor
    assert not RandomInitializer.slices_independently
    assert initreg.GlorotUniform.slices_independently and initreg.RandomNormal.slices_independently
    assert initreg.Constant.slices_independently and initreg.Zeros.slices_independently


def test_identity_and_constants_slice_like_the_whole():
    whole = init_slice({"class_name": "Identity", "config": {"gain": 3.0}}, (5, 7), (), seed=0, path="")
    np.testing.assert_array_equal(whole, 3.0 * np.eye(5, 7))
    part = init_slice({"class_name": "Identity", "config": {"gain": 3.0}}, (5, 7), (slice(1, 4), 2), seed=0, path="")
    np.testing.assert_array_equal(part, whole[1:4, 2])


def test_normalize_index_pads_expands_and_records_dropped_axes():
    slices, dropped = normalize_index((1, Ellipsis, slice(None, None, -1)), (3, 4, 5))
    assert dropped == (0,)
    assert [list(range(*s.indices(n))) for s, n in zip(slices, (3, 4, 5), strict=True)] == [
        [1],
        [0, 1, 2, 3],
        [4, 3, 2, 1, 0],
    ]


@pytest.mark.parametrize(
    ("index", "message"),
    [
        ((0, 0, 0, 0), "4 entries for shape"),
        ((6,), "out of range for axis 0"),
        ((slice(None), -11), "out of range for axis 1"),
        ((Ellipsis, Ellipsis), "more than one Ellipsis"),
        (("a",), "'a'"),
        ((1.5,), "1.5"),
        ((True,), "True"),
        ((None,), "None"),
        ([1, 2], r"\[1, 2\]"),
        ((np.arange(3),), r"array\(\[0, 1, 2\]\)"),
    ],
)
def test_bad_indices_raise_an_error_naming_them(index, message):
    with pytest.raises(InitregError, match=message):
        init_slice("glorot_uniform", SHAPE, index, seed=0, path="w")


def test_bad_arguments_raise_an_error_naming_them():
    with pytest.raises(InitregError, match="None"):
        init_slice("glorot_uniform", (2, 2), (), seed=None, path="w")
    with pytest.raises(InitregError, match="path"):
        init_slice("glorot_uniform", (2, 2), (), seed=0, path=3)
    with pytest.raises(InitregError, match="lecun_normal"):
        init_slice("lecun_normall", (2, 2), (), seed=0, path="w")
    with pytest.raises(InitregError, match="Initializer"):
        init_slice(lambda shape, dtype=None: np.zeros(shape), (2, 2), (), seed=0, path="w")
    with pytest.raises(InitregError, match="int8"):
        init_slice("glorot_uniform", (2, 2), (), seed=0, path="w", dtype="int8")
    with pytest.raises(InitregError, match="-2"):
        init_slice("glorot_uniform", (2, -2), (), seed=0, path="w")


def test_import_initreg_offers_init_slice_and_loads_no_interop_module_or_framework():
    code = (
        "import sys, initreg; initreg.init_slice('zeros', (2,), (), 0, 'p'); "
        "print(' '.join(sorted(m for m in sys.modules if m.startswith('initreg.interop') "
        "or m.split('.')[0] in ('jax', 'flax', 'keras', 'torch', 'dask', 'distributed', 'zarr'))))"
    )
    loaded = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split()
    assert loaded == []


def test_a_zero_slice_step_is_an_error_naming_the_index():
    with pytest.raises(InitregError, match="slice step cannot be zero"):
        init_slice("zeros", (4, 4), (slice(None), slice(0, 4, 0)), seed=0, path="w")
