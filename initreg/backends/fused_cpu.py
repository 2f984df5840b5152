"""A fused, multithreaded CPU path for the random stream, compiled with numba.

The kernels compute what ``initreg.rng`` computes (Philox4x32-10 words, x = 2u - 1, the transform
and its clips), operation for operation in the same precision and order, tile by tile (TILE
elements, in parallel over numba's threads), writing float32/float64 in place: no temporary is
larger than a tile. Every element depends only on its own index, so results do not depend on the
thread count. Words and floats are bit-identical to the reference's, for every distribution and dtype:
log is ``special.log``, written out there against the array namespace and here through q's bits, from
the same constants (NumPy's log cannot be called from a kernel, and libm's would keep LLVM from
vectorizing). fastmath stays off, so LLVM neither fuses multiply-adds nor reorders sums: each float
operation is the reference's, in its order.

The kernels are cached on disk, in the user's cache folder (``initreg.backends.kernel_cache``, never
inside the package): the first run compiles them (seconds), later processes load them. numba sees
edits to this file, not to the constants it imports from ``initreg.special``; emptying that folder (or
pointing ``INITREG_CACHE_DIR`` elsewhere) forces a rebuild.

Each kernel has a serial and a parallel build of the same code (``kernel_cache.Kernel``): outputs
below PARALLEL_FROM elements run the serial one. Their results are bit-identical: each element is
computed by the same instructions, whichever thread runs it.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numba
import numpy as np

from initreg import rng, special
from initreg.backends.fused_moments import BLOCK, NO_TABLE, block_moments, merged_blocks
from initreg.backends.kernel_cache import Kernel
from initreg.distributions import Distribution
from initreg.dtypes import compute_dtype
from initreg.special import DOUBLE_CENTRAL, DOUBLE_MIDDLE, DOUBLE_TAIL, SINGLE_CENTRAL, SINGLE_TAIL

Scalar = Any  # a number inside a kernel: numba types it (uint32/64, int64, float32/64) where it is used

TILE = 1 << 14  # elements per parallel work item: small enough to stay in L2, large enough to amortize

UNIFORM, NORMAL, TRUNCATED = rng.UNIFORM, rng.NORMAL, rng.TRUNCATED

_MASK32 = np.uint64(rng.MASK32)
_SHIFT32 = np.uint64(32)
_M0, _M1 = np.uint64(rng.PHILOX_M0), np.uint64(rng.PHILOX_M1)
_W0, _W1 = np.uint64(rng.PHILOX_W0), np.uint64(rng.PHILOX_W1)
_ROUNDS = rng.PHILOX_ROUNDS

# Global arrays are compile-time constants to numba, which lets LLVM unroll Horner's loop and vectorize.
_SINGLE_CENTRAL = np.array(SINGLE_CENTRAL, dtype=np.float32)
_SINGLE_TAIL = np.array(SINGLE_TAIL, dtype=np.float32)
_DOUBLE_CENTRAL = np.array(DOUBLE_CENTRAL)
_DOUBLE_MIDDLE = np.array(DOUBLE_MIDDLE)
_DOUBLE_TAIL = np.array(DOUBLE_TAIL)

# special.log's constants: its atanh series, ln 2 split in two, and the bit patterns of its split.
_ATANH_SERIES_32 = np.array(special.ATANH_SERIES_32, dtype=np.float32)
_ATANH_SERIES_64 = np.array(special.ATANH_SERIES_64)
_LN2_32 = np.float32(special.LN2_32[0]), np.float32(special.LN2_32[1])
_LN2_64 = special.LN2_64
_SQRT_HALF_BITS_32, _SQRT_HALF_BITS_64 = special.SQRT_HALF_BITS_32, special.SQRT_HALF_BITS_64
# Adding the difference of the bit patterns of 1 and sqrt(1/2) to q's bits moves the exponent field up by
# one exactly when q's mantissa is >= 2 sqrt(1/2), which leaves 1 + f in [sqrt(1/2), 2 sqrt(1/2)).
_SPLIT_32 = special.ONE_BITS_32 - _SQRT_HALF_BITS_32
_SPLIT_64 = special.ONE_BITS_64 - _SQRT_HALF_BITS_64

# Helpers are inlined into the kernels so that LLVM can vectorize the inner loops (and are cached as
# part of them); error_model="numpy" drops Python's division check, whose exception branch would stop
# vectorization.
_inline = numba.njit(error_model="numpy", inline="always")


@_inline
def _philox(block: Scalar, key0: Scalar, key1: Scalar) -> tuple[Scalar, ...]:
    """rng.philox4x32 of the main-stream counter (block mod 2^32, block div 2^32, MAIN_STREAM, 0).

    Every value is held in uint64 and known to LLVM to be below 2^32 (the key words are masked, a
    no-op on keys, which are 32-bit), so each multiply is one 32x32->64 vpmuludq when vectorized.
    """
    c0, c1 = np.uint64(block) & _MASK32, np.uint64(block) >> _SHIFT32
    c2, c3 = np.uint64(rng.MAIN_STREAM), np.uint64(0)
    k0, k1 = np.uint64(key0) & _MASK32, np.uint64(key1) & _MASK32
    for _ in range(_ROUNDS):
        p0, p1 = c0 * _M0, c2 * _M1
        c0, c1, c2, c3 = (p1 >> _SHIFT32) ^ c1 ^ k0, p1 & _MASK32, (p0 >> _SHIFT32) ^ c3 ^ k1, p0 & _MASK32
        k0, k1 = (k0 + _W0) & _MASK32, (k1 + _W1) & _MASK32
    return c0, c1, c2, c3


@_inline
def _unit32(word: Scalar) -> Scalar:
    """rng.symmetric_unit, float32: (2k + 1 - 2^24) 2^-24 with k = word >> 8, in int32 as there."""
    k = np.int32(np.uint32(word) >> np.uint32(8))
    return np.float32(np.int32(2 * k + (1 - (1 << 24)))) * np.float32(2.0**-24)


@_inline
def _unit64(high: Scalar, low: Scalar) -> Scalar:
    """rng.symmetric_unit, float64: (2k + 1 - 2^53) 2^-53 with k = high << 21 | low >> 11."""
    k = (np.int64(high) << 21) | (np.int64(low) >> 11)
    return np.float64(2 * k + (1 - (1 << 53))) * 2.0**-53


@_inline
def _horner(coefficients: np.ndarray, t: Scalar) -> Scalar:
    """special.horner: c[0] t^(n-1) + ... + c[n-1], as ((c[0] t + c[1]) t + ...)."""
    p = coefficients[0]
    for i in range(1, coefficients.shape[0]):
        p = coefficients[i] + p * t
    return p


@_inline
def _log32(q: Scalar) -> Scalar:
    """special.log of a float32 q in [0, 1], bit for bit, splitting q through its bits.

    q = (1 + f) 2^e with 1 + f in [sqrt(1/2), 2 sqrt(1/2)), taken from q's bits (f is exact; q = 0, whose
    exponent field is 0, reads as 2^-127); log q = e ln2 + f - s (f - z R(z)) as there.
    """
    bits = np.float32(q).view(np.int32) + np.int32(_SPLIT_32)
    exponent = np.float32((bits >> 23) - 127)
    f = np.int32((bits & 0x7FFFFF) + _SQRT_HALF_BITS_32).view(np.float32) - np.float32(1.0)
    s = f / (np.float32(2.0) + f)
    z = s * s
    log1p = f - s * (f - z * _horner(_ATANH_SERIES_32, z))
    return exponent * _LN2_32[0] + (exponent * _LN2_32[1] + log1p)


@_inline
def _log64(q: Scalar) -> Scalar:
    """special.log of a float64 q in [0, 1], bit for bit, as _log32 (q = 0 reads as 2^-1023)."""
    bits = np.float64(q).view(np.int64) + np.int64(_SPLIT_64)
    exponent = np.float64((bits >> 52) - 1023)
    f = np.int64((bits & 0xFFFFFFFFFFFFF) + _SQRT_HALF_BITS_64).view(np.float64) - 1.0
    s = f / (2.0 + f)
    z = s * s
    log1p = f - s * (f - z * _horner(_ATANH_SERIES_64, z))
    return exponent * _LN2_64[0] + (exponent * _LN2_64[1] + log1p)


@_inline
def _erfinv_w32(x: Scalar) -> Scalar:
    """special.erfinv's w = -log((1 - x)(1 + x)), float32."""
    return -_log32((np.float32(1.0) - x) * (np.float32(1.0) + x))


@_inline
def _erfinv_p32(w: Scalar) -> Scalar:
    """special.erfinv's p(w), float32: Giles' central branch for w < 5, else the tail."""
    if w < np.float32(5.0):
        return _horner(_SINGLE_CENTRAL, w - np.float32(2.5))
    return _horner(_SINGLE_TAIL, np.sqrt(w) - np.float32(3.0))


@_inline
def _erfinv_w64(x: Scalar) -> Scalar:
    """special.erfinv's w = -log((1 - x)(1 + x)), float64."""
    return -_log64((1.0 - x) * (1.0 + x))


@_inline
def _erfinv_p64(w: Scalar) -> Scalar:
    """special.erfinv's p(w), float64: Giles' branches for w < 6.25, w < 16 and the tail."""
    if w < 6.25:
        return _horner(_DOUBLE_CENTRAL, w - 3.125)
    if w < 16.0:
        return _horner(_DOUBLE_MIDDLE, np.sqrt(w) - 3.25)
    return _horner(_DOUBLE_TAIL, np.sqrt(w) - 5.0)


@_inline
def _erfinv32(tile: np.ndarray, e_mid: Scalar, e_half: Scalar) -> None:
    """tile[i] = special.erfinv(e) = p(w) e with e = e_mid + e_half tile[i], float32, in place.

    rng.transform takes erfinv of x for the normal (e_mid = 0, e_half = 1 give e = x exactly) and of
    the midpoint plus x times the half-width of [erf(a/sqrt2), erf(b/sqrt2)] for the truncated normal.

    A vectorized loop evaluates every branch of p for every element, so a tile in which no w reaches
    the tail branch (w >= 5: beyond 2.93 standard deviations; every tile of the usual normal truncated
    at 2) evaluates the central branch alone.
    """
    w = np.empty(tile.shape[0], np.float32)
    tails = 0
    for i in range(tile.shape[0]):
        tile[i] = e_mid + e_half * tile[i]
        w[i] = _erfinv_w32(tile[i])
        tails += w[i] >= np.float32(5.0)
    if tails == 0:
        for i in range(tile.shape[0]):
            tile[i] = _horner(_SINGLE_CENTRAL, w[i] - np.float32(2.5)) * tile[i]
    else:
        for i in range(tile.shape[0]):
            tile[i] = _erfinv_p32(w[i]) * tile[i]


@_inline
def _erfinv64(tile: np.ndarray, e_mid: Scalar, e_half: Scalar) -> None:
    """_erfinv32 in float64 (the central branch serves w < 6.25: within 3.30 standard deviations)."""
    w = np.empty(tile.shape[0], np.float64)
    tails = 0
    for i in range(tile.shape[0]):
        tile[i] = e_mid + e_half * tile[i]
        w[i] = _erfinv_w64(tile[i])
        tails += w[i] >= 6.25
    if tails == 0:
        for i in range(tile.shape[0]):
            tile[i] = _horner(_DOUBLE_CENTRAL, w[i] - 3.125) * tile[i]
    else:
        for i in range(tile.shape[0]):
            tile[i] = _erfinv_p64(w[i]) * tile[i]


@_inline
def _clip(value: Scalar, low: Scalar, high: Scalar) -> Scalar:
    """np.clip of one value: min(max(value, low), high)."""
    return min(max(value, low), high)


@_inline
def _word_at(word: Scalar, key: np.ndarray) -> Scalar:
    """One word of the stream (its whole block is computed)."""
    return np.uint32(_philox(word >> 2, key[0], key[1])[word & 3])


@_inline
def _block_span(first: int, count: int, per_block: int) -> tuple[int, int]:
    """(head, blocks): of `count` items from item `first`, `per_block` to a block, those before the
    first block boundary and the whole blocks after them (the rest, under a block, is the tail).

    The loops over those blocks write each block's items straight from its four words, with no
    buffer between: LLVM vectorizes them, so one iteration computes 8 independent blocks (AVX-512;
    4 with AVX2) whose multiplies overlap, and out-of-order execution overlaps the iterations.
    """
    head = min((per_block - first % per_block) % per_block, count)
    return head, (count - head) // per_block


@_inline
def _units32(tile: np.ndarray, element: int, step: int, key: np.ndarray) -> None:
    """tile[i] = float32 x of element j = element + i step, from word j."""
    if step != 1:
        for i in range(tile.shape[0]):
            tile[i] = _unit32(_word_at(element + i * step, key))
        return
    head, blocks = _block_span(element, tile.shape[0], 4)
    first_block, key0, key1 = (element + head) >> 2, key[0], key[1]
    for j in range(blocks):
        c0, c1, c2, c3 = _philox(first_block + j, key0, key1)
        at = head + 4 * j
        tile[at], tile[at + 1], tile[at + 2], tile[at + 3] = _unit32(c0), _unit32(c1), _unit32(c2), _unit32(c3)
    for i in range(head):
        tile[i] = _unit32(_word_at(element + i, key))
    for i in range(head + 4 * blocks, tile.shape[0]):
        tile[i] = _unit32(_word_at(element + i, key))


@_inline
def _units64(tile: np.ndarray, element: int, step: int, key: np.ndarray) -> None:
    """tile[i] = float64 x of element j = element + i step, from words 2j and 2j + 1."""
    if step != 1:
        for i in range(tile.shape[0]):
            word = 2 * (element + i * step)
            tile[i] = _unit64(_word_at(word, key), _word_at(word + 1, key))
        return
    head, blocks = _block_span(element, tile.shape[0], 2)
    first_block, key0, key1 = (element + head) >> 1, key[0], key[1]
    for j in range(blocks):
        c0, c1, c2, c3 = _philox(first_block + j, key0, key1)
        at = head + 2 * j
        tile[at], tile[at + 1] = _unit64(c0, c1), _unit64(c2, c3)
    for i in range(head):
        tile[i] = _unit64(_word_at(2 * (element + i), key), _word_at(2 * (element + i) + 1, key))
    for i in range(head + 2 * blocks, tile.shape[0]):
        tile[i] = _unit64(_word_at(2 * (element + i), key), _word_at(2 * (element + i) + 1, key))


@_inline
def _finish(kind: int, params: np.ndarray, tile: np.ndarray) -> None:
    """rng.transform from x (uniform) or from erfinv's value (normal, truncated), in place.

    uniform: clip(mid + half x, low, high), params = (mid, half, low, high);
    normal: mean + (stddev sqrt2) e, params = (mean, stddev sqrt2);
    truncated: clip(mean + stddev clip(sqrt2 e, a, b), low, high),
    params = (e_mid, e_half, sqrt2, a, b, mean, stddev, low, high).
    """
    if kind == UNIFORM:
        mid, half, low, high = params[0], params[1], params[2], params[3]
        for i in range(tile.shape[0]):
            tile[i] = _clip(mid + half * tile[i], low, high)
    elif kind == NORMAL:
        mean, scale = params[0], params[1]
        for i in range(tile.shape[0]):
            tile[i] = mean + scale * tile[i]
    else:
        sqrt2, a, b = params[2], params[3], params[4]
        mean, stddev, low, high = params[5], params[6], params[7], params[8]
        for i in range(tile.shape[0]):
            tile[i] = _clip(mean + stddev * _clip(sqrt2 * tile[i], a, b), low, high)


@_inline
def _samples32(tile: np.ndarray, element: int, step: int, key: np.ndarray, kind: int, params: np.ndarray) -> None:
    """tile[i] = float32 sample of element element + i step of the stream `key`."""
    _units32(tile, element, step, key)
    if kind == NORMAL:
        _erfinv32(tile, np.float32(0.0), np.float32(1.0))
    elif kind == TRUNCATED:
        _erfinv32(tile, params[0], params[1])
    _finish(kind, params, tile)


@_inline
def _samples64(tile: np.ndarray, element: int, step: int, key: np.ndarray, kind: int, params: np.ndarray) -> None:
    """_samples32 in float64."""
    _units64(tile, element, step, key)
    if kind == NORMAL:
        _erfinv64(tile, 0.0, 1.0)
    elif kind == TRUNCATED:
        _erfinv64(tile, params[0], params[1])
    _finish(kind, params, tile)


@Kernel
def _fill32(
    out: np.ndarray, starts: np.ndarray, length: int, step: int, key: np.ndarray, kind: int, params: np.ndarray
) -> None:
    """out[r length + p] = float32 sample of element starts[r] + p step, tile by tile in parallel."""
    tiles = (length + TILE - 1) // TILE
    for item in numba.prange(starts.shape[0] * tiles):
        run, first = item // tiles, (item % tiles) * TILE
        tile = out[run * length + first : run * length + min(first + TILE, length)]
        _samples32(tile, starts[run] + first * step, step, key, kind, params)


@Kernel
def _fill64(
    out: np.ndarray, starts: np.ndarray, length: int, step: int, key: np.ndarray, kind: int, params: np.ndarray
) -> None:
    """out[r length + p] = float64 sample of element starts[r] + p step, tile by tile in parallel."""
    tiles = (length + TILE - 1) // TILE
    for item in numba.prange(starts.shape[0] * tiles):
        run, first = item // tiles, (item % tiles) * TILE
        tile = out[run * length + first : run * length + min(first + TILE, length)]
        _samples64(tile, starts[run] + first * step, step, key, kind, params)


@Kernel
def _fill_many32(out: np.ndarray, offsets: np.ndarray, keys: np.ndarray, kind: int, params: np.ndarray) -> None:
    """out[offsets[r] + p] = float32 sample of element p of the stream keys[r], for p < offsets[r + 1] - offsets[r]."""
    for run in numba.prange(offsets.shape[0] - 1):
        for first in range(offsets[run], offsets[run + 1], TILE):
            tile = out[first : min(first + TILE, offsets[run + 1])]
            _samples32(tile, first - offsets[run], 1, keys[run], kind, params)


@Kernel
def _fill_many64(out: np.ndarray, offsets: np.ndarray, keys: np.ndarray, kind: int, params: np.ndarray) -> None:
    """_fill_many32 in float64."""
    for run in numba.prange(offsets.shape[0] - 1):
        for first in range(offsets[run], offsets[run + 1], TILE):
            tile = out[first : min(first + TILE, offsets[run + 1])]
            _samples64(tile, first - offsets[run], 1, keys[run], kind, params)


@Kernel
def _fill_words(out: np.ndarray, start: int, key: np.ndarray) -> None:
    """out[i] = word start + i of the stream, tile by tile in parallel."""
    for item in numba.prange((out.shape[0] + TILE - 1) // TILE):
        first = item * TILE
        tile = out[first : min(first + TILE, out.shape[0])]
        head, blocks = _block_span(start + first, tile.shape[0], 4)
        first_block, key0, key1 = (start + first + head) >> 2, key[0], key[1]
        for j in range(blocks):
            at = head + 4 * j
            tile[at], tile[at + 1], tile[at + 2], tile[at + 3] = _philox(first_block + j, key0, key1)
        for i in range(head):
            tile[i] = _word_at(start + first + i, key)
        for i in range(head + 4 * blocks, tile.shape[0]):
            tile[i] = _word_at(start + first + i, key)


# The fill with moments measures each BLOCK of the values it has just written, while the tile is in cache,
# with fused_moments' helpers (inlined: an edit there is seen only once this file changes too, or the
# cache folder is emptied); its work items are whole blocks, so the blocks start where `moments` starts them.
_MOMENT_TILE = max(1, TILE // BLOCK) * BLOCK


@Kernel
def _fill_moments32(
    out: np.ndarray, first: int, key: np.ndarray, kind: int, params: np.ndarray, blocks: np.ndarray
) -> tuple[float, float]:
    """out[p] = float32 sample of element first + p; returns fused_moments.moments(out)'s (mean, m2)."""
    n = out.shape[0]
    for item in numba.prange((n + _MOMENT_TILE - 1) // _MOMENT_TILE):
        start, stop = item * _MOMENT_TILE, min((item + 1) * _MOMENT_TILE, n)
        _samples32(out[start:stop], first + start, 1, key, kind, params)
        for block in range(start // BLOCK, (stop + BLOCK - 1) // BLOCK):
            low = block * BLOCK
            blocks[block, 0], blocks[block, 1] = block_moments(out, NO_TABLE, low, min(low + BLOCK, n))
    return merged_blocks(blocks, n)


@Kernel
def _fill_moments64(
    out: np.ndarray, first: int, key: np.ndarray, kind: int, params: np.ndarray, blocks: np.ndarray
) -> tuple[float, float]:
    """_fill_moments32 in float64."""
    n = out.shape[0]
    for item in numba.prange((n + _MOMENT_TILE - 1) // _MOMENT_TILE):
        start, stop = item * _MOMENT_TILE, min((item + 1) * _MOMENT_TILE, n)
        _samples64(out[start:stop], first + start, 1, key, kind, params)
        for block in range(start // BLOCK, (stop + BLOCK - 1) // BLOCK):
            low = block * BLOCK
            blocks[block, 0], blocks[block, 1] = block_moments(out, NO_TABLE, low, min(low + BLOCK, n))
    return merged_blocks(blocks, n)


_WHOLE = np.zeros(1, dtype=np.int64)  # the run starts of a whole tensor: one run, from element 0


def parameters(dist: Distribution, dtype: str) -> tuple[int, np.ndarray]:
    """rng.transform_constants as an array in the compute precision of `dtype`."""
    kind, constants = rng.transform_constants(dist, dtype)
    return kind, np.array(constants, dtype=compute_dtype(dtype))


def _fill(dist: Distribution, key: rng.Key, starts: np.ndarray, length: int, step: int, dtype: str) -> np.ndarray:
    """Samples of elements starts[r] + p step for p < length, as a flat array in the compute precision."""
    out = np.empty(starts.shape[0] * length, dtype=compute_dtype(dtype))
    _fill_into(out, dist, key, starts, length, step, dtype)
    return out


def _fill_into(
    out: np.ndarray, dist: Distribution, key: rng.Key, starts: np.ndarray, length: int, step: int, dtype: str
) -> None:
    """`_fill`'s samples written into `out`, a flat array of the compute precision of `dtype`."""
    kind, params = parameters(dist, dtype)
    kernel = _fill64 if out.dtype == np.float64 else _fill32
    kernel(out.shape[0], out, starts, length, step, np.array(key, dtype=np.uint64), kind, params)


def words(key: rng.Key, start: int, count: int) -> np.ndarray:
    """rng.words_range with NumPy: words start .. start + count - 1 of the main stream, as uint32."""
    out = np.empty(count, dtype=np.uint32)
    _fill_words(count, out, start, np.array(key, dtype=np.uint64))
    return out


def draw(dist: Distribution, key: rng.Key, shape: tuple[int, ...], dtype: str) -> np.ndarray:
    """rng.draw with NumPy: the whole tensor, in the compute precision of `dtype`."""
    return _fill(dist, key, _WHOLE, math.prod(shape), 1, dtype).reshape(shape)


def draw_many(
    dist: Distribution, keys: Sequence[rng.Key], shapes: Sequence[tuple[int, ...]], dtype: str
) -> list[np.ndarray]:
    """`draw` of each (key, shape) pair, all in one kernel call, in the compute precision of `dtype`.

    The tensors are views of one array, one after another.
    """
    kind, params = parameters(dist, dtype)
    offsets = np.zeros(len(shapes) + 1, dtype=np.int64)
    np.cumsum(np.fromiter(map(math.prod, shapes), dtype=np.int64, count=len(shapes)), out=offsets[1:])
    out = np.empty(int(offsets[-1]), dtype=compute_dtype(dtype))
    kernel = _fill_many64 if out.dtype == np.float64 else _fill_many32
    kernel(out.shape[0], out, offsets, np.asarray(keys, dtype=np.uint64).reshape(-1, 2), kind, params)
    return _views(out, shapes, offsets.tolist())


def _views(flat: np.ndarray, shapes: Sequence[tuple[int, ...]], bounds: list[int]) -> list[np.ndarray]:
    """flat[bounds[i] : bounds[i + 1]].reshape(shapes[i]) for each i; a run of one shape (not ()) is cut as the
    rows of one reshape, which makes its views in C."""
    views: list[np.ndarray] = []
    first = 0
    for end in range(1, len(shapes) + 1):
        if end < len(shapes) and shapes[end] == shapes[first]:
            continue
        shape = shapes[first]
        if shape:
            views.extend(flat[bounds[first] : bounds[end]].reshape(end - first, *shape))
        else:  # rows of a (count,) array would be NumPy scalars, not 0-d arrays
            views.extend(flat[bounds[run] : bounds[run + 1]].reshape(()) for run in range(first, end))
        first = end
    return views


def draw_into(out: np.ndarray, dist: Distribution, key: rng.Key) -> None:
    """`draw` of out's shape and dtype written into `out`, a C-contiguous float32 or float64 array."""
    if out.dtype.name not in ("float32", "float64") or not out.flags.c_contiguous or not out.flags.writeable:
        raise ValueError(f"draw_into writes a writeable C-contiguous float32 or float64 array; got {out.dtype.name}")
    _fill_into(out.reshape(-1), dist, key, _WHOLE, out.size, 1, out.dtype.name)


def fill_with_moments(out: np.ndarray, dist: Distribution, key: rng.Key, first: int) -> tuple[int, float, float]:
    """Elements first .. first + out.size - 1 of `dist`'s stream `key` written into `out`, with their moments.

    `out` is a flat, writeable, C-contiguous float32 or float64 array; its values are `draw`'s elements
    of those indices in that dtype, bit for bit, and (count, mean, m2) is what
    ``fused_moments.moments(out)`` gives, bit for bit (its error bound), computed in the same pass:
    each block is measured while it is in cache.
    """
    if out.dtype.name not in ("float32", "float64") or out.ndim != 1 or not out.flags.c_contiguous:
        raise ValueError(f"fill_with_moments writes a flat C-contiguous float32 or float64 array; got {out.dtype.name}")
    if not out.flags.writeable:
        raise ValueError("fill_with_moments writes a writeable array; got a read-only one")
    if out.size == 0:
        return 0, 0.0, 0.0
    kind, params = parameters(dist, out.dtype.name)
    kernel = _fill_moments64 if out.dtype == np.float64 else _fill_moments32
    blocks = np.empty(((out.size + BLOCK - 1) // BLOCK, 2))
    mean, m2 = kernel(out.size, out, first, np.array(key, dtype=np.uint64), kind, params, blocks)
    return out.size, float(mean), float(m2)


def draw_slice(
    dist: Distribution, key: rng.Key, shape: tuple[int, ...], index: tuple[slice, ...], dtype: str
) -> np.ndarray:
    """rng.draw_slice with NumPy: tensor[index], drawn row by row of the last axis."""
    index = rng.full_index(shape, index)
    if not shape:
        return draw(dist, key, shape, dtype)
    ranges = [range(*part.indices(size)) for size, part in zip(shape, index, strict=True)]
    sliced_shape = tuple(len(r) for r in ranges)
    if 0 in sliced_shape:
        return np.empty(sliced_shape, dtype=compute_dtype(dtype))
    last = ranges[-1]
    row_starts = (*index[:-1], slice(last.start, last.start + 1))
    starts = rng.flat_indices(shape, row_starts, np).reshape(-1).astype(np.int64)
    return _fill(dist, key, starts, len(last), last.step, dtype).reshape(sliced_shape)
