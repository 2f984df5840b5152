"""Model configs: the parameter spec a model config of the command describes.

A model gives `params` (a tree of shapes) and optionally `repeat` ({prefix: {count, params}}: the
block repeated as prefix.0 ... prefix.{count-1}), or `path`: a .safetensors or .npz file whose
floating tensors' names and shapes are read from its header.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from initreg import io
from initreg.dtypes import FLOAT_DTYPES
from initreg.errors import InvalidArgumentError
from initreg.spec import flatten

MAX_TENSORS = io.MAX_TENSORS  # the most parameters a model config may make


def model_spec(model: Mapping[str, Any]) -> tuple[dict[str, Any], list[str]]:
    """The parameter spec a model config describes, and notes on what it skipped.

    A model gives `params` (a tree of shapes) and optionally `repeat` ({prefix: {count, params}}: the
    block repeated as prefix.0 ... prefix.{count-1}), or `path`: a .safetensors or .npz file whose
    floating tensors' names and shapes are read from its header.
    """
    if model.get("path") is not None:
        return _file_spec(str(model["path"]))
    params = model.get("params") or {}
    if not isinstance(params, Mapping):
        raise InvalidArgumentError(f"model.params must be a mapping of names to shapes; got {params!r}")
    spec = dict(params)
    tensors = len(flatten(spec))
    for prefix, block in (model.get("repeat") or {}).items():
        count = block.get("count") if isinstance(block, Mapping) else None
        if isinstance(count, bool) or not isinstance(count, int) or count < 0 or "params" not in block:
            raise InvalidArgumentError(
                f"model.repeat.{prefix} must be {{count: a non-negative integer, params: {{...}}}}; got {block!r}"
            )
        if prefix in spec:
            raise InvalidArgumentError(f"model.repeat.{prefix} clashes with model.params.{prefix}")
        tensors += count * len(flatten({prefix: block["params"]}))  # counted before any list is made
        if tensors > MAX_TENSORS:
            raise InvalidArgumentError(
                f"model.repeat.{prefix}.count={count} makes the model {tensors:,} parameters or more; "
                f"valid: at most {MAX_TENSORS:,} in all"
            )
        spec[prefix] = [block["params"]] * count
    if not spec:
        raise InvalidArgumentError("the model has no parameters; give model.params or model.path")
    return spec, []


def _file_spec(path: str) -> tuple[dict[str, Any], list[str]]:
    tensors = io.read_header(path)
    spec = {tensor.name: tensor.shape for tensor in tensors if tensor.dtype in FLOAT_DTYPES}
    skipped = [f"{tensor.name} ({tensor.dtype})" for tensor in tensors if tensor.dtype not in FLOAT_DTYPES]
    if not spec:
        raise InvalidArgumentError(f"{path!r} holds no floating tensor; found: {', '.join(skipped) or '(none)'}")
    notes = [f"skipped {len(skipped)} non-floating tensor(s) of {path}: {', '.join(skipped)}"] if skipped else []
    return spec, notes
