"""erfinv by Giles, "Approximating the erfinv function" (GPU Computing Gems, 2010), and the log it takes.

The single-precision version (two branches) serves float32, the double-precision one (three branches)
float64. Both take w = -log((1 - x)(1 + x)) and return x p(w); written against an array namespace.

log is written out (`log`), not the namespace's: the fused CPU kernels (``initreg.backends.fused_cpu``)
cannot call NumPy's, so they compute this same log from the same constants, operation for operation,
and the reference and the kernels give the same bits.
"""

from __future__ import annotations

import struct
from collections.abc import Sequence
from typing import Any

Array = Any
Namespace = Any

# log(1 + f) = 2 atanh(s) = f - s (f - R), s = f / (2 + f), R = sum_{n >= 1} 2 s^2n / (2n + 1), Horner's
# coefficients 2/(2n + 1) highest first; with 1 + f in [sqrt(1/2), sqrt(2)), s^2 < 0.0295 and the terms
# up to n leave a relative error below 0.0295^(n + 1) / (2n + 3): 2e-9 for n = 4 (float32), 2e-17 for n = 9.
ATANH_SERIES_64 = tuple(2.0 / n for n in range(19, 2, -2))  # 2/19, 2/17, ..., 2/3
ATANH_SERIES_32 = ATANH_SERIES_64[-4:]  # 2/9, 2/7, 2/5, 2/3
# ln 2 = high + low with `high` short enough that exponent * high is exact (Cephes' and fdlibm's splits).
LN2_32 = 0.693359375, -2.12194440e-4
LN2_64 = 6.93147180369123816490e-01, 1.90821492927058770002e-10
# Bit patterns of 1 and of sqrt(1/2) rounded to nearest: q = (1 + f) 2^e is split with 1 + f in
# [sqrt(1/2), 2 sqrt(1/2)), with sqrt(1/2) as rounded here.
ONE_BITS_32, SQRT_HALF_BITS_32 = 0x3F800000, 0x3F3504F3
ONE_BITS_64, SQRT_HALF_BITS_64 = 0x3FF0000000000000, 0x3FE6A09E667F3BCD
SQRT_HALF_32 = struct.unpack("<f", struct.pack("<I", SQRT_HALF_BITS_32))[0]
SQRT_HALF_64 = struct.unpack("<d", struct.pack("<Q", SQRT_HALF_BITS_64))[0]
# The exponents of the smallest normal floats less one: the bit split reads q = 0 as 2^MIN_EXPONENT.
MIN_EXPONENT_32, MIN_EXPONENT_64 = -127, -1023

# Horner coefficients, highest degree first.
SINGLE_CENTRAL = (
    2.81022636e-08, 3.43273939e-07, -3.5233877e-06, -4.39150654e-06, 0.00021858087,
    -0.00125372503, -0.00417768164, 0.246640727, 1.50140941,
)  # fmt: skip
SINGLE_TAIL = (
    -0.000200214257, 0.000100950558, 0.00134934322, -0.00367342844, 0.00573950773,
    -0.0076224613, 0.00943887047, 1.00167406, 2.83297682,
)  # fmt: skip
DOUBLE_CENTRAL = (
    -3.6444120640178196996e-21, -1.685059138182016589e-19, 1.2858480715256400167e-18,
    1.115787767802518096e-17, -1.333171662854620906e-16, 2.0972767875968561637e-17,
    6.6376381343583238325e-15, -4.0545662729752068639e-14, -8.1519341976054721522e-14,
    2.6335093153082322977e-12, -1.2975133253453532498e-11, -5.4154120542946279317e-11,
    1.051212273321532285e-09, -4.1126339803469836976e-09, -2.9070369957882005086e-08,
    4.2347877827932403518e-07, -1.3654692000834678645e-06, -1.3882523362786468719e-05,
    0.0001867342080340571352, -0.00074070253416626697512, -0.0060336708714301490533,
    0.24015818242558961693, 1.6536545626831027356,
)  # fmt: skip
DOUBLE_MIDDLE = (
    2.2137376921775787049e-09, 9.0756561938885390979e-08, -2.7517406297064545428e-07,
    1.8239629214389227755e-08, 1.5027403968909827627e-06, -4.013867526981545969e-06,
    2.9234449089955446044e-06, 1.2475304481671778723e-05, -4.7318229009055733981e-05,
    6.8284851459573175448e-05, 2.4031110387097893999e-05, -0.0003550375203628474796,
    0.00095328937973738049703, -0.0016882755560235047313, 0.0024914420961078508066,
    -0.0037512085075692412107, 0.005370914553590063617, 1.0052589676941592334,
    3.0838856104922207635,
)  # fmt: skip
DOUBLE_TAIL = (
    -2.7109920616438573243e-11, -2.5556418169965252055e-10, 1.5076572693500548083e-09,
    -3.7894654401267369937e-09, 7.6157012080783393804e-09, -1.4960026627149240478e-08,
    2.9147953450901080826e-08, -6.7711997758452339498e-08, 2.2900482228026654717e-07,
    -9.9298272942317002539e-07, 4.5260625972231537039e-06, -1.9681778105531670567e-05,
    7.5995277030017761139e-05, -0.00021503011930044477347, -0.00013871931833623122026,
    1.0103004648645343977, 4.8499064014085844221,
)  # fmt: skip


def horner(coefficients: Sequence[float], t: Array, xp: Namespace) -> Array:
    """c[0] t^(n-1) + ... + c[n-1], evaluated as ((c[0] t + c[1]) t + ...)."""
    p = xp.full_like(t, coefficients[0])
    for c in coefficients[1:]:
        p = c + p * t
    return p


def log(q: Array, xp: Namespace) -> Array:
    """log q, in the precision of q (float32: within 1 ulp; float64: 2), for q = 0 or a normal float in (0, 1].

    A draw's q = (1 - x)(1 + x) is one of those (at least 2^-24, float64: 2^-53, unless 0); q = 0 gives
    MIN_EXPONENT ln2.

    q = (1 + f) 2^e with 1 + f in [sqrt(1/2), 2 sqrt(1/2)) is found exactly (`split`); then
    log q = e ln2_high + (e ln2_low + (f - s (f - z R(z)))), s = f / (2 + f), z = s^2.
    """
    series, (ln2_high, ln2_low) = (ATANH_SERIES_32, LN2_32) if q.dtype == xp.float32 else (ATANH_SERIES_64, LN2_64)
    m, exponent = split(q, xp)
    f = m - 1.0
    s = f / (2.0 + f)
    z = s * s
    log1p = f - s * (f - z * horner(series, z, xp))
    return exponent * ln2_high + (exponent * ln2_low + log1p)


def split(q: Array, xp: Namespace) -> tuple[Array, Array]:
    """(m, e) with q = m 2^e exactly, m in [sqrt(1/2), 2 sqrt(1/2)) and e an integer, for a normal q in (0, 1].

    q = 0 gives (1, MIN_EXPONENT), as the kernels' bit split reads it. Through the namespace's frexp where
    it has one (NumPy, CuPy, torch, JAX), else (the array API standard has none) by scaling by 2^64 (2^512),
    2^32, ..., 2 wherever q is still below 2^-63 (2^-511), 2^-31, ..., 1.
    """
    single = q.dtype == xp.float32
    sqrt_half, lowest = (SQRT_HALF_32, MIN_EXPONENT_32) if single else (SQRT_HALF_64, MIN_EXPONENT_64)
    frexp = getattr(xp, "frexp", None)
    if frexp is not None:
        half_m, exponent_plus_one = frexp(q)  # q = half_m 2^(e + 1), half_m in [1/2, 1) (0 for q = 0)
        m, exponent = 2.0 * half_m, xp.astype(exponent_plus_one, q.dtype) - 1.0
    else:
        m, exponent, step = q, xp.zeros_like(q), -lowest // 2 + 1  # the steps add up to -lowest
        while step >= 1:
            below = m < 2.0 ** (1 - step)
            m, exponent = xp.where(below, m * 2.0**step, m), xp.where(below, exponent - float(step), exponent)
            step //= 2
    positive = q > 0.0
    m, exponent = xp.where(positive, m, xp.ones_like(m)), xp.where(positive, exponent, xp.full_like(q, lowest))
    high = m >= 2.0 * sqrt_half
    return xp.where(high, 0.5 * m, m), xp.where(high, exponent + 1.0, exponent)


def erfinv(x: Array, xp: Namespace) -> Array:
    """Inverse error function for x in (-1, 1), in the precision of x (float32 or float64)."""
    w = -log((1.0 - x) * (1.0 + x), xp)
    if x.dtype == xp.float64:
        p = xp.where(
            w < 6.25,
            horner(DOUBLE_CENTRAL, w - 3.125, xp),
            xp.where(w < 16.0, horner(DOUBLE_MIDDLE, xp.sqrt(w) - 3.25, xp), horner(DOUBLE_TAIL, xp.sqrt(w) - 5.0, xp)),
        )
    else:
        p = xp.where(w < 5.0, horner(SINGLE_CENTRAL, w - 2.5, xp), horner(SINGLE_TAIL, xp.sqrt(w) - 3.0, xp))
    return p * x
