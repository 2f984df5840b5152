"""initreg's stream on ``jax.numpy``, traced by XLA: the key derivation, Philox words and samples under ``jit``.

The same values as initreg.rng (docs/stream.md), computed from a JAX key's data as traced uint32 arrays, so
that ``interop.jax.kernel_init`` runs on the device, inside ``jit``, ``vmap`` and sharded outputs, without a
host callback. JAX has no 64-bit integers unless x64 is enabled, so everything is written in uint32:

- Key derivation (docs/stream.md, "Key derivation"): blake2b-64 of b"initreg/v1\\0" + str(seed) + b"\\0" +
  path, with the seed the key's data read big-endian. Its decimal digits come from long division of the
  seed's 16-bit limbs by 10; the message is laid out with the digit count traced; BLAKE2b (RFC 7693) runs
  on 64-bit words held as (low, high) uint32 pairs, four G functions at once (a column or a diagonal).
- Philox4x32-10 (docs/stream.md, "Counters and words"): each 32 x 32 -> 64-bit product is taken from four
  16 x 16-bit ones; the block counter j is the pair (j mod 2^32, j div 2^32).
- Samples: x = 2u - 1 exactly as in rng.symmetric_unit, then rng.transform and special.erfinv with
  ``jax.numpy`` as the namespace. Philox words and uniforms are bit-identical to the NumPy reference;
  normal and truncated normal values differ from it by XLA's log only (a few ulp, see docs/interop.md).
"""

from __future__ import annotations

import math
from functools import partial
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from initreg import rng
from initreg.distributions import Distribution
from initreg.dtypes import compute_dtype
from initreg.errors import InvalidArgumentError

Array = Any
Pair = tuple[Array, Array]  # a 64-bit value (or array of them) as (low, high) uint32 halves

U32 = np.uint32
KEY_PREFIX = b"initreg/v1\0"
BLOCK_BYTES = 128
BLAKE2B_IV = (
    0x6A09E667F3BCC908, 0xBB67AE8584CAA73B, 0x3C6EF372FE94F82B, 0xA54FF53A5F1D36F1,
    0x510E527FADE682D1, 0x9B05688C2B3E6C1F, 0x1F83D9ABFB41BD6B, 0x5BE0CD19137E2179,
)  # fmt: skip
BLAKE2B_SIGMA = np.array(
    [
        [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15],
        [14, 10, 4, 8, 9, 15, 13, 6, 1, 12, 0, 2, 11, 7, 5, 3],
        [11, 8, 12, 0, 5, 2, 15, 13, 10, 14, 3, 6, 7, 1, 9, 4],
        [7, 9, 3, 1, 13, 12, 11, 14, 2, 6, 5, 10, 4, 0, 15, 8],
        [9, 0, 5, 7, 2, 4, 10, 15, 14, 1, 11, 12, 6, 8, 3, 13],
        [2, 12, 6, 10, 0, 11, 8, 3, 4, 13, 7, 5, 15, 14, 1, 9],
        [12, 5, 1, 15, 14, 13, 4, 10, 0, 7, 6, 3, 9, 2, 8, 11],
        [13, 11, 7, 14, 12, 1, 3, 9, 5, 0, 15, 4, 8, 6, 2, 10],
        [6, 15, 14, 9, 11, 3, 0, 8, 12, 2, 13, 7, 1, 4, 10, 5],
        [10, 2, 8, 4, 7, 6, 1, 5, 15, 11, 9, 14, 3, 12, 13, 0],
    ],
    dtype=np.int32,
)
BLAKE2B_ROUNDS = 12
DIGEST_BYTES = 8
MAX_ELEMENTS = 2**32  # elements one draw may hold: the position within it is a uint32 iota


def _pair_constants(values: Any) -> Pair:
    """64-bit Python ints as (low, high) uint32 arrays."""
    array = np.asarray(values, dtype=np.uint64)
    return jnp.asarray((array & 0xFFFFFFFF).astype(U32)), jnp.asarray((array >> 32).astype(U32))


def _add(a: Pair, b: Pair) -> Pair:
    """a + b mod 2^64."""
    low = a[0] + b[0]
    return low, a[1] + b[1] + (low < a[0]).astype(U32)


def _xor(a: Pair, b: Pair) -> Pair:
    return a[0] ^ b[0], a[1] ^ b[1]


def _rotate_right(a: Pair, n: int) -> Pair:
    """a rotated right by n bits (0 < n < 64)."""
    low, high = (a[1], a[0]) if n >= 32 else a
    n %= 32
    if n == 0:
        return low, high
    return (low >> U32(n)) | (high << U32(32 - n)), (high >> U32(n)) | (low << U32(32 - n))


def _mix(a: Pair, b: Pair, c: Pair, d: Pair, x: Pair, y: Pair) -> tuple[Pair, Pair, Pair, Pair]:
    """BLAKE2b's G function (RFC 7693, 3.1), on arrays of four lanes (a column or a diagonal each)."""
    a = _add(_add(a, b), x)
    d = _rotate_right(_xor(d, a), 32)
    c = _add(c, d)
    b = _rotate_right(_xor(b, c), 24)
    a = _add(_add(a, b), y)
    d = _rotate_right(_xor(d, a), 16)
    c = _add(c, d)
    b = _rotate_right(_xor(b, c), 63)
    return a, b, c, d


def _roll(a: Pair, shift: int) -> Pair:
    return jnp.roll(a[0], -shift, axis=-1), jnp.roll(a[1], -shift, axis=-1)


def _take(a: Pair, columns: Array) -> Pair:
    return jnp.take(a[0], columns, axis=-1), jnp.take(a[1], columns, axis=-1)


def _compress(state: Pair, message: Pair, byte_count: Array, last: Array) -> Pair:
    """BLAKE2b's compression F (RFC 7693, 3.2) of one 128-byte block: state (8 words), message (16 words).

    `byte_count` (uint32: the bytes hashed so far, this block included) and `last` (bool) may be traced.
    Row-wise: v = (state, IV) as four rows of four words, v[12] ^= count, v[14] ^= all ones when last.
    """
    iv_low, iv_high = _pair_constants(BLAKE2B_IV)
    flag = jnp.where(last, U32(0xFFFFFFFF), U32(0))
    zero = jnp.zeros((), U32)
    counter_low = jnp.stack([jnp.asarray(byte_count, U32), zero, flag, zero])
    counter_high = jnp.stack([zero, zero, flag, zero])
    rows = (
        (state[0][:4], state[1][:4]),
        (state[0][4:], state[1][4:]),
        (iv_low[:4], iv_high[:4]),
        (iv_low[4:] ^ counter_low, iv_high[4:] ^ counter_high),
    )
    scheduled = _take(message, jnp.asarray(BLAKE2B_SIGMA))  # each round's message words, in order

    def half_round(step: Array, rows: tuple[Pair, Pair, Pair, Pair]) -> tuple[Pair, Pair, Pair, Pair]:
        """G on the four columns (even steps), then on the four diagonals (odd steps).

        After a column step the rows b, c, d turn left by 1, 2, 3 words, so that the diagonals are columns;
        after a diagonal step they turn back.
        """
        a, b, c, d = rows
        low, high = (jax.lax.dynamic_index_in_dim(half, (step // 2) % 10, keepdims=False) for half in scheduled)
        part = 8 * (step % 2)
        words = [(jax.lax.dynamic_slice_in_dim(half, part, 8)) for half in (low, high)]
        a, b, c, d = _mix(a, b, c, d, (words[0][0::2], words[1][0::2]), (words[0][1::2], words[1][1::2]))
        turn = 1 - 2 * (step % 2)
        return a, _roll(b, turn), _roll(c, 2 * turn), _roll(d, 3 * turn)

    a, b, c, d = jax.lax.fori_loop(0, 2 * BLAKE2B_ROUNDS, half_round, rows)
    mixed = (jnp.concatenate([a[0] ^ c[0], b[0] ^ d[0]]), jnp.concatenate([a[1] ^ c[1], b[1] ^ d[1]]))
    return _xor(state, mixed)


def seed_digits(words: Array) -> tuple[Array, Array]:
    """(the decimal digits of the seed, least significant first, as int32; how many str(seed) has).

    The seed is the uint32 `words` read big-endian; its digits come from long division by 10 of its
    16-bit limbs (each partial remainder times 2^16 plus a limb stays below 10 * 2^16).
    """
    count = words.shape[-1]
    limbs = jnp.stack([words >> U32(16), words & U32(0xFFFF)], axis=-1).reshape(2 * count)
    most = len(str(2 ** (32 * count) - 1))

    def next_digit(at: int, carried: tuple[Array, Array]) -> tuple[Array, Array]:
        limbs, digits = carried
        quotients, remainder = [], U32(0)
        for limb in range(2 * count):
            partial = remainder * U32(1 << 16) + limbs[limb]
            quotients.append(partial // U32(10))
            remainder = partial % U32(10)
        return jnp.stack(quotients), digits.at[at].set(remainder)

    _, digits = jax.lax.fori_loop(0, most, next_digit, (limbs, jnp.zeros(most, U32)))
    stacked = digits.astype(jnp.int32)
    positions = jnp.arange(1, most + 1, dtype=jnp.int32)
    length = jnp.maximum(1, jnp.max(jnp.where(stacked > 0, positions, 0)))
    return stacked, length


def derive_key(words: Array, path: str) -> tuple[Array, Array]:
    """rng.derive_key(seed, path) for the seed of one key's uint32 `words` (read big-endian), traced.

    The message b"initreg/v1\\0" + str(seed) + b"\\0" + path has a traced length (the seed's digit count),
    so every block it may span is hashed and the state after its real last block is kept.
    """
    digits, length = seed_digits(words)
    tail = b"\0" + path.encode()
    shortest, longest = len(KEY_PREFIX) + 1 + len(tail), len(KEY_PREFIX) + digits.shape[0] + len(tail)
    block_count = -(-longest // BLOCK_BYTES)
    position = jnp.arange(block_count * BLOCK_BYTES, dtype=jnp.int32)
    known = np.frombuffer(KEY_PREFIX, np.uint8).astype(np.int32)
    after_digits = position - len(KEY_PREFIX) - length
    digit_byte = 48 + digits[jnp.clip(length - 1 - (position - len(KEY_PREFIX)), 0, digits.shape[0] - 1)]
    tail_byte = jnp.asarray(np.frombuffer(tail, np.uint8).astype(np.int32))[jnp.clip(after_digits, 0, len(tail) - 1)]
    message = jnp.where(
        position < len(KEY_PREFIX),
        jnp.asarray(np.pad(known, (0, block_count * BLOCK_BYTES - len(known))))[position],
        jnp.where(after_digits < 0, digit_byte, jnp.where(after_digits < len(tail), tail_byte, 0)),
    ).astype(U32)
    grouped = message.reshape(block_count * 16, 2, 4) << jnp.asarray([0, 8, 16, 24], U32)
    low, high = jnp.bitwise_or.reduce(grouped[:, 0], axis=-1), jnp.bitwise_or.reduce(grouped[:, 1], axis=-1)
    total = (len(KEY_PREFIX) + len(tail) + length).astype(U32)
    last_block = (total - U32(1)) // U32(BLOCK_BYTES)
    iv_low, iv_high = _pair_constants(BLAKE2B_IV)
    state = (iv_low.at[0].set(iv_low[0] ^ U32(0x01010000 | DIGEST_BYTES)), iv_high)
    for block in range(block_count):
        words_of_block = (low[16 * block : 16 * block + 16], high[16 * block : 16 * block + 16])
        byte_count = jnp.minimum(total, U32(BLOCK_BYTES * (block + 1)))
        hashed = _compress(state, words_of_block, byte_count, last_block == block)
        if block * BLOCK_BYTES < shortest:  # a block every seed's message reaches
            state = hashed
        else:
            keep = block <= last_block
            state = (jnp.where(keep, hashed[0], state[0]), jnp.where(keep, hashed[1], state[1]))
    return state[0][0], state[1][0]


def _mul_hi_lo(a: Array, multiplier: int) -> tuple[Array, Array]:
    """(hi, lo) 32-bit halves of the 64-bit product a M, for uint32 `a` and a constant M < 2^32.

    From the four 16 x 16-bit products (each below 2^32): hi = ah Mh + (ah Ml >> 16) + (al Mh >> 16) +
    carry, where carry = ((al Ml >> 16) + (ah Ml mod 2^16) + (al Mh mod 2^16)) >> 16; lo wraps.
    """
    a_low, a_high = a & U32(0xFFFF), a >> U32(16)
    m_low, m_high = U32(multiplier & 0xFFFF), U32(multiplier >> 16)
    low_low, low_high, high_low = a_low * m_low, a_low * m_high, a_high * m_low
    middle = (low_low >> U32(16)) + (low_high & U32(0xFFFF)) + (high_low & U32(0xFFFF))
    high = a_high * m_high + (low_high >> U32(16)) + (high_low >> U32(16)) + (middle >> U32(16))
    return high, a * U32(multiplier)


def philox4x32(counter: tuple[Array, Array, Array, Array], key: tuple[Array, Array]) -> tuple[Array, ...]:
    """Philox4x32-10 on uint32 lanes: the rounds of rng.philox4x32, with its key bumps wrapping in uint32."""
    c0, c1, c2, c3 = counter
    k0, k1 = key
    for _ in range(rng.PHILOX_ROUNDS):
        hi0, lo0 = _mul_hi_lo(c0, rng.PHILOX_M0)
        hi1, lo1 = _mul_hi_lo(c2, rng.PHILOX_M1)
        c0, c1, c2, c3 = hi1 ^ c1 ^ k0, lo1, hi0 ^ c3 ^ k1, lo0
        k0, k1 = k0 + U32(rng.PHILOX_W0), k1 + U32(rng.PHILOX_W1)
    return c0, c1, c2, c3


def element_words(
    key: tuple[Array, Array], start: int, count: int, precision: str, stream: int = rng.MAIN_STREAM
) -> Array:
    """The words of elements start .. start+count-1 (start: any int below 2^64), as rng._element_words gives them.

    float32: word e of the stream for element e, shape (count,); float64: words 2e and 2e+1, shape (count, 2).
    Each element computes its own block (e div 4, or e div 2 for float64) and picks its lanes: XLA then
    fuses the whole draw into one vectorized loop, where interleaving the four lanes of each block would not
    vectorize. The 64-bit element index is the pair (start mod 2^32 + i, start div 2^32 + carry).
    """
    if count > MAX_ELEMENTS:
        raise InvalidArgumentError(f"a draw of {count} elements is too large; valid: at most 2^32 elements per draw")
    position = jnp.arange(count, dtype=U32)
    first_low = U32(start & 0xFFFFFFFF)
    low = first_low + position
    high = U32(start >> 32) + (low < first_low).astype(U32)
    shift = 2 if precision == "float32" else 1
    block = (low >> U32(shift)) | (high << U32(32 - shift)), high >> U32(shift)
    k0, k1 = (jnp.asarray(word, U32) for word in key)
    lanes = philox4x32((block[0], block[1], jnp.full_like(low, U32(stream)), jnp.zeros_like(low)), (k0, k1))
    if precision == "float32":
        lane = low & U32(3)
        return jnp.where(lane < 2, jnp.where(lane == 0, lanes[0], lanes[1]), jnp.where(lane == 2, lanes[2], lanes[3]))
    odd = (low & U32(1)) == 1
    return jnp.stack([jnp.where(odd, lanes[2], lanes[0]), jnp.where(odd, lanes[3], lanes[1])], axis=-1)


def words_range(key: tuple[Array, Array], start: int, count: int, stream: int = rng.MAIN_STREAM) -> Array:
    """rng.words_range: words start .. start+count-1 of the stream, as uint32."""
    return element_words(key, start, count, "float32", stream)


def symmetric_unit(words: Array, precision: str) -> Array:
    """rng.symmetric_unit on uint32 words: x = (2k + 1 - 2^m) 2^-m, exact.

    float32: k = w >> 8 and 2k + 1 - 2^24 in int32. float64 (x64 enabled): rng.symmetric_unit itself, whose
    int64 arithmetic JAX then has; `words` holds each element's two words in a last axis.
    """
    if precision == "float64":
        return rng.symmetric_unit(words, precision, jnp)
    k = (words >> U32(8)).astype(jnp.int32)
    return (2 * k + (1 - (1 << 24))).astype(jnp.float32) * np.float32(2.0**-24)


def check_dtype_available(dtype: str) -> None:
    """Raises for a 64-bit dtype (float64, complex128) unless JAX's 64-bit mode is on."""
    if dtype in ("float64", "complex128") and jax.dtypes.canonicalize_dtype(np.float64) != np.float64:
        raise InvalidArgumentError(
            f"dtype {dtype!r} needs JAX's 64-bit mode (jax.config.update('jax_enable_x64', True)); "
            "valid without it: float32, float16, bfloat16, complex64"
        )


@partial(jax.jit, static_argnums=(0, 2, 3, 4))
def draw(
    dist: Distribution, key: tuple[Array, Array], shape: tuple[int, ...], dtype: str, stream: int = rng.MAIN_STREAM
) -> Array:
    """rng.draw of `dist` for a whole tensor of `shape`, in `dtype` (a JAX dtype name), from the Philox `key`.

    Jitted with all but the key static, so eager calls compile once per distribution, shape and dtype.
    float16 and bfloat16 are computed in float32 and cast, as in the reference; float64 needs x64 enabled.
    """
    precision = compute_dtype(dtype)
    check_dtype_available(dtype)
    words = element_words(key, 0, math.prod(shape), precision, stream)
    values = rng.transform(dist, symmetric_unit(words, precision), dtype, jnp)
    return values.astype(jnp.dtype(dtype)).reshape(shape)
