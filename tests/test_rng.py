"""The random stream: Philox known answers, keys, words, slices and chunking (docs/stream.md's contract)."""

import hashlib

import numpy as np
import pytest

from initreg import rng
from initreg.distributions import NormalDist, TruncatedNormalDist, UniformDist

PHILOX_KNOWN_ANSWERS = [
    ((0, 0, 0, 0), (0, 0), (0x6627E8D5, 0xE169C58D, 0xBC57AC4C, 0x9B00DBD8)),
    ((0xFFFFFFFF,) * 4, (0xFFFFFFFF,) * 2, (0x408F276D, 0x41C83B0E, 0xA20BC7C6, 0x6D5451FD)),
    (
        (0x243F6A88, 0x85A308D3, 0x13198A2E, 0x03707344),
        (0xA4093822, 0x299F31D0),
        (0xD16CFE09, 0x94FDCCEB, 0x5001E420, 0x24126EA1),
    ),
]
DISTRIBUTIONS = [UniformDist(-0.3, 0.7), NormalDist(0.5, 2.0), TruncatedNormalDist(0.0, 0.1)]


@pytest.mark.parametrize(("counter", "key", "expected"), PHILOX_KNOWN_ANSWERS)
def test_philox_known_answers(counter, key, expected):
    lanes = rng.philox4x32([np.array([c], dtype=np.int64) for c in counter], key, np)
    assert tuple(int(lane[0]) for lane in lanes) == expected


@pytest.mark.parametrize("multiplier", [rng.PHILOX_M0, rng.PHILOX_M1, 0xFFFFFFFF, 0x10000, 1])
def test_mul_hi_lo_splits_the_full_64_bit_product_without_overflow(multiplier):
    factors = [0, 1, 0xFFFF, 0x10000, 0x7FFFFFFF, 0x80000000, 0xDEADBEEF, 0xFFFFFFFF]
    hi, lo = rng.mul_hi_lo(np.array(factors, dtype=np.int64), multiplier)
    assert hi.dtype == lo.dtype == np.int64
    assert hi.tolist() == [(c * multiplier) >> 32 for c in factors]
    assert lo.tolist() == [(c * multiplier) & rng.MASK32 for c in factors]


def test_key_is_blake2b_of_seed_and_path_as_written_in_the_design():
    digest = hashlib.blake2b(b"initreg/v1\x0042\x00encoder.layer.0.kernel", digest_size=8).digest()
    expected = (int.from_bytes(digest[:4], "little"), int.from_bytes(digest[4:8], "little"))
    assert rng.derive_key(42, "encoder.layer.0.kernel") == expected
    assert rng.derive_key(42, "") != rng.derive_key(43, "")
    assert rng.derive_key(1, "a") != rng.derive_key(1, "b")


def test_words_follow_the_block_counter_layout():
    key = rng.derive_key(7, "w")
    words = rng.words_range(key, 0, 4 * 5, np)
    for block in range(5):
        counter = [np.array([v], dtype=np.int64) for v in (block, 0, rng.MAIN_STREAM, 0)]
        lanes = rng.philox4x32(counter, key, np)
        assert [int(lane[0]) for lane in lanes] == words[4 * block : 4 * block + 4].tolist()


def test_high_counter_word_carries_the_block_index_above_two_to_the_32():
    key = rng.derive_key(0, "")
    start = 4 * (2**32 + 3) + 1
    words = rng.words_range(key, start, 3, np)
    counter = [np.array([v], dtype=np.int64) for v in (3, 1, 0, 0)]
    lanes = rng.philox4x32(counter, key, np)
    assert words.tolist() == [int(lane[0]) for lane in lanes][1:4]


@pytest.mark.parametrize("start", [0, 1, 2, 3, 4, 13])
def test_any_window_of_words_equals_that_window_of_the_whole_stream(start):
    key = rng.derive_key(3, "x")
    whole = rng.words_range(key, 0, 64, np)
    assert np.array_equal(rng.words_range(key, start, 37, np), whole[start : start + 37])
    index = np.arange(start, start + 37, dtype=np.int64)
    assert np.array_equal(rng.words_at(key, index, np), whole[start : start + 37])


def test_streams_are_independent():
    key = rng.derive_key(3, "x")
    assert not np.array_equal(rng.words_range(key, 0, 16, np, stream=0), rng.words_range(key, 0, 16, np, stream=1))


def test_symmetric_unit_is_exact_and_strictly_inside_minus_one_one():
    words = np.array([0, 0xFF, 0x100, 0x7FFFFFFF, 0xFFFFFFFF], dtype=np.uint32)
    x = rng.symmetric_unit(words, "float32", np)
    k = (words >> 8).astype(np.float64)
    assert x.dtype == np.float32
    assert np.array_equal(x.astype(np.float64), (2 * k + 1 - 2**24) / 2**24)
    assert x.min() > -1 and x.max() < 1
    pairs = np.array([[0, 0], [0xFFFFFFFF, 0xFFFFFFFF], [1, 0x800]], dtype=np.uint32)
    x64 = rng.symmetric_unit(pairs, "float64", np)
    k64 = [(int(a) << 21) | (int(b) >> 11) for a, b in pairs]
    assert x64.tolist() == [(2 * k + 1 - 2**53) / 2**53 for k in k64]
    assert x64.min() > -1 and x64.max() < 1


@pytest.mark.parametrize("dist", DISTRIBUTIONS, ids=type)
@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize(
    "index",
    [
        (slice(2, 5), slice(None)),
        (slice(None), slice(3, 9, 2)),
        (slice(7, None, -2), slice(1, 2)),
        (slice(0, 0), slice(None)),
        (slice(4, 8),),
    ],
)
def test_a_slice_generated_alone_equals_that_slice_of_the_whole_tensor(dist, dtype, index):
    key = rng.derive_key(11, "layer.kernel")
    shape = (9, 13)
    whole = rng.draw(dist, key, shape, dtype, np)
    part = rng.draw_slice(dist, key, shape, index, dtype, np)
    assert np.array_equal(part, whole[index])


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_chunk_boundaries_do_not_change_values(monkeypatch, dtype):
    key = rng.derive_key(5, "p")
    dist = TruncatedNormalDist(0.0, 1.0)
    whole = rng.draw(dist, key, (10, 103), dtype, np)
    monkeypatch.setattr(rng, "CHUNK_ELEMENTS", 7)
    assert np.array_equal(rng.draw(dist, key, (10, 103), dtype, np), whole)


def test_float64_uses_two_words_per_element():
    key = rng.derive_key(1, "d")
    values = rng.draw(UniformDist(0.0, 1.0), key, (6,), "float64", np)
    words = rng.words_range(key, 0, 12, np).reshape(6, 2)
    k = [(int(a) << 21) | (int(b) >> 11) for a, b in words]
    assert values.tolist() == pytest.approx([(j + 0.5) / 2**53 for j in k], rel=0, abs=2**-53)


def test_empty_and_scalar_shapes():
    key = rng.derive_key(0, "")
    assert rng.draw(NormalDist(0, 1), key, (0, 5), "float32", np).shape == (0, 5)
    scalar = rng.draw(NormalDist(0, 1), key, (), "float32", np)
    assert scalar.shape == () and np.isfinite(scalar)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_an_auxiliary_stream_slices_exactly_and_differs_from_the_main_one(dtype):
    key, shape, dist = rng.derive_key(4, "w"), (6, 9), UniformDist(0.0, 1.0)
    whole = rng.draw_slice(dist, key, shape, (), dtype, np, stream=1)
    part = rng.draw_slice(dist, key, shape, (slice(1, 5), slice(2, 9, 3)), dtype, np, stream=1)
    np.testing.assert_array_equal(part, whole[1:5, 2:9:3])
    np.testing.assert_array_equal(
        rng.draw_slice(dist, key, shape, (), dtype, np), rng.draw(dist, key, shape, dtype, np)
    )
    assert not np.isclose(whole, rng.draw(dist, key, shape, dtype, np)).any()
    words = rng.words_range(key, 0, 54 * (2 if dtype == "float64" else 1), np, stream=1)
    expected = rng.symmetric_unit(words if dtype == "float32" else words.reshape(54, 2), dtype, np)
    np.testing.assert_array_equal(whole.ravel(), 0.5 + 0.5 * expected)


@pytest.mark.parametrize(("dtype", "words_per_element"), [("float32", 1), ("float64", 2)])
def test_the_last_elements_of_the_largest_tensor_use_their_own_words(dtype, words_per_element):
    """Element 2^63 - 2 of a float64 tensor uses words near 2^64, past int64: no index may overflow."""
    key, size = rng.derive_key(8, "huge"), 2**63 - 1
    last = rng.draw_slice(UniformDist(-1.0, 1.0), key, (size,), (slice(size - 3, None),), dtype, np)  # x itself
    words = rng.words_range(key, words_per_element * (size - 3), 3 * words_per_element, np)
    expected = rng.symmetric_unit(words if dtype == "float32" else words.reshape(3, 2), dtype, np)
    np.testing.assert_array_equal(last, expected)
