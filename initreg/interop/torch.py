"""PyTorch: initialize an nn.Module's parameters in place by glob rules over ``named_parameters()``.

``initialize(module, rules, seed=0)`` matches each parameter's dotted name ("encoder.layers.0.linear1.weight")
against the rules exactly as ``initreg.init_tree`` does (last matching rule wins; see initreg.tree),
draws it from the stream ``derive_key(seed, name)`` into the parameter, so the values equal
``init_tree({name: shape, ...}, rules, seed, layout="torch")``: straight into its memory where it is a
contiguous float32 or float64 CPU tensor drawn element-wise, else through an array and ``copy_``. Fans follow torch's
[out, in, *kernel] layout by default.

A parameter on a CUDA device, with no `backend` given, is drawn on its device by initreg-torch's ``torch_cuda``
backend (the reference stream on torch tensors there; words and uniforms bit-identical to NumPy's, other
samples within a few ulp) and copied device to device, never through the host. Without initreg-torch it is
drawn on the CPU and copied to the device (the values are NumPy's; the cost is a host draw and a
host-to-device copy per parameter): the CUDA path is an optional plugin, and a model that fills on the host
today keeps working. A `backend` given is used for every parameter that is not drawn in place, whatever its
device (the device path on CPU tensors: ``TorchBackend(name, "cpu", stream_on_device=True)``).

A tensor shared by several modules (tied weights, such as ``lm_head.weight`` and ``transformer.wte.weight``)
has all its names, from ``named_parameters(remove_duplicate=False)``: its first name is the parameter, the
others are ties (see initreg.tree), so rules naming any of them match it. A model's declared ties count too: a
transformers model's ``all_tied_weights_keys`` ({tied name: source name}; empty when ``config.tie_word_embeddings`` is
false). A declared pair that is two tensors (the model was materialized with ``to_empty`` or built under
``no_init_weights`` after construction tied it) is tied again to the source's parameter, as transformers'
``tie_weights`` does, never left as two different tensors; one whose shapes differ is refused.

A module built on the meta device (``with torch.device("meta"): model = Model()``, the path for models
too large to initialize twice) is materialized first with ``module.to_empty(device=device)`` and then
filled, so every parameter must get a rule; shared (tied) parameters stay shared. Buffers are not
parameters: a transformers model's buffers are set by its own ``_init_weights`` after ``to_empty`` (RoPE's
``inv_freq``, Gemma's ``embed_scale``; see initreg.interop.torch_buffers), and its non-persistent buffers,
computed from the config, are recomputed that way whether or not it came from the meta device. Any other meta
module with buffers (BatchNorm's running statistics, torchtitan's ``freqs_cis``) is refused, since to_empty
would leave them uninitialized: materialize it and set them first.

A parameter with no elements is left as it is, with torch.nn.init's UserWarning ("Initializing
zero-element tensors is a no-op") naming it, once per parameter.

A module whose parameters are DTensors (FSDP2's ``fully_shard``, tensor parallel, pipeline stages; built
on the meta device or not) is filled shard by shard: each rank draws only its local shard, and the
gathered parameters equal those of the unsharded model (see initreg.interop.torch_distributed, which
also checks first, with one collective over the default process group, that every rank was given the
same rules and seed: every rank calls initialize).
"""

from __future__ import annotations

import contextlib
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import replace
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from torch.distributed.tensor import DTensor

from initreg import rng
from initreg.backends.numpy import NumpyBackend, fused_kernels
from initreg.backends.registry import get_backend
from initreg.drawing import generate
from initreg.errors import InitregError, InvalidArgumentError
from initreg.initializers.base import ElementwiseInitializer
from initreg.interop import torch_buffers, torch_distributed
from initreg.planning import PlanEntry, plan
from initreg.rng import derive_key
from initreg.rules import RuleOptions, Rules, RuleSet
from initreg.slicing import stream_seed

if TYPE_CHECKING:
    from typing_extensions import Unpack

ZERO_ELEMENT_WARNING = "Initializing zero-element tensors is a no-op"  # torch.nn.init's own words


def initialize(
    module: torch.nn.Module,
    rules: Rules,
    seed: int = 0,
    *,
    device: str | torch.device = "cpu",
    backend: Any = None,
    **options: Unpack[RuleOptions],
) -> list[PlanEntry]:
    """Fills `module`'s parameters in place from initreg's stream and returns the plan it followed.

    A parameter's dtype is its own unless its rule sets one (the values are then drawn in the rule's
    dtype and stored in the parameter's). A zero-element parameter is skipped with a warning naming it, as
    torch's initializers skip an empty tensor. Parameters matching no rule keep their values when
    `allow_unmatched_params`; on a meta module that is an error, as they would stay uninitialized.
    `rules` and the options make one RuleSet (see `initreg.planning.plan`); its layout is "torch" unless
    set, and the module's shared parameters are its ties.
    """
    if not isinstance(module, torch.nn.Module):
        raise InvalidArgumentError(f"expected a torch.nn.Module; got {type(module).__name__}")
    untied = untied_declared_ties(module)

    def build() -> RuleSet:
        ties = {**untied, **shared_names(module)}
        ruleset = RuleSet.build(RuleSet.build(rules, **options), ties=ties or None)
        return ruleset if ruleset.layout is not None else replace(ruleset, layout="torch")

    # the ranks compare their rule sets before anything a single rank could refuse
    ruleset = torch_distributed.check_same_rules(build, seed) if torch_distributed.has_dtensors(module) else build()
    entries = plan(dict(module.named_parameters()), ruleset)
    chosen, seed = get_backend(backend), stream_seed(seed)  # checked before a meta module is materialized
    _tie(module, untied)
    from_meta = _on_meta(module)
    if from_meta:
        _check_materializable(module, entries)
        _materialize(module, device)
    filled = {name for entry in entries for name in (entry.path, *entry.aliases)}
    torch_buffers.recompute(module, filled, from_meta=from_meta)
    parameters = dict(module.named_parameters())
    with torch.no_grad():
        for entry in entries:
            parameter = parameters[entry.path]
            if parameter.numel() == 0:
                warnings.warn(
                    f"{ZERO_ELEMENT_WARNING}: parameter {entry.path!r} has shape {tuple(parameter.shape)}",
                    UserWarning, stacklevel=2,
                )  # fmt: skip
                continue
            with _current_device(parameter):
                if isinstance(parameter, DTensor):
                    for view, values in torch_distributed.parameter_pieces(entry, parameter, seed, backend):
                        view.copy_(_to_torch(values))
                elif not _drawn_in_place(parameter, entry, seed, chosen):
                    drawer = torch_distributed.device_backend(parameter, backend)
                    parameter.copy_(_to_torch(generate(entry, seed, chosen if drawer is None else drawer)))
    return entries


def shared_names(module: torch.nn.Module) -> dict[str, str]:
    """{alias: parameter} for each further name of a parameter shared by several modules."""
    first: dict[int, str] = {}
    ties = {}
    for name, parameter in module.named_parameters(remove_duplicate=False):
        owner = first.setdefault(id(parameter), name)
        if owner != name:
            ties[name] = owner
    return ties


def untied_declared_ties(module: torch.nn.Module) -> dict[str, str]:
    """{tied name: source name} of the model's declared ties (transformers' ``all_tied_weights_keys``) whose
    two names are two different parameters now; a pair of different shapes, or on DTensors, raises."""
    declared = getattr(module, "all_tied_weights_keys", None) or {}
    parameters = dict(module.named_parameters(remove_duplicate=False))
    untied = {}
    for alias, source in declared.items():
        if alias not in parameters or source not in parameters or parameters[alias] is parameters[source]:
            continue
        shapes = tuple(parameters[alias].shape), tuple(parameters[source].shape)
        if shapes[0] != shapes[1] or isinstance(parameters[alias], DTensor):
            why = f"shapes {shapes[0]} and {shapes[1]}" if shapes[0] != shapes[1] else "DTensors"
            raise InvalidArgumentError(
                f"the model declares {alias!r} tied to {source!r}, but they are two tensors ({why}) that cannot "
                "be tied again here; tie them first (model.tie_weights())"
            )
        untied[alias] = source
    return untied


def _tie(module: torch.nn.Module, ties: Mapping[str, str]) -> None:
    """Makes each alias of `ties` ({alias: parameter}) the same Parameter as its parameter."""
    for alias, name in ties.items():
        owner, _, attribute = alias.rpartition(".")
        setattr(module.get_submodule(owner), attribute, module.get_parameter(name))


def _on_meta(module: torch.nn.Module) -> bool:
    return any(tensor.is_meta for tensor in (*module.parameters(), *module.buffers()))


def _check_materializable(module: torch.nn.Module, entries: Sequence[PlanEntry]) -> None:
    """Raises unless every tensor of a meta module will be filled after to_empty."""
    torch_buffers.refuse_buffers_on_meta(module)
    covered = {entry.path for entry in entries}
    uncovered = [name for name, _ in module.named_parameters() if name not in covered]
    if uncovered:
        raise InvalidArgumentError(
            f"the module is on the meta device and parameters {uncovered} match no rule: "
            "they would be left uninitialized; add rules for them"
        )


def _materialize(module: torch.nn.Module, device: str | torch.device) -> None:
    """``module.to_empty(device)``, then ties again the parameters it untied (shared weights)."""
    ties = shared_names(module)
    module.to_empty(device=device)
    _tie(module, ties)


def _current_device(tensor: torch.Tensor) -> contextlib.AbstractContextManager[Any]:
    """A CUDA tensor's device made current, so that the ``torch_cuda`` backend ("cuda") draws on it."""
    return torch.cuda.device(tensor.device) if tensor.is_cuda else contextlib.nullcontext()


def _drawn_in_place(parameter: torch.Tensor, entry: PlanEntry, seed: int, backend: Any) -> bool:
    """Whether `entry`'s values were drawn straight into `parameter`'s memory, as `generate` draws them.

    That is done for a parameter on the CPU, contiguous, of the float32 or float64 it is drawn in, by
    an `ElementwiseInitializer` (declared: its elements are drawn from `distribution_for`) with the NumPy
    backend: by its fused kernels, or by the reference (the same bits) while the process's draws are too small
    to be worth loading the kernels (initreg.backends.numpy's `fused_kernels`, which counts this one). Any other
    is left untouched for `generate` and ``copy_``, as is one whose distribution cannot be made (so that
    `generate` reports it). Numba is not imported for a parameter this does not draw.
    """
    initializer = entry.initializer
    if (
        type(backend) is not NumpyBackend or not isinstance(initializer, ElementwiseInitializer)
        or parameter.device.type != "cpu" or not parameter.is_contiguous()
        or parameter.dtype not in (torch.float32, torch.float64) or str(parameter.dtype) != f"torch.{entry.dtype}"
    ):  # fmt: skip
        return False
    try:
        dist = initializer.distribution_for(entry.shape, entry.layout)
    except InitregError:
        return False
    target, key = parameter.detach().numpy(), derive_key(seed, entry.path)
    kernels = fused_kernels(target.size)
    if kernels is None:
        target[...] = rng.draw(dist, key, entry.shape, entry.dtype, np)
    else:
        kernels.draw_into(target, dist, key)
    return True


def _to_torch(values: Any) -> torch.Tensor:
    """A CPU tensor of `values` (a backend array); bfloat16 passes through its 16-bit pattern."""
    if isinstance(values, torch.Tensor):
        return values
    array = np.asarray(values, order="C")  # not ascontiguousarray, which makes a 0-d array 1-d
    if array.dtype.name == "bfloat16":
        return torch.from_numpy(array.view(np.uint16)).view(torch.bfloat16)
    return torch.from_numpy(array)
