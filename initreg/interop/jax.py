"""JAX and Flax: any registry initializer as a Flax ``kernel_init``, and sharded parameters made in place.

How a JAX PRNG key maps onto initreg's stream: the key's data (``jax.random.key_data``: two uint32
words for the default threefry keys) read as one big-endian integer is the seed, and the adapter's
`path` (default "") is the path. So ``kernel_init(init)(jax.random.key(s), shape)`` equals
``initreg.init_slice(init, shape, (), seed=s, path="")`` for 0 <= s < 2**32, and the keys Flax derives
for each parameter (by folding in the module path) give each parameter its own stream. The values are
made on the host with the NumPy backend, through ``jax.pure_callback``, so the adapter also works
under ``jax.jit`` and ``jax.vmap``.

``init_sharded`` makes one parameter as a sharded ``jax.Array`` with ``jax.make_array_from_callback``:
each device's shard is ``init_slice`` of its index, so each process makes only its own devices' shards, and
the assembled array equals the unsharded one. Orthogonal can only be made whole (replicated).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import jax
import numpy as np

from initreg.dtypes import numpy_dtype, standardize_dtype
from initreg.errors import InvalidArgumentError
from initreg.initializers.base import Initializer, Shape, standardize_shape
from initreg.slicing import as_initializer, init_slice

KernelInit = Callable[..., jax.Array]


def seed_from_key_data(words: Any) -> int:
    """The seed of one key's data: its uint32 words w0, w1, ... read big-endian, w0 2^32 + w1 for threefry."""
    data = np.asarray(words)
    if data.dtype != np.uint32 or data.ndim != 1:
        raise InvalidArgumentError(
            f"expected the data of one JAX PRNG key (a 1-D uint32 array); got shape {data.shape} and dtype {data.dtype}"
        )
    return int.from_bytes(data.astype(">u4").tobytes(), "big")


def seed_from_key(key: jax.Array) -> int:
    """The initreg seed of a concrete JAX PRNG key (typed, or a legacy uint32[2] one)."""
    return seed_from_key_data(jax.random.key_data(key))


def kernel_init(initializer: Any, *, path: str = "", layout: str | None = None) -> KernelInit:
    """A Flax-style ``init(key, shape, dtype=float32)`` drawing `initializer` from initreg's stream.

    `initializer` is anything ``initreg.get`` takes; `layout` names the weight layout for fans ("keras",
    which is Flax's [..., in, out], by default). The stream is (seed_from_key(key), path).
    """
    init = as_initializer(initializer)

    def init_fn(key: jax.Array, shape: Any, dtype: Any = None) -> jax.Array:
        standard_shape, dtype_name = standardize_shape(shape), standardize_dtype(dtype)
        result = jax.ShapeDtypeStruct(standard_shape, numpy_dtype(dtype_name))  # type: ignore[no-untyped-call]
        host = _HostValues(init, standard_shape, dtype_name, path, layout)
        values: jax.Array = jax.pure_callback(host, result, jax.random.key_data(key), vmap_method="sequential")
        return values

    return init_fn


class _HostValues:
    """The callback run on the host: the parameter's values for one key's data."""

    def __init__(self, init: Initializer, shape: Shape, dtype: str, path: str, layout: str | None) -> None:
        self.init, self.shape, self.dtype, self.path, self.layout = init, shape, dtype, path, layout

    def __call__(self, words: np.ndarray) -> np.ndarray:
        seed = seed_from_key_data(words)
        return np.asarray(init_slice(self.init, self.shape, (), seed, self.path, self.dtype, layout=self.layout))


def init_sharded(
    initializer: Any,
    shape: Any,
    sharding: jax.sharding.Sharding,
    seed: int,
    path: str,
    dtype: Any = "float32",
    layout: str | None = None,
) -> jax.Array:
    """The parameter at `path` as a jax.Array laid out by `sharding`, each shard made by init_slice.

    Equal to ``jax.device_put(init_slice(initializer, shape, (), seed, path, dtype), sharding)``
    without ever making the whole array.
    """
    init = as_initializer(initializer)
    standard_shape, dtype_name = standardize_shape(shape), standardize_dtype(dtype)

    def shard(index: tuple[slice, ...] | None) -> np.ndarray:
        part = () if index is None else index
        return np.asarray(init_slice(init, standard_shape, part, seed, path, dtype_name, layout=layout))

    return jax.make_array_from_callback(standard_shape, sharding, shard, dtype=numpy_dtype(dtype_name))
