"""initreg's stream traced on jax.numpy (initreg.interop.jax_stream) against the NumPy reference (initreg.rng).

Key derivation and Philox words must be bit-identical. Uniforms with a zero midpoint (he_uniform and the
other symmetric ones) are too; others are within 1 ulp, as XLA fuses mid + half x into one multiply-add.
Normal and truncated normal samples differ through log (XLA's against NumPy's) and XLA's fused
multiply-adds: within MAX_ULPS ulps at the scale of the distribution's std (at most 6 were seen).
"""

import os
import subprocess
import sys
import textwrap

import ml_dtypes
import numpy as np
import pytest

jax = pytest.importorskip("jax")
jnp = pytest.importorskip("jax.numpy")

from initreg import init_slice, rng  # noqa: E402
from initreg.distributions import NormalDist, TruncatedNormalDist, UniformDist  # noqa: E402
from initreg.dtypes import numpy_dtype  # noqa: E402
from initreg.errors import InvalidArgumentError  # noqa: E402
from initreg.interop import jax_stream  # noqa: E402
from initreg.interop.jax import kernel_init, seed_from_key_data  # noqa: E402

MAX_ULPS = 10  # as for the fused CPU kernel: Giles's polynomials turn 1 ulp of log into several
KEYS = [(0, 0), (0x9E3779B9, 0x12345678), (0xFFFFFFFF, 0xFFFFFFFF), rng.derive_key(2024, "encoder.dense.kernel")]
DISTRIBUTIONS = [
    UniformDist(-2.0, 3.0),
    UniformDist(-0.25, 0.25),
    NormalDist(0.0, 1.0),
    NormalDist(0.5, 2.0),
    TruncatedNormalDist(0.0, 0.05),
    TruncatedNormalDist(1.0, 3.0, -1.0, 0.5),
    TruncatedNormalDist.between(0.1, 0.7, -0.3, 1.9),
]


def key_words(seed: int, count: int = 2) -> np.ndarray:
    """The data of a key whose seed (its uint32 words read big-endian) is `seed`."""
    return np.array([(seed >> (32 * (count - 1 - at))) & 0xFFFFFFFF for at in range(count)], dtype=np.uint32)


def ulps_at_scale(actual: np.ndarray, expected: np.ndarray, scale: float) -> np.ndarray:
    """|actual - expected| in ulps of the dtype at max(|expected|, scale)."""
    info = ml_dtypes.finfo(expected.dtype)
    magnitude = np.maximum(np.abs(expected.astype(np.float64)), scale)
    exponent = np.maximum(np.floor(np.log2(np.maximum(magnitude, float(info.smallest_normal)))), info.minexp)
    return np.abs(actual.astype(np.float64) - expected.astype(np.float64)) / 2.0 ** (exponent - info.nmant)


SEEDS = [0, 7, 9, 10, 99, 2**31 + 5, 2**32 - 1, 2**32, 10**19 - 1, 10**19, 2**64 - 1]
# paths whose message (12 + digits + path bytes) spans one block, two blocks, or one or two by the digit count
PATHS = ["", "dense.kernel", "p" * 100, "p" * 110, "é" * 58, "layers.0/" * 40]


@pytest.mark.parametrize("path", PATHS, ids=lambda path: f"{len(path.encode())}B")
def test_derived_keys_are_the_references_for_every_digit_count(path):
    derive = jax.jit(jax_stream.derive_key, static_argnums=1)
    for seed in SEEDS:
        assert tuple(int(word) for word in derive(key_words(seed), path)) == rng.derive_key(seed, path), seed


def test_keys_of_four_words_read_big_endian_give_the_references_key():
    words = np.array([0xFFFFFFFF, 3, 0, 0x80000001], dtype=np.uint32)
    derived = jax.jit(jax_stream.derive_key, static_argnums=1)(words, "w")
    assert tuple(int(word) for word in derived) == rng.derive_key(seed_from_key_data(words), "w")


def test_the_first_block_with_key_zero_is_the_philox_known_answer():
    words = jax_stream.words_range((np.uint32(0), np.uint32(0)), 0, 4)
    assert np.asarray(words).tolist() == [0x6627E8D5, 0xE169C58D, 0xBC57AC4C, 0x9B00DBD8]


@pytest.mark.parametrize(
    ("start", "count"), [(0, 1), (1, 3), (6, 5), (5, 4099), (4 * 2**32 - 6, 40), (2**44 + 3, 9), (2**64 - 16, 16)]
)
@pytest.mark.parametrize("stream", [rng.MAIN_STREAM, 1])
def test_words_are_bit_identical_to_the_reference(start, count, stream):
    words = jax.jit(jax_stream.words_range, static_argnums=(1, 2, 3))
    for key in KEYS:
        traced = np.asarray(words((np.uint32(key[0]), np.uint32(key[1])), start, count, stream))
        assert traced.dtype == np.uint32
        np.testing.assert_array_equal(traced, rng.words_range(key, start, count, np, stream))


@pytest.mark.parametrize("dtype", ["float32", "float16", "bfloat16"])
@pytest.mark.parametrize("dist", DISTRIBUTIONS, ids=repr)
def test_samples_are_the_references_within_a_few_ulp(dist, dtype):
    key, shape = KEYS[3], (1000, 1037)
    traced = np.asarray(jax_stream.draw(dist, (np.uint32(key[0]), np.uint32(key[1])), shape, dtype))
    expected = rng.draw(dist, key, shape, dtype, np).astype(numpy_dtype(dtype))
    assert traced.dtype == expected.dtype and traced.shape == shape
    bound = 1 if isinstance(dist, UniformDist) else MAX_ULPS  # uniforms: one rounding (a fused multiply-add)
    assert ulps_at_scale(traced, expected, dist.std).max() <= bound
    if isinstance(dist, UniformDist) and dist.low == -dist.high:
        np.testing.assert_array_equal(traced, expected)


@pytest.mark.parametrize("host", [True, False])
def test_64_bit_dtypes_without_x64_are_refused_by_name(host):
    for dtype in (jnp.float64, jnp.complex128):
        with pytest.raises(InvalidArgumentError, match="needs JAX's 64-bit mode"):
            jax.jit(lambda key, dtype=dtype: kernel_init("he_normal", host=host)(key, (3, 3), dtype))(jax.random.key(0))


def run_child(script: str, device_count: int = 1) -> None:
    """Runs `script` in a fresh Python, with JAX started with `device_count` CPU devices; it must exit 0."""
    flags = f"--xla_force_host_platform_device_count={device_count}"
    env = {**os.environ, "XLA_FLAGS": flags, "JAX_PLATFORMS": "cpu"}
    result = subprocess.run([sys.executable, "-c", textwrap.dedent(script)], env=env, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr[-4000:]


def test_float64_with_x64_is_the_reference():
    run_child(
        """
        import jax, numpy as np
        jax.config.update("jax_enable_x64", True)
        from initreg import rng
        from initreg.distributions import NormalDist, TruncatedNormalDist, UniformDist
        from initreg.interop import jax_stream
        key = rng.derive_key(11, "w")
        words = (np.uint32(key[0]), np.uint32(key[1]))
        for dist in (UniformDist(-2.0, 3.0), NormalDist(0.5, 2.0), TruncatedNormalDist(0.0, 0.02)):
            traced = np.asarray(jax_stream.draw(dist, words, (300, 301), "float64"))
            expected = rng.draw(dist, key, (300, 301), "float64", np)
            assert traced.dtype == np.float64
            ulps = 1 if isinstance(dist, UniformDist) else 10  # at the scale of the std or the largest value
            assert np.abs(traced - expected).max() <= ulps * 2.0**-52 * max(dist.std, np.abs(expected).max())
        """
    )


def test_sharded_outputs_under_jit_are_made_on_the_devices_without_a_callback():
    run_child(
        """
        import jax, numpy as np
        from jax.sharding import Mesh, NamedSharding, PartitionSpec
        from initreg import init_slice
        from initreg.interop.jax import kernel_init
        mesh = Mesh(np.array(jax.devices()).reshape(2, 2), ("x", "y"))
        for name, spec in (("he_uniform", PartitionSpec("x", "y")), ("glorot_uniform", PartitionSpec(None, "x"))):
            init = kernel_init(name, path="layer.kernel", host=False)
            make = jax.jit(lambda key: init(key, (64, 48)), out_shardings=NamedSharding(mesh, spec))
            key = jax.random.key(5)
            assert "callback" not in make.lower(key).as_text()
            array = make(key)
            assert len(array.addressable_shards) == 4 and array.sharding.spec == spec
            whole = init_slice(name, (64, 48), (), seed=5, path="layer.kernel")
            for shard in array.addressable_shards:  # symmetric uniforms: bit for bit
                assert np.array_equal(np.asarray(shard.data), whole[shard.index])
        """,
        device_count=4,
    )


def test_init_slice_values_come_out_of_kernel_init_under_jit_and_vmap():
    init = kernel_init("he_normal", path="encoder.kernel", layout="torch", host=False)
    keys = jax.random.split(jax.random.key(3), 4)
    batched = np.asarray(jax.jit(jax.vmap(lambda key: init(key, (16, 8, 3))))(keys))
    np.testing.assert_array_equal(np.asarray(init(keys[1], (16, 8, 3))), batched[1])  # the key derived on the host
    for at, key in enumerate(keys):
        seed = seed_from_key_data(jax.random.key_data(key))
        expected = init_slice("he_normal", (16, 8, 3), (), seed=seed, path="encoder.kernel", layout="torch")
        assert ulps_at_scale(batched[at], expected, float(expected.std())).max() <= MAX_ULPS


@pytest.mark.parametrize("host", [True, False])
def test_a_batch_of_keys_outside_vmap_is_refused_at_trace_time(host):
    keys = jax.random.split(jax.random.key(0), 3)
    with pytest.raises(InvalidArgumentError, match=r"one JAX PRNG key.*\(3, 2\)"):
        jax.jit(lambda keys: kernel_init("he_normal", host=host)(keys, (4, 4)))(keys)


@pytest.mark.parametrize(
    ("init", "shape", "dtype"),
    [
        ("zeros", (300, 200), jnp.float32),
        ("ones", (7, 0, 5), jnp.bfloat16),
        ({"class_name": "Constant", "config": {"value": [1.5, -2.0, 0.25]}}, (1000, 4, 3), jnp.float16),
        ({"class_name": "Constant", "config": {"value": [[1.0], [2.0]]}}, (6, 2, 500), jnp.float32),
        ({"class_name": "Constant", "config": {"value": 7}}, (1000, 1000), jnp.int8),
    ],
)
def test_constants_are_made_on_the_device_as_the_host_makes_them(init, shape, dtype):
    key = jax.random.key(1)
    make = jax.jit(lambda key: kernel_init(init, host=False)(key, shape, dtype))
    lowered = make.lower(key).as_text()
    assert "callback" not in lowered and len(lowered) < 20_000  # the distinct values only, not the whole array
    values, expected = make(key), kernel_init(init, host=True)(key, shape, dtype)
    assert values.dtype == expected.dtype and values.shape == shape
    np.testing.assert_array_equal(np.asarray(values), np.asarray(expected))


@pytest.mark.parametrize("impl", ["threefry2x32", "rbg", "legacy uint32[2]"])
@pytest.mark.parametrize("shape", [(), (0, 3), (5,), (3, 4)])
def test_every_key_kind_and_shape_gives_init_slice_eager_and_under_jit(impl, shape):
    key = jax.random.PRNGKey(2**31 + 3) if impl.startswith("legacy") else jax.random.key(2**31 + 3, impl=impl)
    name = "glorot_uniform" if len(shape) == 2 else "random_uniform"  # zero midpoints: bit for bit
    init = kernel_init(name, path="w", host=False)
    expected = init_slice(name, shape, (), seed=seed_from_key_data(jax.random.key_data(key)), path="w")
    np.testing.assert_array_equal(np.asarray(init(key, shape)), expected)
    np.testing.assert_array_equal(np.asarray(jax.jit(lambda key: init(key, shape))(key)), expected)
