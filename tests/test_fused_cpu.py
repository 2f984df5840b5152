"""The fused CPU kernels (initreg.backends.fused_cpu) against the reference stream of initreg.rng.

Words must be bit-identical. Floats must be within a few ulp, and most of them exactly equal, which
pins every step of the formulas to the reference's: only log differs (the kernels' log is within
1 ulp of correctly rounded, NumPy's within a few). Giles' erfinv evaluates its polynomials in
w - 3.125 (or sqrt(w) - 3.25, ...), which rounds w to the ulp of that shift, so 1 ulp of w can move
the result by several ulps: up to 8 were seen over 16M draws.
"""

import hashlib
import os
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor

import ml_dtypes
import numpy as np
import pytest

numba = pytest.importorskip("numba")

from initreg import rng, special  # noqa: E402
from initreg.backends import fused_cpu, kernel_cache  # noqa: E402
from initreg.backends.numpy import backend as numpy_backend  # noqa: E402
from initreg.distributions import NormalDist, TruncatedNormalDist, UniformDist  # noqa: E402
from initreg.dtypes import compute_dtype, numpy_dtype  # noqa: E402

KEY = rng.derive_key(2024, "encoder.dense.kernel")
DISTRIBUTIONS = [
    UniformDist(-0.3, 0.7),
    NormalDist(0.0, 1.0),
    NormalDist(0.5, 2.0),
    TruncatedNormalDist(0.0, 0.05),
    TruncatedNormalDist(1.0, 3.0, -1.0, 0.5),
    TruncatedNormalDist(0.0, 1.0, -3.5, 3.5),
    TruncatedNormalDist.between(0.1, 0.7, -0.3, 1.9),
]
DTYPES = ["float16", "bfloat16", "float32", "float64"]
MAX_ULPS = 10


def ulps(actual, expected, dist, dtype):
    """|actual - expected| in ulps of `dtype` at the scale of the formula's terms (|value| or |mean|)."""
    offset = 0.5 * (dist.low + dist.high) if isinstance(dist, UniformDist) else dist.mean
    scale = np.maximum(np.abs(expected.astype(np.float64)), abs(offset))
    info = ml_dtypes.finfo(numpy_dtype(dtype))
    exponent = np.maximum(np.floor(np.log2(np.maximum(scale, float(info.smallest_normal)))), info.minexp)
    return np.abs(actual.astype(np.float64) - expected.astype(np.float64)) / 2.0 ** (exponent - info.nmant)


@pytest.mark.parametrize(
    ("start", "count"),
    [(0, 1), (1, 3), (6, 5), (5, 3 * fused_cpu.TILE + 7), (4 * 2**32 - 6, 40), (3, 0)],
)
def test_words_are_bit_identical_to_the_reference(start, count):
    assert np.array_equal(fused_cpu.words(KEY, start, count), rng.words_range(KEY, start, count, np))


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_every_start_and_length_within_a_block_matches_the_whole(dtype):
    """Head (before the first block boundary), whole blocks and tail, for each alignment and short length."""
    dist, whole_words = UniformDist(-1.0, 1.0), rng.words_range(KEY, 0, 64, np)
    whole = fused_cpu.draw(dist, KEY, (32,), dtype)
    for start in range(9):
        for count in range(13):
            part = fused_cpu.draw_slice(dist, KEY, (32,), (slice(start, start + count),), dtype)
            assert part.tobytes() == whole[start : start + count].tobytes(), (start, count)
            assert np.array_equal(fused_cpu.words(KEY, start, count), whole_words[start : start + count])
    assert np.array_equal(whole, rng.draw(dist, KEY, (32,), dtype, np))


def test_the_first_block_with_key_zero_is_the_philox_known_answer():
    assert fused_cpu.words((0, 0), 0, 4).tolist() == [0x6627E8D5, 0xE169C58D, 0xBC57AC4C, 0x9B00DBD8]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("dist", DISTRIBUTIONS, ids=repr)
def test_draw_is_within_a_few_ulp_of_the_reference_and_mostly_equal(dist, dtype):
    shape = (1000, 1037) if dtype == "float64" else (2000, 1037)  # not a multiple of the tile
    fused = fused_cpu.draw(dist, KEY, shape, dtype)
    reference = rng.draw(dist, KEY, shape, dtype, np)
    assert fused.dtype == reference.dtype == np.dtype(compute_dtype(dtype))
    assert fused.shape == shape
    assert ulps(fused, reference, dist, compute_dtype(dtype)).max() <= MAX_ULPS
    assert np.mean(fused == reference) > 0.95


@pytest.mark.parametrize("dtype", ["float16", "bfloat16"])
def test_narrow_dtypes_keep_their_bounds_after_the_cast(dtype):
    uniform = numpy_backend.draw(UniformDist(0.0, 1.0), KEY, (1 << 20,), dtype)
    truncated = numpy_backend.draw(TruncatedNormalDist(0.0, 0.3), KEY, (1 << 20,), dtype)  # +-0.6 rounds outward
    assert uniform.dtype == truncated.dtype == numpy_dtype(dtype)
    assert uniform.astype(np.float32).min() >= 0.0 and uniform.astype(np.float32).max() < 1.0
    assert truncated.astype(np.float32).min() >= -0.6 and truncated.astype(np.float32).max() <= 0.6
    reference = rng.draw(UniformDist(0.0, 1.0), KEY, (1 << 20,), dtype, np).astype(numpy_dtype(dtype))
    assert np.array_equal(uniform, reference)


SHAPE = (37, 5, 3001)
INDICES = [
    (slice(None), slice(None), slice(None)),
    (slice(3, 30, 4), slice(1, 5), slice(100, 2900)),
    (slice(0, 37, 2), slice(None), slice(5, 3001, 7)),
    (slice(36, None, -5), slice(4, 0, -1), slice(2999, 10, -3)),
    (slice(20, 21), slice(2, 3), slice(1, 2)),
    (slice(4, 4), slice(None), slice(None)),
    (slice(None), slice(None), slice(9, 9)),
]


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("index", INDICES, ids=repr)
def test_a_slice_equals_that_slice_of_the_whole_and_the_reference_slice(index, dtype):
    dist = TruncatedNormalDist(0.2, 0.7)
    part = fused_cpu.draw_slice(dist, KEY, SHAPE, index, dtype)
    assert np.array_equal(part, fused_cpu.draw(dist, KEY, SHAPE, dtype)[index])
    reference = rng.draw_slice(dist, KEY, SHAPE, index, dtype, np)
    assert part.shape == reference.shape
    assert ulps(part, reference, dist, dtype).max(initial=0.0) <= MAX_ULPS


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_one_dimensional_and_scalar_tensors(dtype):
    dist = NormalDist(0.0, 1.0)
    whole = fused_cpu.draw(dist, KEY, (50_000,), dtype)
    assert np.array_equal(
        fused_cpu.draw_slice(dist, KEY, (50_000,), (slice(17, 40_000, 3),), dtype), whole[17:40_000:3]
    )
    scalar = fused_cpu.draw(dist, KEY, (), dtype)
    assert scalar.shape == () and scalar == whole[0]
    assert np.array_equal(fused_cpu.draw_slice(dist, KEY, (), (), dtype), scalar)
    assert fused_cpu.draw(dist, KEY, (0, 3), dtype).shape == (0, 3)


def _draws_of_every_kind():
    """Draws, slices and words, each a flat array, across tile boundaries and both precisions."""
    draws = [
        fused_cpu.draw(dist, KEY, (3, 2 * fused_cpu.TILE + 5), dtype) for dist in DISTRIBUTIONS for dtype in DTYPES
    ]
    index = (slice(2, None), slice(7, 2 * fused_cpu.TILE, 3))
    draws += [fused_cpu.draw_slice(NormalDist(0.0, 1.0), KEY, (3, 2 * fused_cpu.TILE + 5), index, "float64")]
    draws += [
        fused_cpu.words(KEY, 6, 3 * fused_cpu.TILE + 1),
        fused_cpu.draw(NormalDist(0.0, 1.0), KEY, (16,), "float32"),
    ]
    return draws


def test_the_serial_and_parallel_builds_are_bit_identical(monkeypatch):
    monkeypatch.setattr(kernel_cache, "PARALLEL_FROM", 0)
    parallel = _draws_of_every_kind()
    monkeypatch.setattr(kernel_cache, "PARALLEL_FROM", 2**62)
    serial = _draws_of_every_kind()
    for a, b in zip(parallel, serial, strict=True):
        assert a.dtype == b.dtype and a.tobytes() == b.tobytes()


def test_small_draws_run_the_serial_build_and_large_ones_the_parallel_build(monkeypatch):
    calls = []
    for build in ("serial", "parallel"):
        compiled = getattr(fused_cpu._fill32, build)
        monkeypatch.setattr(fused_cpu._fill32, build, lambda *a, b=build, c=compiled: calls.append(b) or c(*a))
    dist = NormalDist(0.0, 1.0)
    small = fused_cpu.draw(dist, KEY, (kernel_cache.PARALLEL_FROM - 1,), "float32")
    large = fused_cpu.draw(dist, KEY, (kernel_cache.PARALLEL_FROM,), "float32")
    assert calls == ["serial", "parallel"]
    assert np.array_equal(small, large[:-1])


def _in_a_new_process(function: str, **environment: str) -> str:
    """What this module's `function`() prints in a new Python process with `environment` added."""
    code = f"import sys; sys.path.insert(0, sys.argv[1]); import test_fused_cpu as t; print(t.{function}())"
    result = subprocess.run(
        [sys.executable, "-c", code, os.path.dirname(__file__)],
        capture_output=True, text=True, env={**os.environ, **environment},
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-2000:]
    return result.stdout.strip()


def _digest() -> str:
    """A hash of a few draws that span many tiles, with odd sizes and strided slices."""
    hashed = hashlib.sha256()
    hashed.update(fused_cpu.draw(TruncatedNormalDist(0.0, 0.05), KEY, (301, 1999), "float32").tobytes())
    hashed.update(fused_cpu.draw(NormalDist(1.0, 2.0), KEY, (123_457,), "float64").tobytes())
    hashed.update(fused_cpu.draw(UniformDist(-1.0, 1.0), KEY, (99_999,), "float32").tobytes())
    index = (slice(1, 300, 2), slice(3, 1999, 5))
    hashed.update(fused_cpu.draw_slice(NormalDist(0.0, 1.0), KEY, (301, 1999), index, "float32").tobytes())
    hashed.update(fused_cpu.words(KEY, 3, 200_001).tobytes())
    return hashed.hexdigest()


def test_results_do_not_depend_on_the_thread_count():
    default_threads = numba.get_num_threads()
    try:
        numba.set_num_threads(1)
        single = _digest()
    finally:
        numba.set_num_threads(default_threads)
    assert _digest() == single
    assert _in_a_new_process("_digest", NUMBA_NUM_THREADS="3") == single


def _serial_and_concurrent_draws_agree() -> bool:
    dist, shapes = NormalDist(0.0, 1.0), [(257, 300 + n) for n in range(8)]
    serial = [fused_cpu.draw(dist, KEY, shape, "float32") for shape in shapes]
    with ThreadPoolExecutor(max_workers=4) as pool:
        concurrent = list(pool.map(lambda shape: fused_cpu.draw(dist, KEY, shape, "float32"), shapes))
    return all(np.array_equal(a, b) for a, b in zip(serial, concurrent, strict=True))


@pytest.mark.parametrize("layer", ["default", "workqueue"])
def test_draws_from_several_python_threads_at_once_equal_serial_draws(layer):
    """numba's workqueue layer aborts on concurrent launches unless the module serializes them."""
    assert _in_a_new_process("_serial_and_concurrent_draws_agree", NUMBA_THREADING_LAYER=layer) == "True"


def test_the_numpy_backend_draws_through_the_fused_kernels():
    dist = TruncatedNormalDist(0.0, 0.1)
    index = (slice(2, 9), slice(1, 60, 4))
    assert np.array_equal(
        numpy_backend.draw(dist, KEY, (10, 64), "float32"), fused_cpu.draw(dist, KEY, (10, 64), "float32")
    )
    assert np.array_equal(
        numpy_backend.draw_slice(dist, KEY, (10, 64), index, "bfloat16"),
        fused_cpu.draw_slice(dist, KEY, (10, 64), index, "bfloat16").astype(ml_dtypes.bfloat16),
    )
    assert np.array_equal(numpy_backend.words(KEY, 5, 99), rng.words_range(KEY, 5, 99, np))


WITHOUT_NUMBA = """
import sys
sys.modules["numba"] = None  # any import of numba now raises ImportError
import numpy as np
from initreg import rng
from initreg.backends.numpy import backend, fused_kernels
from initreg.distributions import TruncatedNormalDist
dist, key = TruncatedNormalDist(0.0, 0.1), rng.derive_key(1, "w")
assert fused_kernels() is None
assert np.array_equal(backend.draw(dist, key, (40, 70), "float32"), rng.draw(dist, key, (40, 70), "float32", np))
index = (slice(3, 30, 2), slice(5, 60))
assert np.array_equal(backend.draw_slice(dist, key, (40, 70), index, "float64"),
                      rng.draw_slice(dist, key, (40, 70), index, "float64", np))
assert "initreg.backends.fused_cpu" not in sys.modules
print("reference")
"""


def test_without_numba_the_numpy_backend_draws_the_reference():
    result = subprocess.run([sys.executable, "-c", WITHOUT_NUMBA], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "reference"


def test_loading_the_numpy_backend_does_not_import_numba():
    code = "import sys, initreg; initreg.registry.get_backend('numpy'); print('numba' in sys.modules)"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "False"


@numba.njit(error_model="numpy")
def _logs(q32, q64):
    log32, log64 = np.empty_like(q32), np.empty_like(q64)
    for i in range(q32.shape[0]):
        log32[i] = fused_cpu._log32(q32[i])
    for i in range(q64.shape[0]):
        log64[i] = fused_cpu._log64(q64[i])
    return log32, log64


def _units(k, bits):
    """x = (2k + 1 - 2^bits) 2^-bits, the values symmetric_unit gives (exact: |2k + 1 - 2^bits| < 2^53)."""
    return (2 * k.astype(np.int64) + 1 - 2**bits).astype(np.float64) * 2.0**-bits


def test_erfinv_and_log_match_the_reference_to_the_ends_of_their_domain():
    """Every x that symmetric_unit gives near -1, 0 and 1, and random ones; log also on (0, 1]."""
    generator = np.random.default_rng(0)
    ends = np.concatenate([np.arange(2000), generator.integers(0, 2**24, 200_000)])
    x32 = _units(np.concatenate([ends, 2**24 - 1 - ends]), 24).astype(np.float32)
    ends = np.concatenate([np.arange(2000), generator.integers(0, 2**53, 200_000, dtype=np.int64)])
    x64 = _units(np.concatenate([ends, 2**53 - 1 - ends]), 53)
    q32 = np.concatenate([(1 - x32) * (1 + x32), generator.uniform(0.0, 1.0, 100_000).astype(np.float32)])
    q64 = np.concatenate([(1 - x64) * (1 + x64), 2.0 ** generator.uniform(-60.0, 0.0, 100_000)])
    log32, log64 = _logs(q32, q64)
    erfinv32, erfinv64 = x32.copy(), x64.copy()
    fused_cpu._erfinv32(erfinv32, np.float32(0.0), np.float32(1.0))  # in place; with tails: all branches
    fused_cpu._erfinv64(erfinv64, 0.0, 1.0)

    def relative_ulps(actual, expected):
        return np.abs(actual.astype(np.float64) - expected) / np.spacing(np.abs(expected).astype(actual.dtype))

    assert relative_ulps(erfinv32, special.erfinv(x32, np)).max() <= MAX_ULPS
    assert relative_ulps(erfinv64, special.erfinv(x64, np)).max() <= MAX_ULPS
    correctly_rounded_log32 = np.log(q32.astype(np.float64)).astype(np.float32).astype(np.float64)
    assert relative_ulps(log32, correctly_rounded_log32).max() <= 1
    assert relative_ulps(log64, np.log(q64)).max() <= 2


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_draw_into_writes_what_draw_gives_into_the_array_given(dtype):
    dist = TruncatedNormalDist(0.0, 0.02)
    out = np.full((300, 401), np.nan, dtype=dtype)
    address = out.ctypes.data
    fused_cpu.draw_into(out, dist, KEY)
    assert out.ctypes.data == address
    assert out.tobytes() == fused_cpu.draw(dist, KEY, (300, 401), dtype).tobytes()
    with pytest.raises(ValueError, match="writeable C-contiguous float32 or float64 array; got float32"):
        fused_cpu.draw_into(np.empty((4, 6), np.float32)[:, ::2], dist, KEY)
    with pytest.raises(ValueError, match="got float16"):
        fused_cpu.draw_into(np.empty(5, np.float16), dist, KEY)
