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

Fast paths (backends/) compute the same words and the same formulas; they are tested against this. The
fused CPU kernels give the same bits, floats included (their log is special.log); CuPy's kernel the same
words, and floats within a few ulp (CUDA's log).
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Sequence
from typing import Any

from initreg.distributions import Distribution, NormalDist, TruncatedNormalDist, UniformDist
from initreg.dtypes import compute_dtype, inner_bounds
from initreg.errors import InvalidArgumentError
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


def _seeded_hasher(seed: int) -> Any:
    """blake2b-64 having read the key message's part before the path: b"initreg/v1\\0" + str(seed) + b"\\0"."""
    return hashlib.blake2b(b"initreg/v1\0" + str(seed).encode() + b"\0", digest_size=8)


def derive_key(seed: int, path: str = "") -> Key:
    """The Philox key for a parameter: blake2b-64 of (seed, path), as two little-endian uint32."""
    hasher = _seeded_hasher(seed)
    hasher.update(path.encode())
    digest = hasher.digest()
    return int.from_bytes(digest[:4], "little"), int.from_bytes(digest[4:], "little")


def derive_keys(seed: int, paths: Sequence[str]) -> bytes:
    """`derive_key` of each path in one pass: its 8 digest bytes (two little-endian uint32) each, concatenated."""
    seeded = _seeded_hasher(seed)
    digests = []
    for path in paths:
        hasher = seeded.copy()  # the seed's part is hashed once
        hasher.update(path.encode())
        digests.append(hasher.digest())
    return b"".join(digests)


def mul_hi_lo(c: Array, multiplier: int) -> tuple[Array, Array]:
    """(hi, lo) 32-bit halves of the 64-bit product c M, for int64 c and M in [0, 2^32), without overflow.

    With M = Mh 2^16 + Ml: t = c Mh + (c Ml >> 16) < 2^49, hi = t >> 16 and
    lo = (t mod 2^16) 2^16 + (c Ml mod 2^16). Every intermediate is a non-negative int64 below 2^49.
    """
    by_low = c * (multiplier & 0xFFFF)
    t = c * (multiplier >> 16) + (by_low >> 16)
    return t >> 16, ((t & 0xFFFF) << 16) | (by_low & 0xFFFF)


def philox4x32(counter: Sequence[Array], key: Key, xp: Namespace) -> tuple[Array, ...]:
    """Philox4x32-10 (Salmon et al., SC'11) on four int64 arrays holding 32-bit lanes.

    Each round: (c0, c1, c2, c3) -> (hi(M1 c2) ^ c1 ^ k0, lo(M1 c2), hi(M0 c0) ^ c3 ^ k1, lo(M0 c0)),
    then the key is bumped by the Weyl constants (W0, W1). Returns the four output lanes as int64 in
    [0, 2^32). Only int64 arithmetic that cannot overflow is used (see `mul_hi_lo`), which every
    array-API namespace has, torch's included (its unsigned types lack shifts and additions).
    """
    c0, c1, c2, c3 = counter
    k0, k1 = key
    for _ in range(PHILOX_ROUNDS):
        hi0, lo0 = mul_hi_lo(c0, PHILOX_M0)
        hi1, lo1 = mul_hi_lo(c2, PHILOX_M1)
        c0, c1, c2, c3 = hi1 ^ c1 ^ k0, lo1, hi0 ^ c3 ^ k1, lo0
        k0, k1 = (k0 + PHILOX_W0) & MASK32, (k1 + PHILOX_W1) & MASK32
    return c0, c1, c2, c3


def block_lanes(key: Key, blocks: Array, xp: Namespace, stream: int) -> tuple[Array, ...]:
    """The four output lanes (int64) of each block j in `blocks` (int64, j < 2^62).

    Block j is Philox4x32-10 of the counter (j mod 2^32, j div 2^32, stream, 0).
    """
    zeros = xp.zeros_like(blocks)
    return philox4x32([blocks & MASK32, blocks >> 32, zeros + stream, zeros], key, xp)


def _range_lanes(key: Key, start: int, count: int, xp: Namespace, stream: int) -> Array:
    """Words start .. start+count-1 of the stream, as int64 in [0, 2^32) (each block computed once)."""
    first_block, last_block = start // 4, (start + count + 3) // 4
    lanes = block_lanes(key, xp.arange(first_block, last_block, dtype=xp.int64), xp, stream)
    words = xp.reshape(xp.stack(lanes, axis=1), (-1,))
    offset = start - 4 * first_block
    return words[offset : offset + count]


def words_range(key: Key, start: int, count: int, xp: Namespace, stream: int = MAIN_STREAM) -> Array:
    """Words start .. start+count-1 of the stream, as a uint32 array."""
    return xp.astype(_range_lanes(key, start, count, xp, stream), xp.uint32)


def _pick_lane(lanes: Sequence[Array], lane: Array, xp: Namespace) -> Array:
    """lanes[lane], element by element, for an int64 array `lane` of values in 0..3."""
    return xp.where(lane == 0, lanes[0], xp.where(lane == 1, lanes[1], xp.where(lane == 2, lanes[2], lanes[3])))


def _lanes_at(key: Key, word_index: Array, xp: Namespace, stream: int) -> Array:
    """The words at arbitrary indices (int64 in [0, 2^63)), as int64 in [0, 2^32)."""
    return _pick_lane(block_lanes(key, word_index >> 2, xp, stream), word_index & 3, xp)


def words_at(key: Key, word_index: Array, xp: Namespace, stream: int = MAIN_STREAM) -> Array:
    """The words at arbitrary indices (int64 in [0, 2^63)), as a uint32 array of the same shape."""
    return xp.astype(_lanes_at(key, word_index, xp, stream), xp.uint32)


def symmetric_unit(words: Array, precision: str, xp: Namespace) -> Array:
    """x = 2u - 1 in (-1, 1), exact: (2k + 1 - 2^m) 2^-m, from one word (float32) or two (float64).

    `words` holds 32-bit values in any integer dtype (uint32 words, int64 lanes); for float64, the two
    words of each element in its last axis. The arithmetic is int64, exact: |2k + 1 - 2^m| < 2^53.
    """
    if precision == "float32":
        k = xp.astype(words, xp.int64) >> 8
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
    """Word i of each element i (float32), or words 2i and 2i+1 in a last axis of 2 (float64), as int64.

    Words 2i and 2i+1 are lanes 2(i mod 2) and 2(i mod 2) + 1 of block i div 2 (no index above 2^63).
    """
    if precision == "float32":
        return _lanes_at(key, element_index, xp, stream)
    lanes = block_lanes(key, element_index >> 1, xp, stream)
    odd = (element_index & 1) == 1
    return xp.stack([xp.where(odd, lanes[2], lanes[0]), xp.where(odd, lanes[3], lanes[1])], axis=-1)


def _range_words(key: Key, start: int, count: int, precision: str, xp: Namespace) -> Array:
    """The words of elements start .. start+count-1 of the main stream, shaped as `_element_words` gives them."""
    if precision == "float32":
        return _range_lanes(key, start, count, xp, MAIN_STREAM)
    return xp.reshape(_range_lanes(key, 2 * start, 2 * count, xp, MAIN_STREAM), (count, 2))


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
        raise InvalidArgumentError(f"index {index!r} has more entries than shape {shape} has axes")
    return (*index, *(slice(None),) * (len(shape) - len(index)))


def sliced_size(shape: tuple[int, ...], index: tuple[slice, ...]) -> int:
    """The number of elements tensor[index] selects from a tensor of `shape` (trailing axes whole)."""
    return math.prod(
        len(range(*part.indices(size))) for size, part in zip(shape, full_index(shape, index), strict=True)
    )


def flat_indices(shape: tuple[int, ...], index: tuple[slice, ...], xp: Namespace) -> Array:
    """Row-major flat indices (int64: a tensor has at most 2^63 - 1 elements) of the elements `index` selects."""
    strides = [math.prod(shape[axis + 1 :]) for axis in range(len(shape))]
    flat = xp.zeros((), dtype=xp.int64)
    for axis, (size, part) in enumerate(zip(shape, index, strict=False)):
        start, stop, step = part.indices(size)
        positions = xp.arange(start, stop, step, dtype=xp.int64) * strides[axis]
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
