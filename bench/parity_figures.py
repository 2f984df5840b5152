"""Print initreg's figures next to the peers' (Keras 3 on NumPy, JAX, torch) for the settings that reproduce them.

Run: python bench/parity_figures.py
"""

from __future__ import annotations

import math
import os

os.environ.setdefault("KERAS_BACKEND", "numpy")

import jax
import keras
import numpy as np
import scipy.stats
import torch

import initreg
import initreg.interop.keras  # registers initreg with Keras (fan axes for EinsumDense, serialization)
from initreg.initializers.variance_scaling import truncated_std_factor
from initreg.interop.jax import kernel_init


def mha_query_std(initializer: object) -> float:
    """The std of MultiHeadAttention(8 heads, key_dim 16)'s query kernel on 32 input features."""
    query = np.zeros((2, 5, 32), np.float32)
    layer = keras.layers.MultiHeadAttention(num_heads=8, key_dim=16, kernel_initializer=initializer)
    layer(query, query)
    return float(np.std(layer._query_dense.kernel.numpy()))


def jax_axes_std() -> tuple[float, float]:
    shape = (64, 32, 9)
    ours = kernel_init(initreg.VarianceScaling(distribution="untruncated_normal"), in_axis=0, out_axis=1)
    theirs = jax.nn.initializers.variance_scaling(1.0, "fan_in", "normal", in_axis=0, out_axis=1)
    key = jax.random.key(0)
    return float(np.std(ours(key, shape))), float(np.std(theirs(key, shape)))


def orthogonal_error(matrix: np.ndarray) -> float:
    return float(np.abs(matrix @ matrix.T - np.eye(matrix.shape[0])).max())


def main() -> None:
    conv = (16, 8, 3, 3)
    theirs_orthogonal = torch.nn.init.orthogonal_(torch.empty(conv, dtype=torch.float64)).view(16, -1).numpy()
    ours_orthogonal = initreg.Orthogonal(seed=1)(conv, dtype="float64", layout="torch").reshape(16, -1)
    ours_jax, theirs_jax = jax_axes_std()
    rows = [
        ("MHA(8, 16) query kernel std, LecunNormal(seed=0)", mha_query_std(initreg.LecunNormal(seed=0)),
         mha_query_std(keras.initializers.LecunNormal(seed=0)), 1 / math.sqrt(32)),
        ("std of N(0, 1) cut at +-3, c(3)", truncated_std_factor(3.0), float(scipy.stats.truncnorm.std(-3, 3)),
         float(scipy.stats.truncnorm.std(-3, 3))),
        ("(64, 32, 9) in_axis=0 out_axis=1 std, JAX normal", ours_jax, theirs_jax, 1 / math.sqrt(64 * 9)),
        ("conv (16, 8, 3, 3) max |W W^T - I|, torch layout", orthogonal_error(ours_orthogonal),
         orthogonal_error(theirs_orthogonal), 0.0),
    ]  # fmt: skip
    print(f"{'figure':<52} {'initreg':>10} {'peer':>10} {'exact':>10}")
    for name, ours, peer, exact in rows:
        print(f"{name:<52} {ours:>10.4g} {peer:>10.4g} {exact:>10.4g}")


if __name__ == "__main__":
    main()
