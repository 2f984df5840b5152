"""Two .safetensors files written by the command with the same settings, compared tensor by tensor.

The files must hold the same tensors (names, shapes, dtypes) and the same settings in their ``initreg``
metadata (seed, dtype, rules, variables; the backend may differ). Each tensor's rule is found by planning
the file's tensors with the run's rules, in their order (the metadata's are sorted by name, which loses
last-match-wins: bench/gpu_check.py reads them from the command's composed config), and its values are
compared as the random stream's contract allows (docs/stream.md, "Reference and fast paths"): bit for bit
where no libm call is involved (uniform samples, constants such as zeros and ones), else within MAX_ULPS
ulps of max(|value|, the tensor's std) (samples through erfinv: normal and truncated normal). One result per
tensor; any other random initializer (Orthogonal's QR, ...) is a failed check, as this comparison does not
cover it.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import numpy as np

from initreg.distributions import UniformDist
from initreg.initializers.base import ElementwiseInitializer, RandomInitializer
from initreg.planning import PlanEntry, plan

MAX_ULPS = 4  # in ulps of max(|value|, the distribution's std)
BLOCK_ELEMENTS = 1 << 24  # elements compared at a time, bounding the float64 temporaries
SAME_SETTINGS = ("seed", "dtype", "rules", "variables", "model", "recipe")  # what both runs must share

Result = tuple[str, bool, str]  # (check, passed, detail)


def plain_ulps(actual: np.ndarray, expected: np.ndarray) -> int:
    """max number of floats between actual and expected (float32 or float64)."""
    signed = np.int32 if expected.dtype == np.float32 else np.int64

    def ordered(values: np.ndarray) -> np.ndarray:
        bits = values.view(signed).astype(np.int64)
        return np.where(bits < 0, -(bits & np.iinfo(signed).max), bits)

    return int(np.abs(ordered(actual) - ordered(expected)).max(initial=0))


def ulps_at_scale(actual: np.ndarray, expected: np.ndarray, scale: float) -> float:
    """max |actual - expected| in ulps of max(|expected|, scale)."""
    magnitude = np.maximum(np.abs(expected), np.asarray(scale, dtype=expected.dtype))
    return float((np.abs(actual.astype(np.float64) - expected) / np.spacing(magnitude)).max(initial=0.0))


def bit_exact(entry: PlanEntry) -> bool | None:
    """Whether the contract makes `entry`'s values identical on every backend: True for uniform samples and
    initializers that draw nothing (zeros, ones, constants), False for samples through erfinv (normal,
    truncated normal), None for any other (Orthogonal's QR, ...), which this comparison does not cover."""
    initializer = entry.initializer
    if isinstance(initializer, ElementwiseInitializer):
        return isinstance(initializer.distribution_for(entry.shape, entry.layout), UniformDist)
    return None if isinstance(initializer, RandomInitializer) else True


def _settings(metadata: dict[str, str] | None, path: Path) -> dict[str, Any]:
    if not metadata or "initreg" not in metadata:
        raise ValueError(f"{path} has no initreg metadata: not written by the initreg command")
    return dict(json.loads(metadata["initreg"]))


def _blocks(array: np.ndarray) -> Iterator[slice]:
    for start in range(0, array.size, BLOCK_ELEMENTS):
        yield slice(start, start + BLOCK_ELEMENTS)


def compare_tensor(name: str, actual: np.ndarray, expected: np.ndarray, exact: bool) -> Result:
    """One tensor: bit for bit if `exact`, else within MAX_ULPS at the scale of its std."""
    check = f"file tensor {name} {'bit for bit' if exact else f'within {MAX_ULPS} ulps'}"
    if actual.dtype != expected.dtype or actual.shape != expected.shape:
        return check, False, f"{actual.dtype}{list(actual.shape)} against {expected.dtype}{list(expected.shape)}"
    flat_actual, flat_expected = actual.reshape(-1), expected.reshape(-1)
    differing, worst, worst_plain = 0, 0.0, 0
    scale = float(np.std(expected, dtype=np.float64)) if expected.size else 0.0
    for block in _blocks(flat_actual):
        one, other = flat_actual[block], flat_expected[block]
        differing += int(np.count_nonzero(one.view(f"u{one.itemsize}") != other.view(f"u{other.itemsize}")))
        if not exact:
            worst = max(worst, ulps_at_scale(one, other, scale))
            worst_plain = max(worst_plain, plain_ulps(one, other))
    passed = differing == 0 if exact else worst <= MAX_ULPS
    detail = f"{differing:,} of {expected.size:,} differ"
    if not exact:
        detail += f", ulps {worst_plain}, ulps at scale {worst:.1f}"
    return check, passed, detail


def compare_files(reference: Path, other: Path, rules: Mapping[str, Any], variables: Mapping[str, Any]) -> list[Result]:
    """The checks of `other` against `reference` (see the module docstring), one per tensor after the header's;
    `rules` (in order) and `variables` are the run's."""
    from safetensors import safe_open

    with safe_open(str(reference), framework="numpy") as expected, safe_open(str(other), framework="numpy") as actual:
        mine, theirs = _settings(expected.metadata(), reference), _settings(actual.metadata(), other)
        differing = [key for key in SAME_SETTINGS if mine.get(key) != theirs.get(key)]
        names = list(expected.keys())
        header = (
            "file settings and tensor names agree",
            not differing and sorted(names) == sorted(actual.keys()),
            f"settings differing: {differing}; backends {mine.get('backend')} and {theirs.get('backend')}",
        )
        if not header[1]:
            return [header]
        shapes = {name: tuple(expected.get_slice(name).get_shape()) for name in names}
        entries = plan(shapes, dict(rules), variables=dict(variables), dtype=mine["dtype"], allow_unused_rules=True)
        results = [header]
        for entry in entries:
            exact = bit_exact(entry)
            if exact is None:
                results.append((f"file tensor {entry.path}", False, f"no comparison for {entry.initializer!r}"))
                continue
            actual_values, expected_values = actual.get_tensor(entry.path), expected.get_tensor(entry.path)
            results.append(compare_tensor(entry.path, actual_values, expected_values, exact))
        return results
