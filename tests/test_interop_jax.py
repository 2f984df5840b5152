"""JAX and Flax: the kernel_init adapter (keys to seeds, jit, vmap, Flax modules) and sharded creation.

Sharding runs on 8 CPU devices: XLA_FLAGS is set here, before JAX starts its backend (at the first
computation, after collection). If JAX was started earlier in this process with fewer devices, the
sharded tests run again in a fresh process and report its outcome.
"""

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

from initreg import init_slice  # noqa: E402
from initreg.errors import InitregError  # noqa: E402
from initreg.interop.jax import init_sharded, kernel_init, seed_from_key, seed_from_key_data  # noqa: E402


@pytest.mark.parametrize("seed", [0, 3, 2**31 + 5, 2**32 - 1])
def test_jax_random_key_of_s_gives_initreg_seed_s(seed):
    assert seed_from_key(jax.random.key(seed)) == seed
    assert seed_from_key(jax.random.PRNGKey(seed)) == seed
    values = kernel_init("lecun_normal")(jax.random.key(seed), (30, 20))
    np.testing.assert_array_equal(np.asarray(values), init_slice("lecun_normal", (30, 20), (), seed=seed, path=""))


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


def test_orthogonal_is_made_replicated_and_refuses_to_be_split(mesh):
    replicated = init_sharded("orthogonal", (8, 8), NamedSharding(mesh, PartitionSpec()), seed=0, path="q")
    np.testing.assert_array_equal(np.asarray(replicated), init_slice("orthogonal", (8, 8), (), seed=0, path="q"))
    with pytest.raises(InitregError, match="whole"):
        init_sharded("orthogonal", (8, 8), NamedSharding(mesh, PartitionSpec("x")), seed=0, path="q")


def test_shards_of_a_tensor_with_index_rules_equal_the_whole(mesh):
    from initreg import recipes
    from initreg.tree import init_tree, plan

    spec = {"transformer.h.0.attn.c_attn.weight": (16, 48)}
    rules = recipes.load("mup_gpt2", d_model=16, base_d_model=8).rules
    (entry,) = plan(spec, rules, allow_unused_rules=True)
    whole = init_tree(spec, rules, seed=9, allow_unused_rules=True)[entry.path]
    assert not whole[:, :16].any() and np.all(whole[:, 16:] != 0)
    sharding = NamedSharding(mesh, PartitionSpec("x", "y"))
    array = init_sharded(entry.initializer, entry.shape, sharding, seed=9, path=entry.path, layout=entry.layout)
    for shard in array.addressable_shards:
        np.testing.assert_array_equal(np.asarray(shard.data), whole[shard.index])
