"""`initreg.check`: whether a model holds what its rules or recipe intend, tensor by tensor (docs/check.md)."""

from initreg.checking.conformance import check
from initreg.checking.report import ComponentCheck, Report, TensorCheck

__all__ = ["ComponentCheck", "Report", "TensorCheck", "check"]
