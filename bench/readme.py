"""The README's figures, generated from the committed tables of results/cpu/ (never typed by hand).

Each block sits between ``<!-- generated: NAME -->`` and ``<!-- end -->`` in
README.md. ``python -m bench.readme`` rewrites them from results/cpu/;
tests/test_readme.py checks that they equal what the committed tables give.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

import pandas as pd

from bench.report import (
    _best_rate_table,
    _conditioning_section,
    _speed_table,
    _standardization_lines,
    networks_table,
    theory_table,
)
from bench.tables import BOOL_COLUMNS, MACHINE_TABLES, SCHEMA, SCHEMA_VERSION, TEXT_COLUMNS, read_table

ROOT = Path(__file__).parents[1]
BLOCK = re.compile(r"(<!-- generated: (?P<name>[a-z-]+) -->\n)(?P<body>.*?)(<!-- end -->)", re.DOTALL)


def _numbers(frame: pd.DataFrame) -> pd.DataFrame:
    """read_table's text cells as numbers where they are numbers (the report's formatters want floats)."""
    converted = frame.copy()
    for column in converted:
        if column not in TEXT_COLUMNS | BOOL_COLUMNS:  # read_table gives True/False as booleans already
            converted[column] = pd.to_numeric(converted[column].replace({"": "nan"}))
    return converted


def blocks(results: Path) -> dict[str, str]:
    """Every generated block's text, from the tables in ``results``."""

    def table(name):
        return _numbers(read_table(results / name))

    summary, timing = table("summary.csv"), table("timing.csv")
    textbook = timing[
        timing["problem"].isin(set(summary["problem"]))
        & (timing["implementation"] != "python loop of jitted step")
    ]
    conditioning = _conditioning_section(table("conditioning.csv"))
    stability = [
        f"- {row.problem}, {row.optimizer}: predicted limit 2/λmax = {row.predicted_stability_limit:.3g}, "
        f"largest learning rate of the grid with no diverged seed = {row.largest_finite_learning_rate:.3g}"
        for row in summary.sort_values(["problem", "optimizer"]).itertuples()
        if pd.notna(row.predicted_stability_limit)
    ]
    return {
        "best-rates": _best_rate_table(summary),
        "lessons": "\n".join([*_standardization_lines(summary), *stability]),
        "speed": _speed_table(textbook),
        "conditioning": conditioning[2],
        "networks": networks_table(table("networks-summary.csv")),
        "theory": theory_table(table("theory.csv")),
        "columns": columns_reference(),
    }


def columns_reference() -> str:
    """Every results table's columns and what each holds, as bench.tables.SCHEMA says (devices' aside)."""
    version = f"schema version {SCHEMA_VERSION}; `bench/tables.py` holds it"
    parts = [f"Rows are sorted, columns in this order ({version}):"]
    for name, columns in SCHEMA.items():
        if name not in MACHINE_TABLES:
            rows = "\n".join(f"| `{column}` | {meaning} |" for column, meaning in columns.items())
            parts.append(f"**`{name}`**\n\n| column | meaning |\n|---|---|\n{rows}")
    return "\n\n".join(parts)


def render(readme: str, generated: dict[str, str]) -> str:
    """``readme`` with every generated block replaced by ``generated[name]``."""
    return BLOCK.sub(lambda m: m.group(1) + "\n" + generated[m.group("name")] + "\n\n" + m.group(4), readme)


def main() -> int:
    path = ROOT / "README.md"
    path.write_text(render(path.read_text(), blocks(ROOT / "results" / "cpu")))
    return 0


if __name__ == "__main__":
    sys.exit(main())
