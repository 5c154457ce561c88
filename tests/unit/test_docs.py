"""The documentation holds together: the generated manual is current, every relative link
leads somewhere, and the README stays a short front page that starts with the two commands."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from urlfleet.cli.manual import REGENERATE, render_manual

TOP = Path(__file__).resolve().parents[2]
README = TOP / "README.md"
PAGES = sorted([README, TOP / "benchmarks" / "README.md", *(TOP / "docs").glob("*.md")])
README_MOST_LINES = 170
FIRST_COMMANDS = (
    "python3 -m venv .venv && . .venv/bin/activate && pip install -e . && urlfleet demo\n"
    "python3 -m venv .venv && . .venv/bin/activate && pip install -e '.[test]' && pytest\n"
)

FENCED = re.compile(r"^```.*?^```", re.MULTILINE | re.DOTALL)
INLINE_CODE = re.compile(r"`[^`\n]*`")
LINK = re.compile(r"\[[^\]\n]*\]\(([^)\s]+)\)")
HEADING = re.compile(r"^#{1,6} +(.+?) *$", re.MULTILINE)


def prose(text: str) -> str:
    """The text outside code, where a ``[x](y)`` is a link."""
    return INLINE_CODE.sub("code", FENCED.sub("", text))


def anchors(page: Path) -> set[str]:
    """The anchors GitHub gives a page's headings: lower case, punctuation dropped."""
    titles = HEADING.findall(FENCED.sub("", page.read_text(encoding="utf-8")))
    return {re.sub(r"[^\w\- ]", "", t.replace("`", "").lower()).replace(" ", "-") for t in titles}


def relative_links(page: Path) -> list[str]:
    targets = LINK.findall(prose(page.read_text(encoding="utf-8")))
    return [t for t in targets if not re.match(r"[a-z][a-z0-9+.-]*:", t)]


def test_the_command_line_manual_is_generated_from_the_parser() -> None:
    written = (TOP / "docs" / "cli.md").read_text(encoding="utf-8")
    assert written == render_manual(), f"docs/cli.md is out of date: run `{REGENERATE}`"


@pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(TOP)))
def test_every_relative_link_leads_to_a_file_and_heading_that_exist(page: Path) -> None:
    broken = []
    for target in relative_links(page):
        path, _, anchor = target.partition("#")
        file = (page.parent / path).resolve() if path else page
        if not file.exists():
            broken.append(target)
        elif anchor and file.suffix == ".md" and anchor not in anchors(file):
            broken.append(target)
    assert not broken, f"{page.relative_to(TOP)}: broken links {broken}"


def test_the_link_check_sees_links_and_anchors() -> None:
    assert "docs/records.md#the-run-report" in relative_links(README)
    assert "a-configuration-file-urlfleettoml" in anchors(TOP / "docs" / "inputs.md")


def test_the_readme_is_a_short_front_page() -> None:
    lines = README.read_text(encoding="utf-8").count("\n")
    assert lines <= README_MOST_LINES, f"README.md has {lines} lines; move detail to docs/"


def test_the_readmes_first_code_block_is_the_two_commands() -> None:
    text = README.read_text(encoding="utf-8")
    assert text.startswith("# urlfleet\n\n```sh\n")
    first_block = FENCED.search(text)
    assert first_block is not None
    assert first_block.group(0) == "```sh\n" + FIRST_COMMANDS + "```"
