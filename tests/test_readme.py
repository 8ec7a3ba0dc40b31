"""The README's column reference is the harness's schema, verbatim."""

from pathlib import Path

from bench.tables import SCHEMA

README = (Path(__file__).parents[1] / "README.md").read_text()


def test_readme_documents_every_column_as_the_schema_does():
    for name, columns in SCHEMA.items():
        assert f"**`{name}`**" in README
        for column, meaning in columns.items():
            assert f"| `{column}` | {meaning} |" in README, (name, column)


def test_readme_networks_table_is_the_committed_one():
    """The README's networks table is generated from results/cpu/networks-summary.csv, never typed."""
    from bench.report import networks_table
    from bench.tables import read_table

    summary = read_table(Path(__file__).parents[1] / "results" / "cpu" / "networks-summary.csv")
    assert networks_table(summary) in README
