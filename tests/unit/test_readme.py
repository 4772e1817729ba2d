"""README.md is the short way in: its commands exist, its links resolve, and it stays short."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).parents[2]
README = (ROOT / "README.md").read_text()
DOCS = sorted((ROOT / "docs").glob("*.md"))
#: Relative Markdown links: [text](path) or [text](path#anchor), not URLs.
LINK = re.compile(r"\]\((?!https?://|#)([^)#\s]+)(?:#[^)]*)?\)")


def test_the_readme_stays_a_page_a_person_reads() -> None:
    assert len(README.encode()) <= 16_000


@pytest.mark.parametrize("target", ["demo", "test"])
def test_the_two_commands_are_make_targets(target: str) -> None:
    assert f"make {target}" in README
    assert re.search(rf"^{target}:", (ROOT / "Makefile").read_text(), re.MULTILINE)


def test_the_readme_links_every_page_of_the_reference() -> None:
    assert DOCS
    missing = [page.name for page in DOCS if f"docs/{page.name}" not in README]
    assert not missing


@pytest.mark.parametrize("page", [ROOT / "README.md", ROOT / "bench/README.md", *DOCS], ids=lambda p: p.name)
def test_every_relative_link_resolves(page: Path) -> None:
    broken = [link for link in LINK.findall(page.read_text()) if not (page.parent / link).exists()]
    assert not broken
