"""The counter-based random stream, written once against an array namespace.

Every random value is a pure function of (seed, parameter path, element index):

- key = the first 8 bytes of blake2b(b"initreg/v1\\0" + str(seed) + b"\\0" + path), as two
  little-endian uint32;
- word w of the stream is word w mod 4 of Philox4x32-10 applied to the counter
  (j mod 2^32, j div 2^32, stream, 0) with j = w div 4;
- element i of the row-major flattened tensor uses word i (float32 and narrower) or words 2i and 2i+1
  (float64).

A uniform in (0, 1) is u = (k + 1/2) 2^-m with k the top m bits (m = 24 from one word; m = 53 from
word 2i's 32 bits followed by the top 21 of word 2i+1). Samples are evaluated through the exact,
symmetric x = 2u - 1 = (2k + 1 - 2^m) 2^-m in (-1, 1):

- uniform on [low, high):  (low + high)/2 + x (high - low)/2
- normal:                  mean + stddev sqrt(2) erfinv(x)
- truncated on [a, b]:     mean + stddev sqrt(2) erfinv(e_mid + x e_half), clipped to [a, b], where
                           e_mid/e_half are the midpoint/half-width of [erf(a/sqrt2), erf(b/sqrt2)]
                           (the inverse CDF of docs/stream.md, "From words to samples", written in x
                           instead of u).

Fast paths (backends/) compute the same words and the same formulas; they are tested against this.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Sequence
from typing import Any

from initreg.distributions import Distribution, NormalDist, TruncatedNormalDist, UniformDist
from initreg.dtypes import compute_dtype, inner_bounds
from initreg.special import erfinv

Array = Any
Namespace = Any
Key = tuple[int, int]

MASK32 = 0xFFFFFFFF
PHILOX_M0, PHILOX_M1 = 0xD2511F53, 0xCD9E8D57
PHILOX_W0, PHILOX_W1 = 0x9E3779B9, 0xBB67AE85
PHILOX_ROUNDS = 10
MAIN_STREAM = 0
CHUNK_ELEMENTS = 1 << 20  # elements drawn per pass, bounding temporaries to a few tens of MB


def derive_key(seed: int, path: str = "") -> Key:
    """The Philox key for a parameter: blake2b-64 of (seed, path), as two little-endian uint32."""
    message = b"initreg/v1\0" + str(seed).encode() + b"\0" + path.encode()
    digest = hashlib.blake2b(message, digest_size=8).digest()
    return int.from_bytes(digest[:4], "little"), int.from_bytes(digest[4:], "little")


def philox4x32(counter: Sequence[Array], key: Key, xp: Namespace) -> tuple[Array, ...]:
    """Philox4x32-10 (Salmon et al., SC'11) on four uint64 arrays holding 32-bit lanes.

    Each round: (c0, c1, c2, c3) -> (hi(M1 c2) ^ c1 ^ k0, lo(M1 c2), hi(M0 c0) ^ c3 ^ k1, lo(M0 c0)),
    then the key is bumped by the Weyl constants (W0, W1). Returns the four output lanes as uint64.
    """
    c0, c1, c2, c3 = counter
    k0, k1 = key
    for _ in range(PHILOX_ROUNDS):
        p0 = c0 * PHILOX_M0
        p1 = c2 * PHILOX_M1
        c0, c1, c2, c3 = (p1 >> 32) ^ c1 ^ k0, p1 & MASK32, (p0 >> 32) ^ c3 ^ k1, p0 & MASK32
        k0, k1 = (k0 + PHILOX_W0) & MASK32, (k1 + PHILOX_W1) & MASK32
    return c0, c1, c2, c3


def _block_counter(blocks: Array, stream: int, xp: Namespace) -> list[Array]:
    zeros = xp.zeros_like(blocks)
    return [blocks & MASK32, blocks >> 32, zeros + stream, zeros]


def words_range(key: Key, start: int, count: int, xp: Namespace, stream: int = MAIN_STREAM) -> Array:
    """Words start .. start+count-1 of the stream, as a uint32 array (each block computed once)."""
    first_block, last_block = start // 4, (start + count + 3) // 4
    blocks = xp.arange(first_block, last_block, dtype=xp.uint64)
    lanes = philox4x32(_block_counter(blocks, stream, xp), key, xp)
    words = xp.reshape(xp.stack(lanes, axis=1), (-1,))
    offset = start - 4 * first_block
    return xp.astype(words[offset : offset + count], xp.uint32)


def words_at(key: Key, word_index: Array, xp: Namespace, stream: int = MAIN_STREAM) -> Array:
    """The words at arbitrary uint64 indices, as a uint32 array of the same shape."""
    lanes = philox4x32(_block_counter(word_index >> 2, stream, xp), key, xp)
    lane = word_index & 3
    picked = xp.where(lane == 0, lanes[0], xp.where(lane == 1, lanes[1], xp.where(lane == 2, lanes[2], lanes[3])))
    return xp.astype(picked, xp.uint32)


def symmetric_unit(words: Array, precision: str, xp: Namespace) -> Array:
    """x = 2u - 1 in (-1, 1), exact: (2k + 1 - 2^m) 2^-m, from one word (float32) or two (float64).

    For float64, `words` holds the two words of each element in its last axis.
    """
    if precision == "float32":
        k = xp.astype(words >> 8, xp.int32)
        return xp.astype(2 * k + (1 - (1 << 24)), xp.float32) * (2.0**-24)
    high, low = xp.astype(words[..., 0], xp.int64), xp.astype(words[..., 1], xp.int64)
    k = (high << 21) | (low >> 11)
    return xp.astype(2 * k + (1 - (1 << 53)), xp.float64) * (2.0**-53)


UNIFORM, NORMAL, TRUNCATED = 0, 1, 2  # distribution codes shared with the fused kernels


def transform_constants(dist: Distribution, dtype: str) -> tuple[int, tuple[float, ...]]:
    """The distribution code and the constants `transform` applies, as Python floats.

    uniform:   (mid, half, low', high')        -> clip(mid + half x, low', high')
    normal:    (mean, sqrt2 stddev)            -> mean + sqrt2 stddev erfinv(x)
    truncated: (e_mid, e_half, sqrt2, a, b, mean, stddev, low', high')
               -> clip(mean + stddev clip(sqrt2 erfinv(e_mid + e_half x), a, b), low', high')
    where [low', high'] are the bounds kept exact in `dtype` (dtypes.inner_bounds). The fused kernels
    take the same constants, rounded once to the compute precision as NumPy rounds a Python scalar.
    """
    if isinstance(dist, UniformDist):
        low, high = inner_bounds(dist.low, dist.high, dtype, high_open=True)
        return UNIFORM, (0.5 * (dist.low + dist.high), 0.5 * (dist.high - dist.low), low, high)
    if isinstance(dist, NormalDist):
        return NORMAL, (dist.mean, dist.stddev * math.sqrt(2.0))
    if isinstance(dist, TruncatedNormalDist):
        erf_a, erf_b = math.erf(dist.low / math.sqrt(2.0)), math.erf(dist.high / math.sqrt(2.0))
        low, high = inner_bounds(*dist.bounds, dtype)
        e_mid, e_half = 0.5 * (erf_a + erf_b), 0.5 * (erf_b - erf_a)
        return TRUNCATED, (e_mid, e_half, math.sqrt(2.0), dist.low, dist.high, dist.mean, dist.stddev, low, high)
    raise TypeError(f"not a distribution: {dist!r}")


def transform(dist: Distribution, x: Array, dtype: str, xp: Namespace) -> Array:
    """Maps x = 2u - 1 to samples of `dist`, clipped so that a cast to `dtype` keeps their bounds."""
    kind, constants = transform_constants(dist, dtype)
    if kind == UNIFORM:
        mid, half, low, high = constants
        return xp.clip(mid + half * x, low, high)
    if kind == NORMAL:
        mean, scale = constants
        return mean + scale * erfinv(x, xp)
    e_mid, e_half, sqrt2, a, b, mean, stddev, low, high = constants
    z = sqrt2 * erfinv(e_mid + e_half * x, xp)
    return xp.clip(mean + stddev * xp.clip(z, a, b), low, high)


def _element_words(key: Key, element_index: Array, precision: str, xp: Namespace, stream: int) -> Array:
    if precision == "float32":
        return words_at(key, element_index, xp, stream)
    pair = xp.stack([2 * element_index, 2 * element_index + 1], axis=-1)
    return words_at(key, pair, xp, stream)


def _range_words(key: Key, start: int, count: int, precision: str, xp: Namespace) -> Array:
    if precision == "float32":
        return words_range(key, start, count, xp)
    return xp.reshape(words_range(key, 2 * start, 2 * count, xp), (count, 2))


def draw(dist: Distribution, key: Key, shape: tuple[int, ...], dtype: str, xp: Namespace) -> Array:
    """Samples of `dist` for a whole tensor, in the compute precision of `dtype` (float32/float64).

    Drawn in chunks of CHUNK_ELEMENTS so that temporaries stay small whatever the tensor's size.
    """
    precision = compute_dtype(dtype)
    size = math.prod(shape)
    out = xp.empty((size,), dtype=getattr(xp, precision))
    for start in range(0, size, CHUNK_ELEMENTS):
        count = min(CHUNK_ELEMENTS, size - start)
        x = symmetric_unit(_range_words(key, start, count, precision, xp), precision, xp)
        out[start : start + count] = transform(dist, x, dtype, xp)
    return xp.reshape(out, shape)


def full_index(shape: tuple[int, ...], index: tuple[slice, ...]) -> tuple[slice, ...]:
    """`index` with whole slices appended for the trailing axes it leaves out."""
    if len(index) > len(shape):
        from initreg.errors import InvalidArgumentError

        raise InvalidArgumentError(f"index {index!r} has more entries than shape {shape} has axes")
    return (*index, *(slice(None),) * (len(shape) - len(index)))


def flat_indices(shape: tuple[int, ...], index: tuple[slice, ...], xp: Namespace) -> Array:
    """Row-major flat indices (uint64) of the elements that `index` (one slice per axis) selects."""
    strides = [math.prod(shape[axis + 1 :]) for axis in range(len(shape))]
    flat = xp.zeros((), dtype=xp.uint64)
    for axis, (size, part) in enumerate(zip(shape, index, strict=False)):
        start, stop, step = part.indices(size)
        positions = xp.arange(start, stop, step, dtype=xp.uint64) * strides[axis]
        broadcast_shape = (1,) * axis + (-1,) + (1,) * (len(shape) - axis - 1)
        flat = flat + xp.reshape(positions, broadcast_shape)
    return flat


def draw_slice(
    dist: Distribution, key: Key, shape: tuple[int, ...], index: tuple[slice, ...], dtype: str, xp: Namespace,
    stream: int = MAIN_STREAM,
) -> Array:  # fmt: skip
    """The samples `draw` gives for tensor[index], computed without the rest of the tensor.

    `stream` picks the Philox stream: MAIN_STREAM for a parameter's values, others for auxiliary draws
    (the second part of a complex value, say), which are independent of the main one.
    """
    precision = compute_dtype(dtype)
    index = full_index(shape, index)
    words = _element_words(key, flat_indices(shape, index, xp), precision, xp, stream)
    x = symmetric_unit(words, precision, xp)
    return transform(dist, x, dtype, xp)
