"""Every ```python block of README.md and docs/*.md runs.

A page's blocks run in order in one namespace (a later block may use an
earlier one's names), in a temporary working directory. A block that needs
a GPU, several processes or a long run carries a marker on the line right
before it, ``<!-- skip: REASON -->``: it is not run, and its own case is
skipped with that reason. Shell blocks (```bash, ```console, ```) are not run.
"""

import re
from pathlib import Path
from typing import NamedTuple

import pytest

ROOT = Path(__file__).parents[1]
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
FENCE = re.compile(
    r"^(?:<!-- skip: (?P<skip>[^>]*?) -->\n)?```python\n(?P<code>.*?)^```$", re.DOTALL | re.MULTILINE
)


class Example(NamedTuple):
    page: Path
    line: int  # the line of the page where the code starts (1-based)
    code: str
    skip: str | None  # why it is not run, or None


def examples(page: Path) -> list[Example]:
    """The page's python blocks, in order."""
    text = page.read_text()
    found = []
    for match in FENCE.finditer(text):
        line = text.count("\n", 0, match.start("code")) + 1
        found.append(Example(page, line, match.group("code"), match.group("skip")))
    return found


def name(page: Path) -> str:
    return str(page.relative_to(ROOT))


RUN = [page for page in PAGES if any(example.skip is None for example in examples(page))]
SKIPPED = [example for page in PAGES for example in examples(page) if example.skip is not None]


def test_the_pages_have_examples():
    assert RUN, "no python block found: has the fence pattern stopped matching?"


@pytest.mark.slow  # 33 s measured on 2 busy cores
@pytest.mark.parametrize("page", RUN, ids=name)
def test_page_examples_run(page, tmp_path, monkeypatch):
    """The page's blocks run in order in one namespace; a traceback names the page and its line."""
    monkeypatch.chdir(tmp_path)
    namespace = {"__name__": f"docs_{page.stem}"}
    for example in examples(page):
        if example.skip is None:
            padded = "\n" * (example.line - 1) + example.code  # line numbers of the page in tracebacks
            exec(compile(padded, str(page), "exec"), namespace)


@pytest.mark.parametrize(
    "example", SKIPPED, ids=[f"{name(example.page)}:{example.line}" for example in SKIPPED]
)
def test_marked_example_is_skipped(example):
    assert example.skip.strip(), f"{name(example.page)}:{example.line}: a skip marker needs a reason"
    compile(example.code, str(example.page), "exec")  # it is not run, but it must at least be Python
    pytest.skip(example.skip)
