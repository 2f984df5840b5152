"""`check`: whether a model's parameters hold what a rule set or recipe intends, tensor by tensor.

The parameters' names, shapes and dtypes are planned by the rules (initreg.planning.plan, as when
drawing); each tensor is then read piece by piece, each piece's values routed to the component that
owns them (initreg.checking.intended) and measured (initreg.checking.measures). A tensor fails when
it holds a non-finite value, a value outside its intended support, a value that differs from exact
ones or a matrix that is not orthogonal, or when Holm's procedure across the tested tensors rejects
its distribution (initreg.checking.statistics).
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping, Sequence
from typing import Any

from initreg import recipes
from initreg.checking.intended import EXACT_FAMILIES, RANDOM_FAMILIES, Intended, components, expected_values, owners
from initreg.checking.measures import ExactMeasure, MatrixMeasure, Measure, RandomMeasure
from initreg.checking.report import ComponentCheck, Report, TensorCheck
from initreg.checking.sources import Source, Stored, open_source
from initreg.checking.statistics import bonferroni, holm, ks_test, moment_tests
from initreg.checkpoint_config import config_beside
from initreg.errors import InvalidArgumentError
from initreg.planning import PlanEntry, plan
from initreg.progress import WriteProgress
from initreg.rules import Rule
from initreg.write import DEFAULT_CHUNK_BYTES

DEFAULT_ALPHA = 0.01


def check(
    params: Any,
    rules_or_recipe: Any,
    *,
    variables: Mapping[str, Any] | None = None,
    layout: str | None = None,
    alpha: float = DEFAULT_ALPHA,
    chunk_bytes: int = DEFAULT_CHUNK_BYTES,
    allow_unmatched_params: bool = False,
    allow_unused_rules: bool = False,
    keep_samples: bool = False,
    quiet: bool = True,
) -> Report:
    """Checks every parameter of `params` against the distribution `rules_or_recipe` intends for it.

    params: a torch module (its named_parameters, torch layout), a mapping of NumPy, JAX or torch
    arrays, or a .safetensors or .npz path (read lazily, at most about `chunk_bytes` of a tensor at
    once). rules_or_recipe: a recipe's name (loaded for the model: its structural variables, such as n_layer, are
    read from it and, for a file, from the config.json beside it; `variables` given must agree), a Recipe, or rules
    (a mapping, with `variables`, or parsed Rules). layout: how fans are read from shapes ("keras" or
    "torch"); by default the source's. alpha: the family-wise false-alarm rate across tensors (Holm).
    A progress bar runs on stderr unless `quiet`. ``assert initreg.check(model, "hf_gpt2").ok``.
    """
    if isinstance(alpha, bool) or not isinstance(alpha, (int, float)) or not 0 < alpha < 1:
        raise InvalidArgumentError(f"alpha must be a number in (0, 1), the false-alarm rate; got {alpha!r}")
    if isinstance(chunk_bytes, bool) or not isinstance(chunk_bytes, int) or chunk_bytes < 1:
        raise InvalidArgumentError(f"chunk_bytes must be a positive integer (bytes); got {chunk_bytes!r}")
    source = open_source(params)
    try:
        spec = {tensor.name: tensor for tensor in source.tensors}
        model = params if hasattr(params, "named_parameters") else {name: t.shape for name, t in spec.items()}
        beside = config_beside(params) if isinstance(params, (str, os.PathLike)) else None
        rules, variables = _rules(rules_or_recipe, variables, model, beside[0] if beside else None)
        entries = plan(
            spec, rules, layout=layout or source.layout, variables=variables,
            allow_unmatched_params=allow_unmatched_params, allow_unused_rules=allow_unused_rules,
        )  # fmt: skip
        for entry in entries:
            _check_readable(entry, spec[entry.path])
        checks = _measure_all(source, spec, entries, chunk_bytes, keep_samples, quiet)
    finally:
        source.close()
    return _judged(checks, alpha)


def _rules(
    rules_or_recipe: Any, variables: Mapping[str, Any] | None, model: Any, config: Mapping[str, Any] | None
) -> tuple[Any, Mapping[str, Any] | None]:
    """The rules to plan with and their variables, from a recipe's name (loaded for `model` and `config`,
    the checkpoint's config.json, which its structural variables are read from), a Recipe, or rules."""
    if isinstance(rules_or_recipe, str):
        return recipes.load(rules_or_recipe, model, config=config, **(variables or {})).rules, None
    if isinstance(rules_or_recipe, recipes.Recipe):
        if variables:
            raise InvalidArgumentError(
                f"variables go with a recipe's name ({rules_or_recipe.name!r}); a Recipe holds its own"
            )
        return rules_or_recipe.rules, None
    if isinstance(rules_or_recipe, Mapping) or (
        isinstance(rules_or_recipe, Sequence) and all(isinstance(rule, Rule) for rule in rules_or_recipe)
    ):
        return rules_or_recipe, variables
    raise InvalidArgumentError(
        f"rules_or_recipe is {rules_or_recipe!r}; valid: a recipe's name, a Recipe, or a mapping of rules"
    )


def _check_readable(entry: PlanEntry, stored: Stored) -> None:
    """Refuses an empty tensor, one stored in another dtype than its rule makes, and a shape its
    initializer cannot make (identity of rank 3, orthogonal of rank 1), in one line each."""
    try:
        entry.initializer.check(entry.shape, entry.dtype, entry.layout)
    except InvalidArgumentError as error:
        raise InvalidArgumentError(f"parameter {entry.path!r} (rule {entry.rule!r}): {error}") from None
    if stored.size == 0:
        raise InvalidArgumentError(
            f"parameter {entry.path!r} has shape {list(stored.shape)}, no values to check; valid: a tensor with "
            "at least one element (leave empty ones out of the rules with allow_unmatched_params)"
        )
    if entry.dtype != stored.dtype:
        raise InvalidArgumentError(
            f"parameter {entry.path!r} is stored as {stored.dtype}, but rule {entry.rule!r} makes {entry.dtype}; "
            f"valid: a {entry.dtype} tensor"
        )


def _measure(component: Intended, entry: PlanEntry, keep_samples: bool) -> Measure | None:
    if component.family in RANDOM_FAMILIES:
        return RandomMeasure(component, entry.dtype, keep_samples)
    if component.family in EXACT_FAMILIES:
        return ExactMeasure(component, keep_samples)
    if component.family == "orthogonal":
        return MatrixMeasure(component, entry.shape, entry.dtype, keep_samples)
    return None


def _measure_all(
    source: Source, spec: Mapping[str, Stored], entries: Sequence[PlanEntry], chunk_bytes: int,
    keep_samples: bool, quiet: bool,
) -> list[TensorCheck]:  # fmt: skip
    checks = []
    total = sum(entry.nbytes for entry in entries)
    with WriteProgress(total, len(entries), quiet=quiet) as progress:
        for entry in entries:
            progress.start(entry.path)
            checks.append(_measure_tensor(source, spec[entry.path], entry, chunk_bytes, keep_samples))
            progress.advance(entry.nbytes)
    return checks


def _measure_tensor(
    source: Source, stored: Stored, entry: PlanEntry, chunk_bytes: int, keep_samples: bool
) -> TensorCheck:
    intended = components(entry.initializer, entry.shape, entry.layout)
    measures = [_measure(component, entry, keep_samples) for component in intended]
    for index, values in source.values(stored, chunk_bytes):
        owner = owners(entry.initializer, entry.shape, index)
        for number, (component, measure) in enumerate(zip(intended, measures, strict=True)):
            mask = None if owner is None else owner.reshape(-1) == number
            part = values if mask is None else values[mask]
            if measure is None or not part.size:
                continue
            if isinstance(measure, ExactMeasure):
                expected = expected_values(component, entry.shape, index, entry.dtype).astype("float64").reshape(-1)
                measure.add(part, expected if mask is None else expected[mask])
            else:
                measure.add(part)
    parts = [_component_check(component, measure) for component, measure in zip(intended, measures, strict=True)]
    return TensorCheck(entry.path, entry.shape, entry.dtype, entry.rule, parts)


def _component_check(component: Intended, measure: Measure | None) -> ComponentCheck:
    """What one component's measure found: its moments, tests and problems."""
    if measure is None:
        return ComponentCheck(component.describe(), 0, math.nan, math.nan, math.nan, math.nan)
    checked = ComponentCheck(
        component.describe(), measure.count, measure.measured_mean, measure.measured_std, math.nan, math.nan,
        measure.nonfinite, sample=measure.sample,
    )  # fmt: skip
    if measure.nonfinite:
        checked.problems.append(f"{measure.nonfinite} non-finite value(s)")
    if isinstance(measure, RandomMeasure):
        checked.minimum, checked.maximum = measure.minimum, measure.maximum
        checked.thresholds, checked.counts = measure.grid.thresholds, measure.counts
        checked.probabilities, checked.dist = measure.grid.probabilities, component.dist
        if measure.outside:
            where = (
                f"more than {measure.high - measure.mean:.4g} from the mean {measure.mean:.4g}"
                if component.family == "normal"
                else f"outside [{measure.low:.6g}, {measure.high:.6g}]"
            )
            extreme = max(abs(measure.minimum - measure.mean), abs(measure.maximum - measure.mean))
            checked.problems.append(f"{measure.outside} value(s) {where} (farthest at {extreme:.4g})")
        if measure.count:
            checked.tests = [
                ks_test(component, measure.dtype, measure.counts, measure.count),
                *moment_tests(component, measure.count, measure.centred_sum, measure.centred_squares),
            ]
    elif isinstance(measure, ExactMeasure):
        checked.minimum, checked.maximum = measure.minimum, measure.maximum
        if measure.mismatched and measure.first_mismatch is not None:
            found, wanted = measure.first_mismatch
            checked.problems.append(
                f"{measure.mismatched} of {measure.count} value(s) differ from {component.family} "
                f"(first: {found:.6g}, intended {wanted:.6g})"
            )
    else:
        deviation, tolerance = measure.deviation(), measure.tolerance()
        if not deviation <= tolerance:
            checked.problems.append(f"not orthogonal: max |G - gain^2 I| = {deviation:.3g} > {tolerance:.3g}")
    return checked


def _judged(checks: list[TensorCheck], alpha: float) -> Report:
    """Sets each tensor's p-value and verdict: problems fail it, then Holm across the tested tensors."""
    for tensor in checks:
        tensor.p_value = bonferroni([test.p_value for part in tensor.components for test in part.tests])
        tensor.reasons = [problem for part in tensor.components for problem in part.problems]
        if tensor.reasons:
            tensor.verdict = "fail"
        elif all(part.intended["family"] == "unknown" for part in tensor.components):
            tensor.verdict, tensor.reasons = "unchecked", ["the initializer states no distribution"]
    tested = [tensor for tensor in checks if tensor.tested]
    for tensor, rejected in zip(tested, holm([tensor.p_value for tensor in tested], alpha), strict=True):
        if rejected:
            tensor.verdict = "fail"
            tensor.reasons.append(_rejection(tensor))
    method = (
        f"Holm across {len(tested)} tested tensors at alpha={alpha:g}, Bonferroni within a tensor's KS, mean and "
        "variance tests"
    )
    return Report(checks, alpha, method)


def _rejection(tensor: TensorCheck) -> str:
    """Why the statistics reject a tensor: its smallest sub-test p-value, and measured vs intended std."""
    part, test = min(
        ((part, test) for part in tensor.components for test in part.tests), key=lambda found: found[1].p_value
    )
    return (
        f"{test.name} test p={test.p_value:.2g} (tensor p={tensor.p_value:.2g}); std {part.std:.4g}, "
        f"intended {part.intended['std']:.4g}; mean {part.mean:.4g}, intended {part.intended['mean']:.4g}"
    )
