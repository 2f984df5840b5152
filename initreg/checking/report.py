"""The result of a check: per tensor its intended components, what was measured, the tests and a verdict."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from initreg.checking.statistics import SubTest
from initreg.errors import printable
from initreg.text_table import Column, TextTable

VERDICTS = ("ok", "fail", "unchecked")


@dataclass
class ComponentCheck:
    """One component of a tensor: what it should be, how many values it has, what they are.

    `problems` are the findings that fail the tensor whatever the statistics say (non-finite values,
    values outside the support, values that differ from exact ones, a matrix that is not orthogonal).
    `thresholds`, `counts` and `probabilities` are the KS grid's (for plots); `sample` some values, when kept.
    """

    intended: dict[str, Any]
    elements: int
    mean: float
    std: float
    minimum: float
    maximum: float
    nonfinite: int = 0
    tests: list[SubTest] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    thresholds: Any = None
    counts: Any = None
    probabilities: Any = None
    sample: list[float] | None = None
    dist: Any = None  # the intended distribution of a random component (initreg.distributions)

    def to_dict(self) -> dict[str, Any]:
        """Plain data: intended, measured, tests and problems (not the grid or the sample)."""
        return {
            "intended": self.intended,
            "elements": self.elements,
            "measured": {
                "mean": _plain(self.mean),
                "std": _plain(self.std),
                "min": _plain(self.minimum),
                "max": _plain(self.maximum),
                "nonfinite": self.nonfinite,
            },
            "tests": [{"name": t.name, "statistic": _plain(t.statistic), "p_value": t.p_value} for t in self.tests],
            "problems": list(self.problems),
        }


@dataclass
class TensorCheck:
    """One parameter: its path, shape, dtype and rule, its components, its p-value (Bonferroni over its
    sub-tests; 1 without any), its verdict (one of VERDICTS) and the reasons for it."""

    path: str
    shape: tuple[int, ...]
    dtype: str
    rule: str
    components: list[ComponentCheck]
    p_value: float = 1.0
    verdict: str = "ok"
    reasons: list[str] = field(default_factory=list)

    @property
    def tested(self) -> bool:
        """Whether it has statistical sub-tests (and so takes part in Holm's procedure)."""
        return any(component.tests for component in self.components)

    @property
    def intended_text(self) -> str:
        """The intended components in words: ``normal(mean=0, std=0.02)``, joined by `` + `` for an overlay."""
        return " + ".join(_intended_text(component.intended) for component in self.components)

    def to_dict(self) -> dict[str, Any]:
        """Plain data (JSON-serializable)."""
        return {
            "path": self.path, "shape": list(self.shape), "dtype": self.dtype, "rule": self.rule,
            "verdict": self.verdict, "p_value": self.p_value, "reasons": list(self.reasons),
            "components": [component.to_dict() for component in self.components],
        }  # fmt: skip


@dataclass
class Report:
    """All tensors' checks; `ok` when none fails. `alpha` is Holm's family-wise level across tensors."""

    tensors: list[TensorCheck]
    alpha: float
    method: str

    @property
    def ok(self) -> bool:
        """Whether every checked tensor conforms."""
        return not self.failures

    @property
    def failures(self) -> list[TensorCheck]:
        """The tensors that do not conform."""
        return [tensor for tensor in self.tensors if tensor.verdict == "fail"]

    @property
    def unchecked(self) -> list[TensorCheck]:
        """The tensors whose initializer states no distribution to check against."""
        return [tensor for tensor in self.tensors if tensor.verdict == "unchecked"]

    def __bool__(self) -> bool:
        return self.ok

    def summary(self) -> str:
        """One line: how many tensors conform, fail and were not checked, and the correction used."""
        count = len(self.tensors)
        passed = count - len(self.failures) - len(self.unchecked)
        elements = sum(math.prod(tensor.shape) for tensor in self.tensors)
        line = f"{passed} of {count} tensors conform, {len(self.failures)} fail"
        if self.unchecked:
            line += f", {len(self.unchecked)} not checked"
        return f"{line} ({elements:,} values; {self.method})"

    def to_dict(self) -> dict[str, Any]:
        """Plain data (JSON-serializable): ok, alpha, method, summary and every tensor."""
        return {
            "ok": self.ok, "alpha": self.alpha, "method": self.method, "summary": self.summary(),
            "failures": [tensor.path for tensor in self.failures],
            "tensors": [tensor.to_dict() for tensor in self.tensors],
        }  # fmt: skip

    def table(self) -> TextTable:
        """The command's table: one row per tensor, failures first, with the verdict and its reason."""
        columns = [Column("path"), Column("shape", wrap=True), Column("dtype"), Column("rule")]
        columns.append(Column("intended", wrap=True))
        columns += [Column(name, right=True) for name in ("intended std", "measured std", "p")]
        table = TextTable([*columns, Column("verdict", wrap=True)])
        for tensor in ordered(self.tensors):
            intended_std = [c.intended.get("std", math.nan) for c in tensor.components]
            cells = [
                tensor.path, str(list(tensor.shape)), tensor.dtype, tensor.rule, tensor.intended_text,
                _number(intended_std[0]) if len(intended_std) == 1 else "-",
                _number(_overall_std(tensor)), f"{tensor.p_value:.2g}" if tensor.tested else "-",
                tensor.verdict + (": " + "; ".join(tensor.reasons) if tensor.reasons else ""),
            ]  # fmt: skip
            colour = {"fail": "red", "unchecked": "yellow"}.get(tensor.verdict)
            table.add_row(*(printable(cell) for cell in cells), colour=colour)
        return table


def ordered(tensors: list[TensorCheck]) -> list[TensorCheck]:
    """Failures first, then the unchecked, then the rest, each in the source's order."""
    rank = {"fail": 0, "unchecked": 1, "ok": 2}
    return sorted(tensors, key=lambda tensor: rank[tensor.verdict])


def _overall_std(tensor: TensorCheck) -> float:
    """The std of the whole tensor's finite values, from its components' counts, means and stds."""
    parts = [c for c in tensor.components if c.elements - c.nonfinite > 0 and not math.isnan(c.mean)]
    total = sum(c.elements - c.nonfinite for c in parts)
    if not total:
        return math.nan
    mean = sum((c.elements - c.nonfinite) * c.mean for c in parts) / total
    second = sum((c.elements - c.nonfinite) * (c.std**2 + c.mean**2) for c in parts) / total
    return math.sqrt(max(0.0, second - mean * mean))


def _intended_text(intended: dict[str, Any]) -> str:
    details = ", ".join(f"{key}={_number(value) if isinstance(value, float) else value}"
                        for key, value in intended.items() if key != "family")  # fmt: skip
    return f"{intended['family']}({details})"


def _number(value: float) -> str:
    return "-" if math.isnan(value) else f"{value:.4g}"


def _plain(value: float) -> float | None:
    """A float for JSON: None for NaN or an infinity."""
    return value if math.isfinite(value) else None
