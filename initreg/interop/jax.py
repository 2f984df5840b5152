"""JAX and Flax: any registry initializer as a Flax ``kernel_init``, and sharded parameters made in place.

How a JAX PRNG key maps onto initreg's stream: the key's data (``jax.random.key_data``: two uint32
words for the default threefry keys) read as one big-endian integer is the seed, and the adapter's
`path` (default "") is the path. So ``kernel_init(init)(jax.random.key(s), shape)`` equals
``initreg.init_slice(init, shape, (), seed=s, path="")`` for 0 <= s < 2**32, and the keys Flax derives
for each parameter (by folding in the module path) give each parameter its own stream.

Where the values are made: on a GPU or TPU backend, the element-wise initializers (the VarianceScaling
family, RandomNormal, TruncatedNormal, RandomUniform: ``ElementwiseInitializer``) in real dtypes are traced
on ``jax.numpy`` (initreg.interop.jax_stream: key derivation, Philox and the samples), so they run on the
device, inside ``jax.jit``, ``jax.vmap`` and sharded outputs, and so are constants (their distinct values
broadcast); the Philox words are the NumPy reference's bit for bit, samples within a few ulp (XLA's log and
multiply-adds; see docs/interop.md). On a CPU backend, and for everything without a traced form
(whole-tensor initializers such as Orthogonal, index rules, complex dtypes, third-party initializers), the
values are made on the host by initreg's CPU kernel through ``jax.pure_callback`` (which works under ``jit``
and ``vmap`` too): on a CPU it is faster than the traced form and compiles in a fraction of the time
(docs/performance.md, "JAX"). ``host`` picks either way.

``init_sharded`` makes one parameter as a sharded ``jax.Array`` with ``jax.make_array_from_callback``:
each device's shard is ``init_slice`` of its index, so each process makes only its own devices' shards, and
the assembled array equals the unsharded one. A whole-tensor initializer (Orthogonal; see
``Initializer.slices_independently``) is made whole once per process, and its shards are cut from it.

JAX's conventions, and how to get them from ``kernel_init``:

- dtype: ``kernel_init(init, dtype=jnp.bfloat16)`` sets the returned function's default dtype, as JAX's
  initializer factories do; the dtype a call passes wins.
- fans: JAX's ``in_axis`` (default -2), ``out_axis`` (-1) and ``batch_axis`` (()) may be given, ints or
  sequences. As in JAX, every other axis is receptive field: fan_in = in_size * receptive and fan_out =
  out_size * receptive. They become the VarianceScaling's Keras axes input_axes = in + receptive axes and
  output_axes = out + receptive axes (Keras multiplies exactly the axes it names). Without them the
  initializer's own rules apply: Keras's, which equal JAX's defaults from rank 2 up.
- "normal": JAX's and torch's "normal" is untruncated: write distribution="untruncated_normal". initreg's
  "normal" is Keras's, a truncated normal (JAX's "truncated_normal").
- complex dtypes (complex64, complex128) are made for the VarianceScaling family as JAX's
  variance_scaling makes them, with s its variance: "untruncated_normal", real and imaginary parts each
  N(0, s / 2); "uniform", uniform on the disk of radius sqrt(2 s): sqrt(2 s u1) exp(2 pi i u2);
  "truncated_normal", a complex normal with its modulus cut at 2, sqrt(-log(1 - (1 - e^-4) u1))
  exp(2 pi i u2) sqrt(s) / 0.95311164380491208 (JAX's constant). The real part or u1 of element i is drawn
  from the parameter's stream, the imaginary part or u2 from the same key's Philox stream 1, element by
  element, so that slices and shards stay exact. RandomNormal(mean, stddev) makes them as JAX's
  ``normal(stddev)`` does: mean + stddev z, z a standard complex normal (E|z|^2 = 1), real and imaginary
  parts each N(0, stddev^2 / 2), the imaginary part from stream 1 likewise (JAX's normal has no mean: it
  shifts the real part). Other initializers draw real values only.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Callable, Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from initreg import rng
from initreg.distributions import NormalDist, UniformDist
from initreg.dtypes import numpy_dtype, standardize_dtype
from initreg.errors import InvalidArgumentError, choices
from initreg.initializers.base import ElementwiseInitializer, Initializer, Shape, standardize_shape
from initreg.initializers.constant import Constant
from initreg.initializers.random import RandomNormal
from initreg.initializers.variance_scaling import VarianceScaling, jax_rank_message
from initreg.interop import jax_stream
from initreg.slicing import as_initializer, init_slice, normalize_index, stream_seed

KernelInit = Callable[..., jax.Array]
Axis = int | Sequence[int]
PartDraw = Callable[[NormalDist | UniformDist, int], np.ndarray]  # (distribution, Philox stream) -> samples
COMPLEX_PARTS = {"complex64": "float32", "complex128": "float64"}  # a complex dtype and its parts' dtype
COMPLEX_TRUNCATED_STD = 0.95311164380491208  # JAX's constant for the complex normal cut at modulus 2
SECOND_PART_STREAM = 1


def check_key_data(data: Any) -> None:
    """Raises unless `data` (a NumPy array or a traced one) is the data of one key: a 1-D uint32 array."""
    if data.dtype != np.uint32 or data.ndim != 1:
        raise InvalidArgumentError(
            f"expected the data of one JAX PRNG key (a 1-D uint32 array); got shape {data.shape} and dtype {data.dtype}"
        )


def seed_from_key_data(words: Any) -> int:
    """The seed of one key's data: its uint32 words w0, w1, ... read big-endian, w0 2^32 + w1 for threefry."""
    data = np.asarray(words)
    check_key_data(data)
    return int.from_bytes(data.astype(">u4").tobytes(), "big")


def seed_from_key(key: jax.Array) -> int:
    """The initreg seed of a concrete JAX PRNG key (typed, or a legacy uint32[2] one)."""
    return seed_from_key_data(jax.random.key_data(key))


def kernel_init(
    initializer: Any,
    *,
    path: str = "",
    layout: str | None = None,
    dtype: Any = None,
    in_axis: Axis | None = None,
    out_axis: Axis | None = None,
    batch_axis: Axis | None = None,
    host: bool | None = None,
) -> KernelInit:
    """A Flax-style ``init(key, shape, dtype=dtype)`` drawing `initializer` from initreg's stream.

    `initializer` is anything ``initreg.get`` takes; `layout` names the weight layout for fans ("keras",
    which is Flax's [..., in, out], by default); `dtype` is the default dtype (float32 if None);
    `in_axis`/`out_axis`/`batch_axis` give JAX's fans (see the module docstring). The stream is
    (seed_from_key(key), path). `host`: True makes the values on the host through ``jax.pure_callback``,
    False traces them on the device wherever the initializer has a traced form; None (the default) makes
    them on the host when JAX's default backend is the CPU, where that is faster (see the module docstring).
    """
    if host is not None and not isinstance(host, bool):
        raise InvalidArgumentError(f"host must be True, False or None; got {host!r}")
    init = as_initializer(initializer)
    jax_axes = None if in_axis is None and out_axis is None and batch_axis is None else (in_axis, out_axis, batch_axis)
    if jax_axes is not None:
        if layout is not None:
            raise InvalidArgumentError(f"give either layout ({layout!r}) or in_axis/out_axis/batch_axis, not both")
        if not isinstance(init, VarianceScaling):
            raise InvalidArgumentError(
                f"in_axis/out_axis/batch_axis set fans, which only the VarianceScaling family uses; "
                f"{type(init).__name__} has none"
            )
    parameter_dtype(init, dtype)  # a bad default fails here, not at the first call

    def init_fn(key: jax.Array, shape: Any, dtype: Any = dtype) -> jax.Array:
        standard_shape, dtype_name = standardize_shape(shape), parameter_dtype(init, dtype)
        shaped = init if jax_axes is None else with_jax_fans(init, len(standard_shape), *jax_axes)
        shaped.check(standard_shape, COMPLEX_PARTS.get(dtype_name, dtype_name), layout)  # here, not in the callback
        jax_stream.check_dtype_available(dtype_name)
        words = jax.random.key_data(key)
        check_key_data(words)
        on_host = jax.default_backend() == "cpu" if host is None else host
        if not on_host and isinstance(shaped, ElementwiseInitializer) and dtype_name not in COMPLEX_PARTS:
            dist = shaped.distribution_for(standard_shape, layout)
            traced: jax.Array = jax_stream.draw(dist, stream_key(words, path), standard_shape, dtype_name)
            return traced
        if not on_host and isinstance(shaped, Constant):
            return constant_values(shaped, standard_shape, dtype_name)
        result = jax.ShapeDtypeStruct(standard_shape, numpy_dtype(dtype_name))  # type: ignore[no-untyped-call]
        callback = _HostValues(shaped, standard_shape, dtype_name, path, layout)
        values: jax.Array = jax.pure_callback(callback, result, words, vmap_method="sequential")
        return values

    return init_fn


def constant_values(init: Constant, shape: Shape, dtype: str) -> jax.Array:
    """A Constant's values without a callback: the distinct ones (the value's own shape, cast as on the host
    by init_slice: they do not depend on the key) become a constant, broadcast to `shape` by XLA."""
    value_shape = np.shape(init.value)
    offset = len(shape) - len(value_shape)
    distinct = tuple(
        slice(None) if axis >= offset and value_shape[axis - offset] == size else slice(0, min(size, 1))
        for axis, size in enumerate(shape)
    )
    values = init_slice(init, shape, distinct, seed=0, path="", dtype=dtype)
    return jnp.broadcast_to(jnp.asarray(values), shape)


def stream_key(words: Any, path: str) -> tuple[Any, Any]:
    """The Philox key (two uint32) of (the seed of one key's data `words`, `path`): rng.derive_key on the host
    when the words are concrete (eager calls), jax_stream.derive_key traced when they are not (jit, vmap)."""
    if isinstance(words, jax.core.Tracer):
        return jax_stream.derive_key(words, path)
    first, second = rng.derive_key(seed_from_key_data(words), path)
    return np.uint32(first), np.uint32(second)


def jax_fan_axes(
    rank: int, in_axis: Axis = -2, out_axis: Axis = -1, batch_axis: Axis = ()
) -> tuple[list[int], list[int]]:
    """Keras's (input_axes, output_axes) that give JAX's fans: the axes named plus every remaining axis."""
    if isinstance(in_axis, numbers.Integral) and in_axis == -2 and rank <= 1:
        raise InvalidArgumentError(f"{jax_rank_message(rank)} Received: a weight of rank {rank}; valid: rank >= 2")
    named = {
        name: _axes(name, axis, rank)
        for name, axis in (("in_axis", in_axis), ("out_axis", out_axis), ("batch_axis", batch_axis))
    }
    every = [axis for axes in named.values() for axis in axes]
    if len(set(every)) != len(every):
        raise InvalidArgumentError(
            f"in_axis, out_axis and batch_axis must name different axes; got in_axis={in_axis!r}, "
            f"out_axis={out_axis!r}, batch_axis={batch_axis!r} for rank {rank}"
        )
    receptive = [axis for axis in range(rank) if axis not in every]
    return [*named["in_axis"], *receptive], [*named["out_axis"], *receptive]


def with_jax_fans(
    init: Initializer, rank: int, in_axis: Axis | None, out_axis: Axis | None, batch_axis: Axis | None
) -> Initializer:
    """`init` (a VarianceScaling) with the Keras axes giving JAX's fans for a weight of `rank`."""
    input_axes, output_axes = jax_fan_axes(
        rank, -2 if in_axis is None else in_axis, -1 if out_axis is None else out_axis,
        () if batch_axis is None else batch_axis,
    )  # fmt: skip
    return type(init).from_config({**init.get_config(), "input_axes": input_axes, "output_axes": output_axes})


def _axes(name: str, axis: Axis, rank: int) -> list[int]:
    """One axis or a sequence of them as non-negative ints below `rank`; anything else raises naming it."""
    axes: Any = [axis] if isinstance(axis, numbers.Integral) else axis
    if isinstance(axes, (str, bytes)) or not isinstance(axes, Sequence):
        raise InvalidArgumentError(f"{name} must be an int or a sequence of ints; got {axis!r}")
    found = []
    for entry in axes:
        if isinstance(entry, bool) or not isinstance(entry, numbers.Integral) or not -rank <= int(entry) < rank:
            raise InvalidArgumentError(
                f"{name} {axis!r} is not an axis of a rank-{rank} weight; valid: {-rank} .. {rank - 1}"
            )
        found.append(int(entry) % rank)
    return found


def parameter_dtype(init: Initializer, dtype: Any) -> str:
    """The canonical dtype name: one of init.dtypes, or complex for RandomNormal and the VarianceScaling family."""
    try:
        name = None if dtype is None else str(np.dtype(dtype).name)
    except TypeError:
        name = None
    if name not in COMPLEX_PARTS:
        return standardize_dtype(dtype, init.dtypes)
    if not isinstance(init, (VarianceScaling, RandomNormal)):
        raise InvalidArgumentError(
            f"{type(init).__name__} draws real values; complex dtypes ({choices(COMPLEX_PARTS)}) are made by "
            "the VarianceScaling family and RandomNormal only, as JAX's variance_scaling and normal make them"
        )
    if isinstance(init, VarianceScaling) and init.distribution == "truncated_normal" and init.cutoff != 2.0:
        raise InvalidArgumentError(
            f"a complex truncated normal is cut at modulus 2, as in JAX; cutoff={init.cutoff!r} applies to real dtypes"
        )
    return name


def parameter_slice(
    init: Initializer, shape: Shape, index: Any, seed: int, path: str, dtype: str, layout: str | None
) -> np.ndarray:
    """``init_slice`` as NumPy, complex dtypes included (see the module docstring)."""
    if dtype not in COMPLEX_PARTS:
        return np.asarray(init_slice(init, shape, index, seed, path, dtype, layout=layout))
    slices, dropped = normalize_index(index, shape)
    part_dtype = COMPLEX_PARTS[dtype]
    key = rng.derive_key(stream_seed(seed), path)

    def draw(dist: NormalDist | UniformDist, stream: int) -> np.ndarray:
        return np.asarray(rng.draw_slice(dist, key, shape, slices, part_dtype, np, stream))

    values = complex_values(init, shape, layout, draw)
    kept = tuple(size for axis, size in enumerate(values.shape) if axis not in dropped)
    return np.reshape(values.astype(dtype), kept)


def complex_values(init: Initializer, shape: Shape, layout: str | None, draw: PartDraw) -> np.ndarray:
    """The complex values of `init` (RandomNormal or the VarianceScaling family; see the module docstring).

    `draw(dist, stream)` gives the real samples of one Philox stream for the elements wanted.
    """
    if isinstance(init, RandomNormal):
        return complex_normal(init.mean, init.stddev / math.sqrt(2.0), draw)
    assert isinstance(init, VarianceScaling)  # parameter_dtype allows complex dtypes for these only
    variance = init.variance(shape, layout)
    if init.distribution == "untruncated_normal":
        return complex_normal(0.0, math.sqrt(variance / 2.0), draw)
    u1, u2 = draw(UniformDist(0.0, 1.0), rng.MAIN_STREAM), draw(UniformDist(0.0, 1.0), SECOND_PART_STREAM)
    if init.distribution == "uniform":
        radius = np.sqrt(2.0 * variance * u1)
    else:
        radius = np.sqrt(-np.log1p(-(1.0 - math.exp(-4.0)) * u1)) * (math.sqrt(variance) / COMPLEX_TRUNCATED_STD)
    values: np.ndarray = radius * np.exp(2j * math.pi * u2)
    return values


def complex_normal(mean: float, part_std: float, draw: PartDraw) -> np.ndarray:
    """mean + x + i y with x, y ~ N(0, part_std^2), x from the main stream and y from stream 1.

    E|z - mean|^2 = 2 part_std^2.
    """
    real = draw(NormalDist(mean, part_std), rng.MAIN_STREAM)
    values: np.ndarray = real + 1j * draw(NormalDist(0.0, part_std), SECOND_PART_STREAM)
    return values


class _HostValues:
    """The callback run on the host: the parameter's values for one key's data."""

    def __init__(self, init: Initializer, shape: Shape, dtype: str, path: str, layout: str | None) -> None:
        self.init, self.shape, self.dtype, self.path, self.layout = init, shape, dtype, path, layout

    def __call__(self, words: np.ndarray) -> np.ndarray:
        seed = seed_from_key_data(words)
        return parameter_slice(self.init, self.shape, (), seed, self.path, self.dtype, self.layout)


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
    without ever making the whole array, unless the initializer is whole-tensor (``slices_independently``
    False): then this process makes the whole array once and cuts its shards from it.
    """
    init = as_initializer(initializer)
    standard_shape, dtype_name = standardize_shape(shape), parameter_dtype(init, dtype)
    init.check(standard_shape, COMPLEX_PARTS.get(dtype_name, dtype_name), layout)
    made: list[np.ndarray] = []  # a whole-tensor initializer's one whole array, once made

    def shard(index: tuple[slice, ...] | None) -> np.ndarray:
        part = () if index is None else index
        if init.slices_independently:
            return parameter_slice(init, standard_shape, part, seed, path, dtype_name, layout)
        if not made:
            made.append(parameter_slice(init, standard_shape, (), seed, path, dtype_name, layout))
        return made[0][part]

    return jax.make_array_from_callback(standard_shape, sharding, shard, dtype=numpy_dtype(dtype_name))
