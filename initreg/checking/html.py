"""The HTML report: per tensor, or per group of identically shaped tensors with the same intended
distribution and verdict, the histogram against the intended density and a QQ plot; failures first.

One self-contained file (PNG figures embedded as data URIs), written atomically. Needs matplotlib
(the `report` extra); figures are drawn without pyplot, so no display is needed and a user's backend
is left alone. The histogram's bars are the KS
grid's counts over its thresholds (every value counted, not a sample); the QQ plot sets each kept
value (the first SAMPLE_SIZE of a tensor) against the intended quantile of its rank, (i - 1/2) / n.
Exact components (constants, identity) show the values' histogram and the intended values; an
orthogonal one its values' histogram.
"""

from __future__ import annotations

import base64
import html
import io as bytes_io
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from initreg.checking.report import ComponentCheck, Report, TensorCheck, ordered
from initreg.checking.statistics import quantiles
from initreg.errors import InvalidArgumentError
from initreg.io import atomic_file

MAX_FIGURES = 200  # groups drawn; the rest are listed in the table only
FIGURE_SIZE = (9.0, 3.2)
DPI = 80


def report_path(path: str | Path) -> Path:
    """`path` as a Path; raises in one line unless it ends in .html (or .htm) and matplotlib can be imported."""
    chosen = Path(path)
    if chosen.suffix.lower() not in (".html", ".htm"):
        raise InvalidArgumentError(f"the HTML report's path {str(chosen)!r} must end in .html")
    require_matplotlib()
    return chosen


def require_matplotlib() -> None:
    """Raises in one line unless matplotlib can be imported."""
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        raise InvalidArgumentError(
            "the HTML report needs matplotlib; install it with: pip install 'initreg[report]'"
        ) from None


def groups(report: Report) -> list[list[TensorCheck]]:
    """Tensors grouped by (shape, dtype, intended distribution, verdict); a failure alone; failures first."""
    grouped: dict[Any, list[TensorCheck]] = {}
    for tensor in ordered(report.tensors):
        key: Any = (tensor.shape, tensor.dtype, tensor.intended_text, tensor.verdict)
        grouped.setdefault(tensor.path if tensor.verdict == "fail" else key, []).append(tensor)
    return list(grouped.values())


def _merged(tensors: Sequence[TensorCheck], number: int) -> ComponentCheck:
    """Component `number` of a group: grid counts summed, samples joined, the first tensor's rest."""
    first = tensors[0].components[number]
    if len(tensors) == 1:
        return first
    counts = None if first.counts is None else sum(t.components[number].counts for t in tensors)
    sample = [value for t in tensors for value in (t.components[number].sample or [])]
    merged = ComponentCheck(**{**first.__dict__, "counts": counts, "sample": sample})
    merged.elements = sum(t.components[number].elements - t.components[number].nonfinite for t in tensors)
    return merged


def _figure(tensors: Sequence[TensorCheck]) -> str:
    """The group's figure as base64 PNG: per component, a histogram against the density, and a QQ plot."""
    from matplotlib.figure import Figure  # not pyplot: a user's backend and figures are left alone

    parts = [_merged(tensors, number) for number in range(len(tensors[0].components))]
    figure = Figure(figsize=(FIGURE_SIZE[0], FIGURE_SIZE[1] * len(parts)), dpi=DPI)
    axes = figure.subplots(len(parts), 2, squeeze=False)
    colour = "tab:red" if tensors[0].verdict == "fail" else "tab:blue"
    for part, (left, right) in zip(parts, axes, strict=True):
        if part.counts is not None:
            _histogram(left, part, colour)
            _qq(right, part, colour)
        else:
            _exact(left, part, colour)
            right.axis("off")
    figure.tight_layout()
    buffer = bytes_io.BytesIO()
    figure.savefig(buffer, format="png")
    return base64.b64encode(buffer.getvalue()).decode("ascii")


def _histogram(axis: Any, part: ComponentCheck, colour: str) -> None:
    """Measured density between the grid's thresholds (bars) and the intended one (line)."""
    import numpy as np

    edges = part.thresholds
    if len(edges) < 2:
        axis.text(0.5, 0.5, "too few thresholds to plot", ha="center", transform=axis.transAxes)
        return
    step = max(1, len(edges) // 64)  # about 64 bars
    chosen = edges[::step]
    below = np.cumsum(part.counts[:-1])[::step]  # values <= each chosen threshold
    intended = part.probabilities[::step]
    widths = np.diff(chosen)
    total = max(1, int(np.sum(part.counts)))
    measured = np.diff(below) / total / widths
    axis.bar(chosen[:-1], measured, width=widths, align="edge", color=colour, alpha=0.5, label="measured")
    axis.plot((chosen[:-1] + chosen[1:]) / 2, np.diff(intended) / widths, color="black", label="intended")
    axis.set_title(f"density ({part.intended['family']})", fontsize=9)
    axis.legend(fontsize=7)


def _qq(axis: Any, part: ComponentCheck, colour: str) -> None:
    """Kept values against the intended quantiles of their ranks, and the line y = x."""
    import numpy as np

    values = np.sort(np.asarray(part.sample or [], dtype=np.float64))
    if not values.size or part.dist is None:
        axis.text(0.5, 0.5, "no values kept", ha="center", transform=axis.transAxes)
        return
    expected = quantiles(part.dist, (np.arange(values.size) + 0.5) / values.size)
    axis.plot(expected, values, ".", markersize=2, color=colour)
    low, high = float(min(expected.min(), values.min())), float(max(expected.max(), values.max()))
    axis.plot([low, high], [low, high], color="black", linewidth=0.8)
    axis.set_title("QQ: measured vs intended quantiles", fontsize=9)


def _exact(axis: Any, part: ComponentCheck, colour: str) -> None:
    """Exact values: the kept values' histogram and the intended value."""
    import numpy as np

    values = np.asarray(part.sample or [], dtype=np.float64)
    if values.size:
        axis.hist(values, bins=32, color=colour, alpha=0.6)
    if "value" in part.intended and isinstance(part.intended["value"], (int, float)):
        axis.axvline(float(part.intended["value"]), color="black", label="intended")
        axis.legend(fontsize=7)
    axis.set_title(f"values ({part.intended['family']})", fontsize=9)


def render(report: Report) -> str:
    """The whole HTML page."""
    rows = []
    for tensor in ordered(report.tensors):
        reasons = "; ".join(tensor.reasons)
        rows.append(
            f"<tr class='{tensor.verdict}'><td>{html.escape(tensor.path)}</td><td>{list(tensor.shape)}</td>"
            f"<td>{tensor.dtype}</td><td>{html.escape(tensor.intended_text)}</td>"
            f"<td>{tensor.p_value:.2g}</td><td>{tensor.verdict}</td><td>{html.escape(reasons)}</td></tr>"
        )
    sections = []
    grouped = groups(report)
    for tensors in grouped[:MAX_FIGURES]:
        names = tensors[0].path + (f" and {len(tensors) - 1} more like it" if len(tensors) > 1 else "")
        sections.append(
            f"<section class='{tensors[0].verdict}'><h3>{html.escape(names)} — {tensors[0].verdict}</h3>"
            f"<p>{list(tensors[0].shape)} {tensors[0].dtype}: {html.escape(tensors[0].intended_text)}</p>"
            f"<img alt='{html.escape(tensors[0].path)}' src='data:image/png;base64,{_figure(tensors)}'></section>"
        )
    left = len(grouped) - MAX_FIGURES
    more = f"<p>{left} more groups are in the table only.</p>" if left > 0 else ""
    status = "conforms" if report.ok else f"{len(report.failures)} tensor(s) do not conform"
    return (
        "<!DOCTYPE html><html><head><meta charset='utf-8'><title>initreg check</title><style>"
        "body{font-family:sans-serif;margin:1.5em}table{border-collapse:collapse;font-size:12px}"
        "td,th{border:1px solid #ccc;padding:2px 6px}tr.fail{background:#fdd}tr.unchecked{background:#ffd}"
        "section.fail h3{color:#b00}</style></head><body>"
        f"<h1>initreg check: {html.escape(status)}</h1><p>{html.escape(report.summary())}</p>"
        "<table><tr><th>path</th><th>shape</th><th>dtype</th><th>intended</th><th>p</th><th>verdict</th>"
        f"<th>reasons</th></tr>{''.join(rows)}</table>{''.join(sections)}{more}</body></html>"
    )


def write_html(report: Report, path: str | Path) -> Path:
    """Writes `render(report)` to `path` (a .html file) atomically, making its missing folders; returns the path."""
    path = report_path(path)
    page = render(report).encode("utf-8")
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_file(path) as file:
        file.write(page)
    return path
