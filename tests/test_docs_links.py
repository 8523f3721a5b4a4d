"""Every relative link, `make` target and pipeline name the README and docs/ cite exists."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from tracesieve.provenance import PROJECT_ROOT

DOCUMENTS = [PROJECT_ROOT / "README.md", PROJECT_ROOT / "CHANGELOG.md", *sorted((PROJECT_ROOT / "docs").glob("*.md"))]
LINK = re.compile(r"\]\(([^)\s]+)\)")
MAKE = re.compile(r"`make ([\w-]+)")
PIPELINE = re.compile(r"--pipelines? ([\w,]+)")


def _targets() -> set[str]:
    makefile = (PROJECT_ROOT / "Makefile").read_text()
    return set(re.findall(r"^([\w-]+):", makefile, re.MULTILINE))


def _pipelines() -> set[str]:
    folder = PROJECT_ROOT / "src" / "tracesieve" / "pipelines"
    return {path.name for path in folder.iterdir() if (path / "__init__.py").exists()} | {"__default__"}


def _anchors(text: str) -> set[str]:
    headings = re.findall(r"^#+ (.+)$", text, re.MULTILINE)
    return {re.sub(r"[^\w\- ]", "", heading).strip().lower().replace(" ", "-") for heading in headings}


@pytest.mark.parametrize("document", DOCUMENTS, ids=lambda path: str(path.relative_to(PROJECT_ROOT)))
def test_links_targets_and_pipelines_resolve(document: Path):
    text = document.read_text()
    for link in LINK.findall(text):
        if re.match(r"[a-z]+://", link) or link.startswith("mailto:"):
            continue
        path, _, anchor = link.partition("#")
        target = (document.parent / path).resolve() if path else document
        assert target.exists(), f"{document.name}: link to {link} does not resolve"
        if anchor and target.suffix == ".md":
            assert anchor in _anchors(target.read_text()), f"{document.name}: no heading for #{anchor} in {target.name}"
    missing_targets = set(MAKE.findall(text)) - _targets()
    assert not missing_targets, f"{document.name} cites make targets the Makefile lacks: {sorted(missing_targets)}"
    cited = {name for names in PIPELINE.findall(text) for name in names.split(",")}
    assert not cited - _pipelines(), f"{document.name} cites pipelines that do not exist: {sorted(cited - _pipelines())}"


def test_the_readme_is_for_users():
    readme = (PROJECT_ROOT / "README.md").read_text()
    assert len(readme.splitlines()) <= 250
    assert not re.search(r"\bissue \d+|#\d{1,3}\b", readme, re.IGNORECASE), "internal issue numbers belong in CHANGELOG.md"
    assert "stale since" not in readme.lower()
