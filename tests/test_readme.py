"""The README's column reference is the harness's schema, verbatim."""

from pathlib import Path

from bench.tables import SCHEMA

README = (Path(__file__).parents[1] / "README.md").read_text()


def test_readme_documents_every_column_as_the_schema_does():
    for name, columns in SCHEMA.items():
        assert f"**`{name}`**" in README
        for column, meaning in columns.items():
            assert f"| `{column}` | {meaning} |" in README, (name, column)
