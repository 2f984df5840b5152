"""Buffers of a transformers model, recomputed as the model's own ``_init_weights`` does.

Buffers are not parameters: rules do not fill them. A transformers model (a module with ``_init_weights``
and a ``config``) computes some of them from its config: RoPE's ``inv_freq`` and ``original_inv_freq``,
Gemma's ``embed_scale``, BERT's ``position_ids``; ``to_empty`` leaves them as uninitialized memory.
`recompute` calls ``model._init_weights(module)`` for each module owning such buffers, with torch's global
random state kept as it was and the parameters that initreg does not fill restored, so only the buffers
change (initreg then fills the parameters). On a model that came from the meta device every buffer is
first filled with a sentinel (NaN, or the dtype's lowest integer) and one still holding it afterwards is an
error naming it: a buffer the model's own code does not set is never left as garbage.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Iterator
from typing import cast

import torch

from initreg.errors import InvalidArgumentError


def is_transformers_model(module: torch.nn.Module) -> bool:
    """Whether `module` initializes itself module by module, as transformers' PreTrainedModel does."""
    return callable(getattr(module, "_init_weights", None)) and getattr(module, "config", None) is not None


def refuse_buffers_on_meta(module: torch.nn.Module) -> None:
    """Raises for a meta module with buffers that is not a transformers model (nothing would set them)."""
    buffers = [name for name, _ in module.named_buffers()]
    if buffers and not is_transformers_model(module):
        raise InvalidArgumentError(
            f"the module is on the meta device and has buffers {buffers}, which to_empty would leave "
            "uninitialized and only the model's own code can set: materialize it first (module.to_empty(device=...)), "
            "set them as the model does (BatchNorm: reset_running_stats(); torchtitan: "
            "init_weights(buffer_device=...)), then initialize"
        )


def _owners(module: torch.nn.Module, non_persistent_only: bool) -> Iterator[tuple[str, torch.nn.Module]]:
    for name, owner in module.named_modules():
        own = owner._buffers
        if non_persistent_only:
            own = {key: value for key, value in own.items() if key in owner._non_persistent_buffers_set}
        if any(value is not None for value in own.values()):
            yield name, owner


def recompute(module: torch.nn.Module, filled: Collection[str], *, from_meta: bool) -> None:
    """Sets the buffers of a transformers model by its ``_init_weights``: every buffer after a model came from
    the meta device (checked by sentinel), else the non-persistent ones (those computed from the config).
    `filled` names the parameters initreg fills next; the others keep their values.
    """
    if not is_transformers_model(module):
        return
    init_weights = cast(Callable[[torch.nn.Module], None], module._init_weights)
    owners = list(_owners(module, non_persistent_only=not from_meta))
    if from_meta:
        _fill_sentinels(module)
    with torch.no_grad(), torch.random.fork_rng(devices=[]):
        for prefix, owner in owners:
            kept = {
                name: parameter.detach().clone()
                for name, parameter in owner.named_parameters(recurse=False)
                if f"{prefix}.{name}".lstrip(".") not in filled
            }
            init_weights(owner)
            for name, value in kept.items():
                getattr(owner, name).copy_(value)
    if from_meta:
        unset = [name for name, buffer in module.named_buffers() if _holds_sentinel(buffer)]
        if unset:
            raise InvalidArgumentError(
                f"the model's _init_weights does not set buffers {unset} after to_empty; materialize it first, "
                "set them as the model does, then initialize"
            )


def _sentinel(buffer: torch.Tensor) -> float | int | bool:
    if buffer.is_floating_point() or buffer.is_complex():
        return float("nan")
    if buffer.dtype == torch.bool:
        return False
    return int(torch.iinfo(buffer.dtype).min)


def _fill_sentinels(module: torch.nn.Module) -> None:
    with torch.no_grad():
        for _, buffer in module.named_buffers():
            if buffer.dtype != torch.bool:
                buffer.fill_(_sentinel(buffer))


def _holds_sentinel(buffer: torch.Tensor) -> bool:
    if buffer.dtype == torch.bool or buffer.numel() == 0:
        return False
    if buffer.is_floating_point() or buffer.is_complex():
        return bool(torch.isnan(buffer).any())
    return bool((buffer == _sentinel(buffer)).any())
