"""The README's column reference is the harness's schema, verbatim."""

from pathlib import Path

from bench.tables import SCHEMA

README = (Path(__file__).parents[1] / "README.md").read_text()


def test_readme_documents_every_column_as_the_schema_does():
    for name, columns in SCHEMA.items():
        assert f"**`{name}`**" in README
        for column, meaning in columns.items():
            assert f"| `{column}` | {meaning} |" in README, (name, column)


def test_readme_figures_are_generated_from_the_committed_tables():
    """Every generated block of the README equals what results/cpu/'s tables give (python -m bench.readme)."""
    from bench.readme import BLOCK, ROOT, blocks, render

    generated = blocks(ROOT / "results" / "cpu")
    assert {match.group("name") for match in BLOCK.finditer(README)} == set(generated)
    assert render(README, generated) == README
