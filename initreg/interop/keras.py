"""Keras 3: re-initialize a model (or its ``model.to_json()``) weight by weight from initreg's stream.

Each weight gets the initializer its layer's config names for it: ``<name>_initializer`` (kernel,
bias, embeddings, gamma, beta, moving_mean, moving_variance, alpha, ...) or, for ``<x>_kernel``
weights, ``<x>_initializer`` (recurrent_kernel -> recurrent_initializer, depthwise_kernel ->
depthwise_initializer, pointwise_kernel -> pointwise_initializer). An LSTM cell with
unit_forget_bias sets the forget gate's quarter of its bias to 1, as Keras does (the other quarters
come from the bias initializer applied to the whole bias).

The values are ``init_slice(initializer, weight.shape, (), seed, path)`` with `path` the weight's
``.path`` relative to the model ("dense/kernel", "lstm/lstm_cell/recurrent_kernel"; a model built in
its own name scope, like a Sequential, drops its name from the front), so a model and its JSON round
trip get the same values, and the seed inside a layer's initializer config is not used: every weight
has its own stream, never a copy of another layer's. They are applied with ``model.set_weights``.
An EinsumDense kernel (MultiHeadAttention's projections) whose VarianceScaling names no axes gets the
input and output axes of the layer's equation, as Keras's build gives them.

Importing this module also registers initreg's initializers with Keras (``register_with_keras``):

- serialization: every initializer class, plugins' included, is registered as ``"initreg>ClassName"``, so
  that ``keras.saving.serialize_keras_object``, a layer's ``get_config``/``from_config``, ``model.to_json``
  and ``model_from_json``, ``.keras`` files and ``clone_model`` keep initreg's class and seed. Loading needs
  the registration too: import this module before ``keras.saving.load_model`` (without it Keras falls back,
  silently, to its own class of the same name).
- fan axes: Keras's EinsumDense (and so MultiHeadAttention) hands a kernel's input and output axes only to
  an initializer that is an instance of Keras's own VarianceScaling. So that it hands them to initreg's,
  keras.initializers.VarianceScaling is added as the last base of initreg's VarianceScaling: initreg's
  methods all come first, and the base only makes ``isinstance`` true.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import keras
import numpy as np

from initreg.errors import InitregError, InvalidArgumentError, NameClashError
from initreg.initializers.base import Initializer
from initreg.initializers.lookup import get
from initreg.initializers.registry import initializers
from initreg.initializers.serialization import KERAS_PACKAGE
from initreg.initializers.variance_scaling import VarianceScaling
from initreg.slicing import init_slice

FORGET_GATE = 1  # the forget gate is the second of an LSTM's four gates (i, f, c, o)
_registering = threading.Lock()


def register_with_keras() -> dict[str, type[Initializer]]:
    """Registers every initializer class initreg knows with Keras (see the module docstring); returns them by
    registered name, a dict that also serves as ``custom_objects``. Run again after registering new classes.
    """
    with _registering:
        custom_objects = keras.saving.get_custom_objects()
        registered = {}
        for entry in initializers.entries():
            cls = entry.value
            name = f"{KERAS_PACKAGE}>{cls.__name__}"
            holder = custom_objects.get(name, cls)
            if holder is not cls:
                raise NameClashError(
                    f"Keras name {name!r} is taken by {holder.__module__}.{holder.__qualname__}; "
                    f"cannot register {cls.__module__}.{cls.__qualname__} under it"
                )
            keras.saving.register_keras_serializable(package=KERAS_PACKAGE, name=cls.__name__)(cls)
            registered[name] = cls
        if not issubclass(VarianceScaling, keras.initializers.VarianceScaling):
            VarianceScaling.__bases__ = (*VarianceScaling.__bases__, keras.initializers.VarianceScaling)
        return registered


@dataclass(frozen=True)
class WeightInit:
    """How one weight is initialized: its stream path, the layer config key and the initializer (or None)."""

    path: str
    shape: tuple[int, ...]
    dtype: str
    config_key: str | None
    initializer: Initializer | None
    unit_forget_bias: bool = False


def load_model(model: Any, custom_objects: Mapping[str, Any] | None = None) -> keras.Model:
    """`model` itself, or the model a ``model.to_json()`` string describes."""
    if isinstance(model, str):
        return keras.models.model_from_json(model, custom_objects=dict(custom_objects or {}))
    if not isinstance(model, keras.Model):
        raise InvalidArgumentError(f"expected a keras.Model or its to_json() string; got {type(model).__name__}")
    return model


def weight_inits(model: keras.Model) -> list[WeightInit]:
    """One WeightInit per weight of `model`, in ``model.weights`` order (what set_weights takes)."""
    layers = {layer.path: layer for layer in model._flatten_layers(include_self=True) if layer.path}
    return [_weight_init(model, weight, layers) for weight in model.weights]


def reinitialize(
    model: Any, seed: int = 0, *, strict: bool = True, custom_objects: Mapping[str, Any] | None = None
) -> keras.Model:
    """Sets every weight of `model` (a keras.Model or its JSON) from initreg's stream; returns the model.

    A weight whose layer names no initializer for it (a Normalization layer's statistics, a custom
    layer's state) is an error naming it; with ``strict=False`` it keeps its value.
    """
    model = load_model(model, custom_objects)
    if not model.weights:
        raise InvalidArgumentError(f"model {model.name!r} has no weights yet: build it (give it an Input) first")
    plan = weight_inits(model)
    missing = [entry.path for entry in plan if entry.initializer is None]
    if missing and strict:
        raise InvalidArgumentError(
            f"no initializer is named in the layer config for weights {missing}; "
            "pass strict=False to keep their current values"
        )
    current = model.get_weights()
    model.set_weights(
        [_values(entry, seed) if entry.initializer else now for entry, now in zip(plan, current, strict=True)]
    )
    return model


def _values(entry: WeightInit, seed: int) -> np.ndarray:
    values = np.asarray(init_slice(entry.initializer, entry.shape, (), seed, entry.path, entry.dtype))
    if entry.unit_forget_bias:
        units = entry.shape[-1] // 4
        values[..., FORGET_GATE * units : (FORGET_GATE + 1) * units] = 1
    return values


def _weight_init(model: keras.Model, weight: Any, layers: Mapping[str, Any]) -> WeightInit:
    prefix = f"{model.path}/" if model.path else ""
    path = weight.path.removeprefix(prefix)
    layer_path, _, name = weight.path.rpartition("/")
    layer = layers.get(layer_path)
    config = layer.get_config() if layer is not None else {}
    key = next((k for k in _config_keys(name) if config.get(k) is not None), None)
    shape, dtype = tuple(int(d) for d in weight.shape), str(weight.dtype)
    if layer is None or key is None:
        return WeightInit(path, shape, dtype, None, None)
    try:
        initializer = get(config[key])
    except InitregError as error:
        raise type(error)(f"weight {path!r} ({key} of layer {layer.name!r}): {error}") from error
    if not isinstance(initializer, Initializer):
        raise InvalidArgumentError(f"weight {path!r}: {key} {config[key]!r} is not an initreg initializer")
    if name == "kernel" and isinstance(layer, keras.layers.EinsumDense):
        initializer = _with_einsum_axes(initializer, layer)
    forget = name == "bias" and bool(config.get("unit_forget_bias")) and "recurrent_initializer" in config
    return WeightInit(path, shape, dtype, key, initializer, forget)


def _with_einsum_axes(initializer: Initializer, layer: Any) -> Initializer:
    """A VarianceScaling without axes given the input and output axes of `layer`'s equation, as Keras does."""
    if not isinstance(initializer, VarianceScaling) or (
        initializer.input_axes is not None and initializer.output_axes is not None
    ):
        return initializer
    from keras.src.layers.core.einsum_dense import _analyze_einsum_string

    input_shape = layer.get_build_config()["input_shape"]
    *_, input_axes, output_axes = _analyze_einsum_string(
        layer.equation, layer.bias_axes, input_shape, layer.partial_output_shape
    )
    return type(initializer).from_config(
        {**initializer.get_config(), "input_axes": input_axes, "output_axes": output_axes}
    )


def _config_keys(name: str) -> tuple[str, ...]:
    """The layer config keys that may name the initializer of a weight called `name`."""
    stem = name.removesuffix("_kernel")
    return (f"{name}_initializer",) if stem == name else (f"{name}_initializer", f"{stem}_initializer")


register_with_keras()
