"""The documentation holds together: a short README, every page reachable, every link and anchor
resolving (GitHub's heading anchors)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from tests.docs import PAGES, ROOT

LINK = re.compile(r"\[[^\]]*\]\(([^)\s]+)\)")
CHECKED = (*PAGES, ROOT / "infra" / "README.md")


def anchors(page: Path) -> set[str]:
    """GitHub's anchors of a page's headings: lower case, punctuation but - and _ dropped,
    spaces as hyphens (code blocks hold no headings)."""
    found, fence = set(), False
    for line in page.read_text().split("\n"):
        if line.startswith("```"):
            fence = not fence
        heading = None if fence else re.fullmatch(r"#{1,6} (.*)", line)
        if heading:
            found.add(re.sub(r"[^\w\- ]", "", heading.group(1).strip().lower()).replace(" ", "-"))
    return found


def broken_links(page: Path) -> list[str]:
    broken = []
    for target in LINK.findall(page.read_text()):
        if target.startswith(("http://", "https://", "mailto:")):
            continue
        path, _, anchor = target.partition("#")
        linked = (page.parent / path).resolve() if path else page
        if not linked.exists():
            broken.append(f"{target}: no file {linked}")
        elif anchor and linked.suffix == ".md" and anchor not in anchors(linked):
            broken.append(f"{target}: no heading with the anchor #{anchor}")
    return broken


@pytest.mark.parametrize("page", CHECKED, ids=lambda p: str(p.relative_to(ROOT)))
def test_every_link_and_anchor_resolves(page: Path) -> None:
    assert broken_links(page) == []


def test_a_broken_link_or_anchor_is_found(tmp_path: Path) -> None:
    (tmp_path / "there.md").write_text("# There\n\n## A part\n")
    page = tmp_path / "page.md"
    page.write_text(
        "[ok](there.md#a-part) [gone](missing.md) [no part](there.md#b-part) [self](#nowhere)\n"
        "```\n# not a heading\n```\n"
    )
    assert [line.split(":")[0] for line in broken_links(page)] == [
        "missing.md",
        "there.md#b-part",
        "#nowhere",
    ]
    assert anchors(page) == set()


def test_the_readme_is_short_and_keeps_the_two_commands() -> None:
    text = (ROOT / "README.md").read_text()
    assert len(text.splitlines()) <= 200, "the README is read in five minutes: move detail to docs/"
    assert "./run demo" in text and "./run test" in text


def test_every_docs_page_is_linked_from_another_page() -> None:
    linked = {
        (page.parent / target.partition("#")[0]).resolve()
        for page in PAGES
        for target in LINK.findall(page.read_text())
        if not target.startswith(("http://", "https://", "#"))
    }
    orphans = [page.name for page in PAGES[1:] if page.resolve() not in linked]
    assert orphans == []
