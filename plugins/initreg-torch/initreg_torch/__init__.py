"""initreg-torch: PyTorch tensors from initreg's random stream, as the backends ``torch`` and ``torch_cuda``.

initreg finds them through the ``initreg.backends`` entry points declared in pyproject.toml; importing
this package imports no torch.
"""

from initreg_torch.backend import TorchBackend, cpu, cuda

__all__ = ["TorchBackend", "cpu", "cuda"]
