"""TorchBackend: torch tensors on the CPU (backend "torch") or the current CUDA device ("torch_cuda").

Two ways to draw, chosen by `stream_on_device` (by default: on the CPU through NumPy, elsewhere on the device):

- through NumPy (the "torch" backend): the random stream is drawn by initreg's NumPy backend (its fused CPU
  kernel where numba is installed) in the requested dtype and handed to torch without a copy
  (torch.from_numpy; bfloat16 moves as its int16 bits). Words and samples are NumPy's bit for bit, float16
  and bfloat16 included.
- on the device (the "torch_cuda" backend): the reference stream of initreg.rng runs on torch tensors on
  the backend's device (it needs only int64 arithmetic, which torch has: its unsigned types lack shifts and
  additions), so nothing passes through the host. Words and uniform samples are NumPy's bit for bit (each
  torch operation rounds once, as NumPy's does); samples through erfinv are within a few ulp (the device's
  log against NumPy's; docs/stream.md, "Reference and fast paths"). Samples are computed in float32 or
  float64 and then cast, as on NumPy (casting float32 samples afterwards would not keep the bounds: the
  stream clips to bounds exact in the target dtype before rounding to it).

Initializers use the reference on torch's namespace for their auxiliary words (Sparse's ranks) either way.
Everything else (Constant, Identity, Orthogonal's QR, ...) runs on torch through array_api_compat's torch
namespace, with its creation functions placed on the backend's device.
"""

from __future__ import annotations

import importlib.util
from typing import Any

from initreg import rng
from initreg.backends.base import Array, Backend
from initreg.backends.cupy import cuda_driver_problem
from initreg.distributions import Distribution
from initreg.dtypes import FLOAT_DTYPES
from initreg.errors import BackendUnavailableError, InvalidArgumentError, choices
from initreg.lazy import locked_cached_property
from initreg.registry import get_backend
from initreg_torch.device_namespace import DeviceNamespace


class TorchBackend(Backend):
    """torch tensors on `device` ("cpu", "cuda", ...), drawn on that device by the reference stream when
    `stream_on_device` (default: unless the device is the CPU), else through initreg's NumPy backend."""

    def __init__(self, name: str, device: str, *, stream_on_device: bool | None = None) -> None:
        super().__init__(name, "torch")
        self.device = device
        self.stream_on_device = device != "cpu" if stream_on_device is None else stream_on_device

    def __repr__(self) -> str:
        how = "stream on the device" if self.stream_on_device else "stream through NumPy"
        return f"<initreg backend {self.name!r} (torch on {self.device}, {how})>"

    def unavailable_reason(self) -> str | None:
        """Why it cannot run, read without importing torch: torch missing, or no CUDA device."""
        if importlib.util.find_spec("torch") is None:
            return "torch is not installed (pip install torch)"
        return cuda_driver_problem() if self.device.startswith("cuda") else None

    @locked_cached_property
    def xp(self) -> Any:
        reason = self.unavailable_reason()
        if reason:
            raise BackendUnavailableError(f"backend {self.name!r} is unavailable: {reason}")
        import array_api_compat.torch
        import torch

        if self.device.startswith("cuda") and not torch.cuda.is_available():
            raise BackendUnavailableError(
                f"backend {self.name!r} is unavailable: this torch build ({torch.__version__}) cannot use CUDA"
            )
        return DeviceNamespace(array_api_compat.torch, torch.device(self.device))

    def dtype(self, name: str) -> Any:
        if name not in FLOAT_DTYPES:
            raise InvalidArgumentError(
                f"dtype {name!r} is not supported by the {self.name!r} backend; valid: {choices(FLOAT_DTYPES)}"
            )
        return getattr(self.xp.namespace, name)

    def cast(self, array: Array, dtype: str) -> Array:
        return array.to(device=self.xp.device, dtype=self.dtype(dtype))

    def _from_numpy(self, array: Any) -> Array:
        """A NumPy array (bfloat16 from ml_dtypes included) as a tensor on the device, bits unchanged."""
        import torch

        if array.dtype.name == "bfloat16":  # NumPy has no bfloat16: move the bits as int16
            return torch.from_numpy(array.view("int16")).view(torch.bfloat16).to(self.xp.device)
        return torch.from_numpy(array).to(self.xp.device)

    def draw(self, dist: Distribution, key: rng.Key, shape: tuple[int, ...], dtype: str) -> Array:
        if self.stream_on_device:
            return super().draw(dist, key, shape, dtype)
        return self._from_numpy(get_backend("numpy").draw(dist, key, shape, dtype))

    def draw_slice(
        self, dist: Distribution, key: rng.Key, shape: tuple[int, ...], index: tuple[slice, ...], dtype: str
    ) -> Array:
        if self.stream_on_device:
            return super().draw_slice(dist, key, shape, index, dtype)
        return self._from_numpy(get_backend("numpy").draw_slice(dist, key, shape, index, dtype))

    def words(self, key: rng.Key, start: int, count: int) -> Array:
        if self.stream_on_device:
            return super().words(key, start, count)
        return self._from_numpy(get_backend("numpy").words(key, start, count))

    def to_numpy(self, array: Array) -> Any:
        import torch

        host = array.detach().cpu()
        if host.dtype == torch.bfloat16:  # NumPy has no bfloat16: reinterpret the bits as ml_dtypes'
            import ml_dtypes

            return host.view(torch.int16).numpy().view(ml_dtypes.bfloat16)
        return host.numpy()


cpu = TorchBackend("torch", "cpu")
cuda = TorchBackend("torch_cuda", "cuda")
