"""README.md and docs/*.md: generated blocks equal the committed tables and schema; links lead somewhere."""

import re

import pytest

from bench.readme import BLOCK, ROOT, blocks, pages, render
from bench.tables import SCHEMA

PAGES = {str(path.relative_to(ROOT)): path.read_text() for path in pages()}
README = PAGES["README.md"]


@pytest.fixture(scope="module")
def generated():
    return blocks(ROOT / "results" / "cpu")


def test_readme_stays_a_front_door():
    assert len(README.encode()) < 12_000


def test_the_docs_document_every_column_as_the_schema_does():
    reference = PAGES["docs/results-format.md"]
    for name, columns in SCHEMA.items():
        assert f"**`{name}`**" in reference, name
        for column, meaning in columns.items():
            assert f"| `{column}` | {meaning} |" in reference, (name, column)


def test_every_generated_block_is_on_some_page(generated):
    """Each block bench.readme generates appears on README.md or a docs page, and no page names another."""
    named = {match.group("name") for text in PAGES.values() for match in BLOCK.finditer(text)}
    assert named == set(generated)


@pytest.mark.parametrize("page", sorted(PAGES))
def test_figures_are_generated_from_the_committed_tables(page, generated):
    """Every generated block of the page equals what results/cpu/'s tables give (python -m bench.readme)."""
    assert render(PAGES[page], generated) == PAGES[page], f"{page} is stale: run python -m bench.readme"


def anchors(text: str) -> set[str]:
    """The anchors GitHub gives a page's headings: lower case, punctuation dropped, spaces to hyphens."""
    prose = re.sub(r"^```.*?^```", "", text, flags=re.DOTALL | re.MULTILINE)  # a "# comment" is no heading
    headings = re.findall(r"^#+ (.+)$", prose, flags=re.MULTILINE)
    return {re.sub(r"[^\w\- ]", "", heading.lower()).replace(" ", "-") for heading in headings}


@pytest.mark.parametrize("page", sorted(PAGES))
def test_relative_links_lead_to_files_and_headings(page):
    """A link into the repository names a file that exists, and a heading of it where it names one."""
    base = (ROOT / page).parent
    for path, anchor in re.findall(r"\]\(([^)#\s]*)(?:#([^)\s]*))?\)", PAGES[page]):
        if "://" in path:
            continue
        target = (base / path).resolve() if path else ROOT / page
        assert target.exists(), (page, path)
        if anchor:
            assert anchor in anchors(target.read_text()), (page, path, anchor)
    for path in re.findall(r'src="([^"]+)"', PAGES[page]):
        assert (base / path).exists(), (page, path)
