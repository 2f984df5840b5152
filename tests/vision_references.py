"""timm and torchvision, the vision recipes' references, importable on the CPU build of torch.

torchvision's wheels on the package index (0.28.0 for torch 2.13.0) are built against CUDA torch: their C
extension ``torchvision/_C.so`` links libtorch_cuda and does not load with the CPU build, and torchvision then
imports its Python parts without ops, except that ``torchvision/_meta_registrations.py`` registers fake
kernels for ``torchvision::nms`` and ``torchvision::qnms`` unconditionally, which fails with "operator
torchvision::nms does not exist". timm imports torchvision, and so does transformers whenever torchvision is
installed (it builds no GPT-2 then). So both live outside the virtual environment's site-packages, in
REFERENCES (``.venv/vision-references``), where the test command installs them::

    .venv/bin/pip install --no-deps --target .venv/vision-references 'timm==1.0.31' 'torchvision==0.28.0'

and only this module puts them on ``sys.path``, while it imports them (so that a process the tests start,
such as torch.distributed's spawned ranks, does not find them). When torchvision's extension does not load,
it stubs exactly the two registrations: it defines the schemas of those operators (as torchvision's C++ code
declares them, ``nms(Tensor dets, Tensor scores, float iou_threshold) -> Tensor``) without any kernel, so
that they succeed, then imports torchvision and timm. Nothing else is replaced: the models and their init
code (``torchvision.models.resnet``, ``timm.models.vision_transformer``, ``timm.layers.weight_init``) are the
packages' own, run as they are. Calling ``torchvision.ops.nms`` would fail (no kernel); no test here does.
"""

from __future__ import annotations

import sys
from pathlib import Path

import torch

REFERENCES = Path(sys.prefix) / "vision-references"
INSTALL = f"pip install --no-deps --target {REFERENCES} 'timm==1.0.31' 'torchvision==0.28.0'"
_STUBBED = ("nms", "qnms")
_KEEP: list[torch.library.Library] = []  # the stub definitions live as long as their library object


def _extension_loads() -> bool:
    """Whether torchvision's own C extension loads here (then its operators are real and nothing is stubbed)."""
    built = sorted((REFERENCES / "torchvision").glob("_C*.so"))
    try:
        torch.ops.load_library(str(built[0]))
    except (IndexError, OSError):
        return False
    return True


if not (REFERENCES / "torchvision").is_dir() or not (REFERENCES / "timm").is_dir():
    raise ImportError(f"the vision references are not installed in {REFERENCES}: {INSTALL}")
if not _extension_loads():
    _KEEP.append(torch.library.Library("torchvision", "FRAGMENT"))
    for _name in _STUBBED:
        _KEEP[0].define(f"{_name}(Tensor dets, Tensor scores, float iou_threshold) -> Tensor")

sys.path.append(str(REFERENCES))
try:  # on the path only while they import: processes this one starts (torch.distributed's) must not find them
    import timm
    import timm.models.vision_transformer as timm_vit
    import torchvision
    import torchvision.models.resnet as torchvision_resnet
finally:
    sys.path.remove(str(REFERENCES))

__all__ = ["timm", "timm_vit", "torchvision", "torchvision_resnet"]
