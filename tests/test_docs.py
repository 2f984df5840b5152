"""The docs stay true to the repository: README's links, the test ids and paths the pages cite, the
stream's known-answer vectors, and the test command's docs build.

The site itself is built by the test command (`mkdocs build --strict`), which checks the links and
anchors inside docs/; the links in README.md lie outside the site and are checked here.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import numpy as np
import pytest

from initreg import rng

REPO = Path(__file__).resolve().parents[1]
README = REPO / "README.md"
PAGES = sorted((REPO / "docs").rglob("*.md"))
DOCUMENTS = [README, *PAGES]
MARKDOWN_LINK = re.compile(r"\[[^\]]*\]\(([^)\s]+)\)")
FENCED_BLOCK = re.compile(r"^ *```.*?^ *```$", re.MULTILINE | re.DOTALL)
CODE_SPAN = re.compile(r"`([^`]+)`")
TEST_ID = re.compile(r"((?:tests|plugins/[\w-]+/tests)/[\w/]+\.py)::(\w+)")
TOP_FOLDERS = r"(?:\.ci|bench|configs|examples|hydra_plugins|initreg|plugins|tests)"
REPOSITORY_PATH = re.compile(rf"(?:^|[\s(])({TOP_FOLDERS}/[\w./-]*)")
HEX_WORDS = re.compile(r"`((?:[0-9a-f]{1,8} ?)+)`")


def relative_links(document: Path) -> list[str]:
    """The link targets of `document` that are neither web addresses nor anchors within the page."""
    targets = MARKDOWN_LINK.findall(document.read_text())
    return [t for t in targets if not re.match(r"[a-z]+:", t) and not t.startswith("#")]


def cited(pattern: re.Pattern[str]) -> set[tuple[str, ...]]:
    """Every match of `pattern` inside the code spans of README.md and docs/ (backslash escapes skipped)."""
    texts = (FENCED_BLOCK.sub("", document.read_text()) for document in DOCUMENTS)
    spans = (span for text in texts for span in CODE_SPAN.findall(text) if "\\" not in span)
    return {match if isinstance(match, tuple) else (match,) for span in spans for match in pattern.findall(span)}


def test_every_relative_link_in_the_readme_names_an_existing_file():
    links = relative_links(README)
    assert any(link.startswith("docs/") for link in links)
    missing = [link for link in links if not (REPO / link.split("#")[0]).exists()]
    assert not missing, f"README.md links to missing files: {missing}"


def test_the_readme_links_every_page_of_the_docs():
    linked = {(REPO / link.split("#")[0]).resolve() for link in relative_links(README)}
    pages = {page.resolve() for page in PAGES if page.parent == REPO / "docs" and page.name != "index.md"}
    assert pages <= linked, f"pages the README does not link: {sorted(p.name for p in pages - linked)}"


def test_every_cited_test_id_names_a_test_function_in_that_file():
    ids = cited(TEST_ID)
    assert len(ids) > 50  # the reliability ledger's ids are found
    missing = []
    for path, name in sorted(ids):
        tree = ast.parse((REPO / path).read_text())
        functions = {node.name for node in ast.walk(tree) if isinstance(node, ast.FunctionDef)}
        if name not in functions:
            missing.append(f"{path}::{name}")
    assert not missing, f"the docs cite tests that do not exist: {missing}"


def test_every_cited_repository_path_exists():
    paths = {path.rstrip(".") for (path,) in cited(REPOSITORY_PATH)}
    assert {"initreg/rng.py", "bench/bench_tree.py"} <= paths
    missing = sorted(path for path in paths if not (REPO / path).exists())
    assert not missing, f"the docs cite paths that do not exist: {missing}"


def known_answer_rows() -> list[list[tuple[int, ...]]]:
    """The rows of docs/stream.md's known-answer table: counter, key and output as tuples of words."""
    rows = []
    for line in (REPO / "docs" / "stream.md").read_text().splitlines():
        cells = HEX_WORDS.findall(line)
        if line.startswith("|") and len(cells) == 3:
            rows.append([tuple(int(word, 16) for word in cell.split()) for cell in cells])
    return rows


def test_the_stream_page_holds_three_known_answer_vectors():
    shapes = [tuple(len(cell) for cell in row) for row in known_answer_rows()]
    assert shapes == [(4, 2, 4)] * 3


@pytest.mark.parametrize(("counter", "key", "expected"), known_answer_rows())
def test_the_stream_pages_known_answers_are_what_philox_gives(counter, key, expected):
    lanes = rng.philox4x32([np.array([word], dtype=np.uint64) for word in counter], key, np)
    assert tuple(int(lane[0]) for lane in lanes) == expected


def readme_command(marker: str) -> str:
    """The command line in the ```bash block right after `marker` in README.md (as .ci/run reads it)."""
    lines = README.read_text().splitlines()
    start = lines.index(marker)
    assert lines[start + 1] == "```bash", f"no bash block after {marker}"
    return lines[start + 2]


def test_the_test_command_builds_the_docs_strictly_after_the_installs_and_before_the_tests():
    steps = readme_command("<!-- test-command -->").split(" && ")
    (build,) = (i for i, step in enumerate(steps) if step.startswith(".venv/bin/mkdocs build"))
    assert "--strict" in steps[build].split()
    assert max(i for i, step in enumerate(steps) if "pip install" in step) < build
    assert build < min(i for i, step in enumerate(steps) if "-m pytest" in step)
    assert re.search(r"^strict: true$", (REPO / "mkdocs.yml").read_text(), re.MULTILINE)


def test_the_site_folder_is_ignored_by_git():
    build = next(s for s in readme_command("<!-- test-command -->").split(" && ") if "mkdocs build" in s)
    site = build.split("--site-dir ")[1].split()[0]
    assert f"{site}/" in (REPO / ".gitignore").read_text().splitlines()
