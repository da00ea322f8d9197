"""The project's documentation as the tests read it: the README and every page of docs/."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PAGES = (ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md")))
_HEADING = re.compile(r"(#{1,6}) (.*)")


def documentation() -> str:
    """The README and the docs pages, one after the other."""
    return "\n".join(page.read_text() for page in PAGES)


def section(title: str) -> str:
    """The text under the heading ``title`` (in whichever page holds it), up to the next
    heading of the same or a higher level; code blocks are not headings."""
    for page in PAGES:
        level, found, fence = 0, list[str](), False
        for line in page.read_text().split("\n"):
            if line.startswith("```"):
                fence = not fence
            heading = None if fence else _HEADING.fullmatch(line)
            if level and heading and len(heading.group(1)) <= level:
                return "\n".join(found)
            if level:
                found.append(line)
            elif heading and heading.group(2) == title:
                level = len(heading.group(1))
        if level:
            return "\n".join(found)
    raise AssertionError(f"no page of the documentation has a heading {title!r}")
