"""Shared test setup: Keras runs on its NumPy backend; fake plugin distributions."""

import os
import textwrap
from collections.abc import Callable
from pathlib import Path

import pytest

os.environ.setdefault("KERAS_BACKEND", "numpy")


def write_distribution(
    root: Path, name: str, entry_points: dict[str, dict[str, str]], modules: dict[str, str] | None = None
) -> None:
    """A minimal installed distribution in `root` (a sys.path folder): NAME-1.0.dist-info, plus modules."""
    info = root / f"{name.replace('-', '_')}-1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: 1.0\n")
    sections = [
        f"[{group}]\n" + "".join(f"{point} = {target}\n" for point, target in points.items())
        for group, points in entry_points.items()
    ]
    (info / "entry_points.txt").write_text("\n".join(sections))
    for module, source in (modules or {}).items():
        (root / f"{module}.py").write_text(textwrap.dedent(source))


@pytest.fixture(name="write_distribution")
def write_distribution_fixture() -> Callable[..., None]:
    """write_distribution(root, name, entry_points, modules): a fake installed distribution in root."""
    return write_distribution
