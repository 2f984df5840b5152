"""Keras, where a test compares with it, runs on its NumPy backend."""

import os

os.environ.setdefault("KERAS_BACKEND", "numpy")
