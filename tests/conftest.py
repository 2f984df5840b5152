"""Shared test setup: Keras runs on its NumPy backend."""

import os

os.environ.setdefault("KERAS_BACKEND", "numpy")
