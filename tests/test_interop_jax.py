"""JAX and Flax: the kernel_init adapter (keys to seeds, jit, vmap, Flax modules) and sharded creation.

Sharding runs on 8 CPU devices: XLA_FLAGS is set here, before JAX starts its backend (at the first
computation, after collection). If JAX was started earlier in this process with fewer devices, the
sharded tests run again in a fresh process and report its outcome.
"""

import math
import os
import subprocess
import sys

import numpy as np
import pytest

DEVICE_FLAG = "--xla_force_host_platform_device_count=8"
if DEVICE_FLAG not in os.environ.get("XLA_FLAGS", ""):
    os.environ["XLA_FLAGS"] = f"{os.environ.get('XLA_FLAGS', '')} {DEVICE_FLAG}".strip()

jax = pytest.importorskip("jax")
jnp = pytest.importorskip("jax.numpy")
linen = pytest.importorskip("flax.linen")
nnx = pytest.importorskip("flax.nnx")

from jax.sharding import Mesh, NamedSharding, PartitionSpec  # noqa: E402

from initreg import Orthogonal, init_slice  # noqa: E402
from initreg.errors import InitregError, InvalidArgumentError  # noqa: E402
from initreg.interop.jax import init_sharded, kernel_init, seed_from_key, seed_from_key_data  # noqa: E402
from tests.test_jax_stream import MAX_ULPS, ulps_at_scale  # noqa: E402


@pytest.mark.parametrize("seed", [0, 3, 2**31 + 5, 2**32 - 1])
def test_jax_random_key_of_s_gives_initreg_seed_s(seed):
    assert seed_from_key(jax.random.key(seed)) == seed
    assert seed_from_key(jax.random.PRNGKey(seed)) == seed
    values = np.asarray(kernel_init("lecun_normal")(jax.random.key(seed), (30, 20)))
    expected = init_slice("lecun_normal", (30, 20), (), seed=seed, path="")
    assert ulps_at_scale(values, expected, 1 / math.sqrt(30)).max() <= MAX_ULPS  # XLA's log against NumPy's


def test_the_adapter_path_and_layout_reach_the_stream():
    key = jax.random.key(7)
    shape = (64, 16, 3, 3)
    values = kernel_init("he_uniform", path="conv.weight", layout="torch")(key, shape, jnp.float32)
    expected = init_slice("he_uniform", shape, (), seed=7, path="conv.weight", layout="torch")
    np.testing.assert_array_equal(np.asarray(values), expected)
    assert float(jnp.abs(values).max()) <= np.sqrt(6.0 / (16 * 9))
    assert not np.array_equal(np.asarray(kernel_init("he_uniform")(key, shape)), expected)


def test_folded_keys_give_distinct_seeds_and_values():
    base = jax.random.key(0)
    keys = [jax.random.fold_in(base, i) for i in range(4)]
    assert len({seed_from_key(k) for k in keys}) == 4
    init = kernel_init("glorot_uniform")
    first, second = (np.asarray(init(k, (8, 8))) for k in keys[:2])
    assert not np.array_equal(first, second)


def test_the_adapter_works_under_jit_and_vmap():
    init = kernel_init({"class_name": "TruncatedNormal", "config": {"stddev": 0.02}})
    keys = jax.random.split(jax.random.key(11), 3)
    eager = np.stack([np.asarray(init(k, (5, 6))) for k in keys])
    np.testing.assert_array_equal(np.asarray(jax.jit(init, static_argnums=1)(keys[1], (5, 6))), eager[1])
    np.testing.assert_array_equal(np.asarray(jax.vmap(lambda k: init(k, (5, 6)))(keys)), eager)


def test_bfloat16_values_are_initreg_bfloat16_values():
    values = kernel_init("glorot_normal")(jax.random.key(2), (12, 9), jnp.bfloat16)
    assert values.dtype == jnp.bfloat16
    expected = init_slice("glorot_normal", (12, 9), (), seed=2, path="", dtype="bfloat16")
    np.testing.assert_array_equal(np.asarray(values).astype(np.float32), expected.astype(np.float32))


class _Mlp(linen.Module):
    @linen.compact
    def __call__(self, x):
        x = linen.Dense(512, kernel_init=kernel_init("he_normal"), bias_init=kernel_init("zeros"))(x)
        return linen.Dense(512, kernel_init=kernel_init("he_normal"), bias_init=kernel_init("zeros"))(x)


def test_a_flax_linen_model_initializes_with_the_statistics_of_jax_own_initializer():
    x = jnp.ones((1, 1024))
    params = _Mlp().init(jax.random.key(0), x)["params"]
    jitted = jax.jit(_Mlp().init)(jax.random.key(0), x)["params"]
    first, second = np.asarray(params["Dense_0"]["kernel"]), np.asarray(params["Dense_1"]["kernel"])
    np.testing.assert_array_equal(first, np.asarray(jitted["Dense_0"]["kernel"]))
    assert not np.array_equal(first[:512], second)
    np.testing.assert_array_equal(np.asarray(params["Dense_1"]["bias"]), np.zeros(512, np.float32))
    reference = np.asarray(jax.nn.initializers.he_normal()(jax.random.key(1), (1024, 512)))
    assert first.std() == pytest.approx(reference.std(), rel=0.02)
    assert first.std() == pytest.approx(np.sqrt(2.0 / 1024), rel=0.02)
    assert np.abs(first).max() <= 2.0 * np.sqrt(2.0 / 1024) / 0.87962566103423978 + 1e-6


def test_a_flax_nnx_module_takes_the_adapter():
    layer = nnx.Linear(300, 200, kernel_init=kernel_init("lecun_uniform"), rngs=nnx.Rngs(4))
    kernel = np.asarray(layer.kernel[...])
    reference = np.asarray(jax.nn.initializers.lecun_uniform()(jax.random.key(0), (300, 200)))
    assert kernel.std() == pytest.approx(reference.std(), rel=0.02)
    assert np.abs(kernel).max() <= np.sqrt(3.0 / 300)


def test_a_batch_of_key_data_is_refused_by_name():
    with pytest.raises(InitregError, match=r"\(3, 2\)"):
        seed_from_key_data(np.zeros((3, 2), np.uint32))


@pytest.fixture
def mesh(request):
    """A 4 x 2 mesh of CPU devices, or a rerun of the test in a fresh process that has them."""
    if len(jax.devices()) >= 8:
        return Mesh(np.array(jax.devices()[:8]).reshape(4, 2), ("x", "y"))
    if os.environ.get("INITREG_JAX_CHILD"):
        pytest.fail(f"XLA_FLAGS={os.environ.get('XLA_FLAGS')!r} gave only {len(jax.devices())} devices")
    env = {**os.environ, "INITREG_JAX_CHILD": "1"}
    command = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", request.node.nodeid]
    result = subprocess.run(command, cwd=request.config.rootpath, env=env, capture_output=True, text=True)
    assert result.returncode == 0, result.stdout[-4000:]
    pytest.skip("JAX started earlier with fewer devices; the test passed in a fresh process with 8")


SPECS = [
    PartitionSpec("x", "y"),
    PartitionSpec("y", "x"),
    PartitionSpec("x", None),
    PartitionSpec(None, ("x", "y")),
    PartitionSpec(),
]


@pytest.mark.parametrize("spec", SPECS, ids=str)
def test_a_sharded_parameter_equals_the_unsharded_one(mesh, spec):
    shape = (16, 24)
    sharding = NamedSharding(mesh, spec)
    array = init_sharded("glorot_uniform", shape, sharding, seed=9, path="layers.3.kernel")
    whole = init_slice("glorot_uniform", shape, (), seed=9, path="layers.3.kernel")
    assert array.sharding == sharding
    assert len(array.addressable_shards) == 8
    for shard in array.addressable_shards:
        np.testing.assert_array_equal(np.asarray(shard.data), whole[shard.index])
    np.testing.assert_array_equal(np.asarray(array), whole)


def test_a_sharded_rank3_bfloat16_parameter_in_torch_layout(mesh):
    shape = (8, 6, 4)
    sharding = NamedSharding(mesh, PartitionSpec("x", None, "y"))
    array = init_sharded("he_normal", shape, sharding, seed=1, path="w", dtype=jnp.bfloat16, layout="torch")
    whole = init_slice("he_normal", shape, (), seed=1, path="w", dtype="bfloat16", layout="torch")
    assert array.dtype == jnp.bfloat16
    np.testing.assert_array_equal(np.asarray(array).astype(np.float32), whole.astype(np.float32))


class CountedOrthogonal(Orthogonal):
    """Orthogonal counting the whole tensors it makes."""

    made = 0

    def generate(self, *args, **kwargs):
        type(self).made += 1
        return super().generate(*args, **kwargs)


@pytest.mark.parametrize("spec", [PartitionSpec(), PartitionSpec("x"), PartitionSpec("x", "y")], ids=str)
def test_shards_of_a_whole_tensor_initializer_are_cut_from_one_whole_draw(mesh, spec):
    whole = init_slice("orthogonal", (8, 8), (), seed=0, path="q")
    CountedOrthogonal.made = 0
    array = init_sharded(CountedOrthogonal(), (8, 8), NamedSharding(mesh, spec), seed=0, path="q")
    assert CountedOrthogonal.made == 1
    for shard in array.addressable_shards:
        np.testing.assert_array_equal(np.asarray(shard.data), whole[shard.index])
    np.testing.assert_array_equal(np.asarray(array), whole)


def test_shards_of_a_tensor_with_index_rules_equal_the_whole(mesh):
    from initreg import recipes
    from initreg.tree import init_tree, plan

    spec = {"transformer.h.0.attn.c_attn.weight": (16, 48)}
    rules = recipes.load("mup_gpt2", initializer_range=0.02, n_layer=1, d_model=16, base_d_model=8).rules
    (entry,) = plan(spec, rules, allow_unused_rules=True)
    whole = init_tree(spec, rules, seed=9, allow_unused_rules=True)[entry.path]
    assert not whole[:, :16].any() and np.all(whole[:, 16:] != 0)
    sharding = NamedSharding(mesh, PartitionSpec("x", "y"))
    array = init_sharded(entry.initializer, entry.shape, sharding, seed=9, path=entry.path, layout=entry.layout)
    for shard in array.addressable_shards:
        np.testing.assert_array_equal(np.asarray(shard.data), whole[shard.index])


# JAX's conventions: default dtype, complex dtypes, in_axis/out_axis/batch_axis, "normal"


from scipy import stats  # noqa: E402

import initreg  # noqa: E402
from initreg import rng  # noqa: E402
from initreg.distributions import NormalDist  # noqa: E402
from initreg.interop.jax import jax_fan_axes, parameter_slice  # noqa: E402
from initreg.slicing import stream_seed  # noqa: E402


def test_the_adapter_takes_a_default_dtype_as_jax_initializers_do():
    init = kernel_init("he_normal", dtype=jnp.bfloat16)
    key = jax.random.key(3)
    assert init(key, (4, 5)).dtype == jnp.bfloat16
    assert init(key, (4, 5), jnp.float32).dtype == jnp.float32  # the call's dtype wins
    np.testing.assert_array_equal(
        np.asarray(init(key, (4, 5))).astype(np.float32),
        init_slice("he_normal", (4, 5), (), seed=3, path="", dtype="bfloat16").astype(np.float32),
    )
    zeros = kernel_init("zeros", dtype=jnp.int32)(key, (3,))
    theirs = jax.nn.initializers.zeros(key, (3,), jnp.int32)
    assert zeros.dtype == theirs.dtype == jnp.int32 and np.array_equal(np.asarray(zeros), np.asarray(theirs))
    with pytest.raises(InitregError, match="'int8'.*only the constants"):
        kernel_init("he_normal", dtype=jnp.int8)


COMPLEX = [("normal", "untruncated_normal"), ("uniform", "uniform"), ("truncated_normal", "truncated_normal")]


@pytest.mark.parametrize(("jax_name", "ours"), COMPLEX)
def test_complex_variance_scaling_draws_what_jax_draws(jax_name, ours):
    shape, scale = (500, 400), 2.0
    theirs = np.asarray(
        jax.nn.initializers.variance_scaling(scale, "fan_in", jax_name, dtype=jnp.complex64)(jax.random.key(0), shape)
    ).ravel()
    values = kernel_init(initreg.VarianceScaling(scale, "fan_in", ours))(jax.random.key(1), shape, jnp.complex64)
    assert values.dtype == jnp.complex64
    values = np.asarray(values).ravel()
    assert stats.ks_2samp(np.abs(values), np.abs(theirs)).pvalue > 1e-3  # the modulus
    assert stats.ks_2samp(np.angle(values), np.angle(theirs)).pvalue > 1e-3  # the phase
    assert stats.ks_2samp(values.real, theirs.real).pvalue > 1e-3
    rms = math.sqrt(np.mean(np.abs(theirs) ** 2))
    assert math.sqrt(np.mean(np.abs(values) ** 2)) == pytest.approx(rms, rel=0.01)
    assert abs(np.corrcoef(values.real, values.imag)[0, 1]) < 0.01
    variance = scale / shape[0]
    bound = {"uniform": math.sqrt(2 * variance), "truncated_normal": 2 * math.sqrt(variance) / 0.95311164380491208}
    if jax_name in bound:
        assert np.abs(values).max() <= bound[jax_name] * (1 + 1e-6) and np.abs(theirs).max() <= bound[jax_name] * (
            1 + 1e-6
        )
        assert np.abs(values).max() > 0.999 * bound[jax_name]


def test_complex_values_slice_like_the_whole_and_follow_the_stream():
    init = initreg.GlorotUniform()
    whole = parameter_slice(init, (12, 10), (), 5, "w", "complex128", None)
    assert whole.dtype == np.complex128
    part = parameter_slice(init, (12, 10), (slice(2, 7), slice(3, 9)), 5, "w", "complex128", None)
    np.testing.assert_array_equal(part, whole[2:7, 3:9])
    np.testing.assert_array_equal(parameter_slice(init, (12, 10), (4,), 5, "w", "complex128", None), whole[4])
    u1 = init_slice(initreg.RandomUniform(0.0, 1.0), (12, 10), (), seed=5, path="w", dtype="float64")
    np.testing.assert_allclose(np.abs(whole), np.sqrt(2 * init.variance((12, 10)) * u1), rtol=1e-12)
    assert not np.array_equal(whole, parameter_slice(init, (12, 10), (), 6, "w", "complex128", None))


def test_complex_dtypes_are_refused_by_name_where_jax_has_no_meaning_for_them():
    with pytest.raises(InitregError, match="TruncatedNormal draws real values; complex dtypes"):
        kernel_init("truncated_normal")(jax.random.key(0), (3, 3), jnp.complex64)
    with pytest.raises(InitregError, match="cut at modulus 2.*cutoff=3.0"):
        kernel_init(initreg.LecunNormal(cutoff=3.0), dtype=jnp.complex64)


@pytest.mark.parametrize(
    ("shape", "axes", "fan_in"),
    [
        ((64, 32, 9), {"in_axis": 0, "out_axis": 1}, 64 * 9),
        ((4, 64, 32), {"batch_axis": 0}, 64),
        ((3, 3, 8, 16), {"in_axis": (0, 2), "out_axis": -1}, 3 * 8 * 3),
        ((10, 6, 5, 7), {"in_axis": -1, "out_axis": 0, "batch_axis": (1,)}, 7 * 5),
    ],
)
def test_jax_in_out_and_batch_axes_give_jax_fans(shape, axes, fan_in):
    theirs = jax.nn.initializers.variance_scaling(1.0, "fan_in", "normal", **axes)(jax.random.key(0), shape)
    init = kernel_init(initreg.VarianceScaling(1.0, "fan_in", "untruncated_normal"), **axes)
    values = np.asarray(init(jax.random.key(1), shape))
    assert float(values.std()) == pytest.approx(float(np.std(theirs)), rel=0.05)
    input_axes, output_axes = jax_fan_axes(len(shape), **axes)
    expected = initreg.VarianceScaling(
        1.0, "fan_in", "untruncated_normal", input_axes=input_axes, output_axes=output_axes
    )
    assert expected.target_std(shape) == pytest.approx(1 / math.sqrt(fan_in), rel=1e-15)
    assert (
        ulps_at_scale(values, init_slice(expected, shape, (), seed=1, path=""), 1 / math.sqrt(fan_in)).max() <= MAX_ULPS
    )


def test_keras_axes_alone_are_the_product_of_the_axes_named_not_jaxs_fans():
    shape = (64, 32, 9)
    keras_axes = initreg.VarianceScaling(input_axes=[0], output_axes=[1])
    assert keras_axes.target_std(shape) == pytest.approx(
        3 * _std_with_jax_fans(shape, in_axis=0, out_axis=1), rel=1e-12
    )


def _std_with_jax_fans(shape, **axes):
    input_axes, output_axes = jax_fan_axes(len(shape), **axes)
    return initreg.VarianceScaling(input_axes=input_axes, output_axes=output_axes).target_std(shape)


def test_bad_axes_are_refused_by_name():
    with pytest.raises(InitregError, match="either layout"):
        kernel_init("he_normal", layout="torch", in_axis=0)
    with pytest.raises(InitregError, match="Orthogonal has none"):
        kernel_init("orthogonal", out_axis=0)
    with pytest.raises(InitregError, match="must name different axes"):
        kernel_init("he_normal", in_axis=0, out_axis=0)(jax.random.key(0), (3, 4))
    with pytest.raises(InitregError, match="in_axis 5 is not an axis of a rank-2 weight; valid: -2 .. 1"):
        kernel_init("he_normal", in_axis=5)(jax.random.key(0), (3, 4))
    with pytest.raises(InitregError, match="batch_axis must be an int or a sequence"):
        kernel_init("he_normal", batch_axis="0")(jax.random.key(0), (3, 4))


def test_normal_means_truncated_as_in_keras_and_untruncated_is_jaxs_normal():
    shape = (1000, 1000)
    sigma = math.sqrt(1 / 1000)
    keras_normal = np.asarray(kernel_init(initreg.VarianceScaling(distribution="normal"))(jax.random.key(0), shape))
    untruncated = np.asarray(
        kernel_init(initreg.VarianceScaling(distribution="untruncated_normal"))(jax.random.key(0), shape)
    )
    jax_normal = np.asarray(jax.nn.initializers.variance_scaling(1.0, "fan_in", "normal")(jax.random.key(0), shape))
    assert np.abs(keras_normal).max() <= 2 * sigma / 0.87962566103423978
    assert np.abs(untruncated).max() > 4 * sigma and np.abs(jax_normal).max() > 4 * sigma
    assert stats.ks_2samp(untruncated.ravel(), jax_normal.ravel()).pvalue > 1e-3


def test_a_sharded_complex_parameter_equals_the_unsharded_one(mesh):
    shape, sharding = (16, 24), NamedSharding(mesh, PartitionSpec("x", "y"))
    array = init_sharded("glorot_normal", shape, sharding, seed=9, path="w", dtype=jnp.complex64)
    whole = parameter_slice(initreg.GlorotNormal(), shape, (), 9, "w", "complex64", None)
    assert array.dtype == jnp.complex64
    for shard in array.addressable_shards:
        np.testing.assert_array_equal(np.asarray(shard.data), whole[shard.index])
    np.testing.assert_array_equal(np.asarray(array), whole)


def _jax_error(make):
    """The message of the ValueError JAX itself raises in `make()`."""
    with pytest.raises(ValueError) as error:
        make()
    return str(error.value)


def test_a_rank_one_weight_with_jax_default_in_axis_is_refused_in_jax_words():
    """JAX's testVarianceScalingError matches its own message; strict_fans and in_axis=-2 include it verbatim."""
    key = jax.random.key(0)
    theirs = _jax_error(lambda: jax.nn.initializers.variance_scaling(1.0, "fan_avg", "truncated_normal")(key, (5,)))
    assert "Can't compute input and output sizes" in theirs
    strict = initreg.VarianceScaling(mode="fan_avg", strict_fans=True)
    for make in (lambda: kernel_init(strict)(key, (5,)), lambda: kernel_init("glorot_normal", in_axis=-2)(key, (5,))):
        with pytest.raises(InitregError) as ours:
            make()
        assert type(ours.value) is InvalidArgumentError and theirs in str(ours.value)


@pytest.mark.parametrize(
    ("init", "shape", "message"),
    [
        (initreg.HeNormal(strict_fans=True), (7,), "strict_fans=True"),
        (initreg.HeNormal(input_axes=[0], output_axes=[5]), (3, 4), "output_axes has axis 5"),
        (initreg.VarianceScaling(input_axes=[0], output_axes=[1]), (3,), "output_axes has axis 1"),
        (initreg.Orthogonal(), (5,), "at least two-dimensional"),
        (initreg.Identity(), (2, 3, 4), "only be used for 2D matrices"),
        (initreg.Constant(np.ones((3, 4)), broadcast=False), (4, 3), "Expected `shape` to be"),
        (initreg.Constant([1.0, 2.0]), (3, 3), "does not broadcast"),
        (initreg.Constant(300), (2,), "does not fit int8"),
    ],
)
def test_shape_and_fan_errors_surface_as_themselves_not_from_inside_the_callback(init, shape, message):
    """pure_callback would wrap them in a JaxRuntimeError; they are checked while tracing, on either path."""
    dtype = jnp.int8 if "int8" in message else jnp.float32
    for host in (True, False):
        for make in (kernel_init(init, host=host), jax.jit(kernel_init(init, host=host), static_argnums=(1, 2))):
            with pytest.raises(InvalidArgumentError, match=message):
                make(jax.random.key(0), shape, dtype)


def test_complex_normal_has_jax_moments_and_matches_jax_own_draw():
    """jax.nn.initializers.normal(stddev) with a complex dtype: stddev z, E|z|^2 = 1, each part of variance 1/2.

    10^6 values: the relative standard error of each second moment is about 0.0014 (0.001 for |z|^2), so the
    1% tolerances are 7 or more standard errors, and a factor of sqrt(2) anywhere is off by 40%.
    """
    shape, stddev = (1000, 1000), 0.5
    ours = np.asarray(kernel_init(initreg.RandomNormal(stddev=stddev))(jax.random.key(3), shape, jnp.complex64))
    theirs = np.asarray(jax.nn.initializers.normal(stddev)(jax.random.key(4), shape, jnp.complex64))
    assert ours.dtype == theirs.dtype == np.complex64
    for values in (ours.ravel().astype(np.complex128), theirs.ravel().astype(np.complex128)):
        assert np.mean(np.abs(values) ** 2) == pytest.approx(stddev**2, rel=0.01)
        assert np.var(values.real) == pytest.approx(stddev**2 / 2, rel=0.01)
        assert np.var(values.imag) == pytest.approx(stddev**2 / 2, rel=0.01)
        assert abs(np.mean(values)) < 5 * stddev / 1000  # 5 standard errors of the mean
        assert abs(np.corrcoef(values.real, values.imag)[0, 1]) < 0.005  # 5 standard errors: independent parts
        assert abs(np.corrcoef(values.real**2, values.imag**2)[0, 1]) < 0.005
    ours, theirs = ours.ravel(), theirs.ravel()
    for part in (np.real, np.imag, np.abs, np.angle):
        assert stats.ks_2samp(part(ours), part(theirs)).pvalue > 1e-3


def test_complex_normal_parts_are_the_real_normal_of_stream_0_and_1_and_slices_are_exact():
    """The real part is RandomNormal(mean, stddev / sqrt 2) of the main stream, element by element; the
    imaginary part the same normal (mean 0) of Philox stream 1, as the VarianceScaling family draws."""
    init, shape = initreg.RandomNormal(mean=0.25, stddev=2.0), (12, 10)
    whole = parameter_slice(init, shape, (), 5, "w", "complex128", None)
    assert whole.dtype == np.complex128
    part_std, key = 2.0 / math.sqrt(2.0), rng.derive_key(stream_seed(5), "w")
    real = rng.draw_slice(NormalDist(0.25, part_std), key, shape, (), "float64", np, rng.MAIN_STREAM)
    np.testing.assert_array_equal(whole.real, real)
    np.testing.assert_allclose(  # what RandomNormal(0.25, part_std) itself draws, within the fused kernels' ulp
        whole.real, init_slice(initreg.RandomNormal(0.25, part_std), shape, (), seed=5, path="w", dtype="float64"),
        rtol=0, atol=1e-14,
    )  # fmt: skip
    imaginary = rng.draw_slice(NormalDist(0.0, part_std), key, shape, (), "float64", np, 1)
    np.testing.assert_array_equal(whole.imag, imaginary)
    np.testing.assert_array_equal(parameter_slice(init, shape, (slice(2, 7), slice(3, 9)), 5, "w", "complex128",
                                                  None), whole[2:7, 3:9])  # fmt: skip
    np.testing.assert_array_equal(parameter_slice(init, shape, (4,), 5, "w", "complex128", None), whole[4])
    np.testing.assert_array_equal(
        np.asarray(kernel_init(init, dtype=jnp.complex64)(jax.random.key(5), shape)),
        parameter_slice(init, shape, (), 5, "", "complex64", None),
    )


def test_a_sharded_complex_normal_equals_the_unsharded_one(mesh):
    shape, sharding = (16, 24), NamedSharding(mesh, PartitionSpec("x", "y"))
    array = init_sharded(initreg.RandomNormal(stddev=0.1), shape, sharding, seed=2, path="w", dtype=jnp.complex64)
    whole = parameter_slice(initreg.RandomNormal(stddev=0.1), shape, (), 2, "w", "complex64", None)
    for shard in array.addressable_shards:
        np.testing.assert_array_equal(np.asarray(shard.data), whole[shard.index])
