"""Adapters to other frameworks: jax (Flax initializers, sharded arrays), keras (re-initializing a
model; registering initreg's classes with Keras's serialization and layers), torch (initializing an
nn.Module by glob rules; with torch_distributed, its DTensor parameters shard by shard) and dask (trees
of chunked arrays).

Each module imports its framework when the module itself is imported; `import initreg` imports none.
"""
