"""timm and torchvision, the vision recipes' references, importable on the CPU build of torch.

torchvision's wheels on the package index (0.28.0 for torch 2.13.0) are built against CUDA torch: their C
extension ``torchvision/_C.so`` links libtorch_cuda and does not load with the CPU build, and torchvision then
imports its Python parts without ops, except that ``torchvision/_meta_registrations.py`` registers fake
kernels for ``torchvision::nms`` and ``torchvision::qnms`` unconditionally, which fails with "operator
torchvision::nms does not exist". timm imports torchvision.

When that extension does not load here, this module stubs exactly that: it defines the schemas of those
two operators (as torchvision's C++ code declares them, ``nms(Tensor dets, Tensor scores, float
iou_threshold) -> Tensor``) without any kernel, so that the registrations succeed, then imports torchvision
and timm. Nothing else is replaced: the models and their init code (``torchvision.models.resnet``,
``timm.models.vision_transformer``, ``timm.layers.weight_init``) are the packages' own, run as they are.
Calling ``torchvision.ops.nms`` would fail (no kernel); no test here does. Where the extension loads (a
torchvision built for this torch), nothing is stubbed.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import torch

_STUBBED = ("nms", "qnms")
_KEEP: list[torch.library.Library] = []  # the stub definitions live as long as their library object


def _extension_loads() -> bool:
    """Whether torchvision's own C extension loads here (then its operators are real and nothing is stubbed)."""
    spec = importlib.util.find_spec("torchvision")
    folder = Path(spec.origin).parent if spec is not None and spec.origin else None
    built = sorted(folder.glob("_C*.so")) if folder is not None else []
    try:
        torch.ops.load_library(str(built[0]))
    except (IndexError, OSError):
        return False
    return True


if not _extension_loads():
    _KEEP.append(torch.library.Library("torchvision", "FRAGMENT"))
    for _name in _STUBBED:
        _KEEP[0].define(f"{_name}(Tensor dets, Tensor scores, float iou_threshold) -> Tensor")

import timm  # noqa: E402
import timm.models.vision_transformer as timm_vit  # noqa: E402
import torchvision  # noqa: E402
import torchvision.models.resnet as torchvision_resnet  # noqa: E402

__all__ = ["timm", "timm_vit", "torchvision", "torchvision_resnet"]
