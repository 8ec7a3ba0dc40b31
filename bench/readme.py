"""The documentation's figures, generated from the committed tables of results/cpu/ (never typed by hand).

Each block sits between ``<!-- generated: NAME -->`` and ``<!-- end -->`` in
README.md or a page of docs/. ``python -m bench.readme`` rewrites every page's
blocks from results/cpu/ and bench.tables.SCHEMA; tests/test_readme.py checks
that they equal what the committed tables give.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

import pandas as pd

from bench.report import (
    _conditioning_section,
    _speed_table,
    _standardization_lines,
    _tuned_table,
    networks_table,
    theory_table,
)
from bench.tables import (
    BOOL_COLUMNS,
    MACHINE_TABLES,
    SCHEMA,
    SCHEMA_VERSION,
    TEXT_COLUMNS,
    read_metadata,
    read_table,
)

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
        "best-rates": _tuned_table(table("tuned.csv")),  # on fresh seeds, not the tuning ones
        "lessons": "\n".join([*_standardization_lines(summary), *stability]),
        "speed": _speed_table(textbook),
        "large-grids": large_grids(results),
        "conditioning": conditioning[2],
        "networks": networks_table(table("networks-summary.csv")),
        "theory": theory_table(table("theory.csv")),
        "columns": columns_reference(),
        "machine-columns": columns_reference(machine=True),
        "submit-example": submit_example(results.parent / SUBMIT_EXAMPLE),
    }


SUBMIT_EXAMPLE = (
    "submit-docs.examples.signum.signum"  # docs/submit.md's worked example: python -m bench submit
)


def submit_example(folder: Path) -> str:
    """The worked example's verdicts (its paired.csv) and how long its whole run took (metadata.json)."""
    from bench.submit import verdicts_table

    metadata = read_metadata(folder)
    return (
        verdicts_table(_numbers(read_table(folder / "paired.csv")))
        + f"\n\nThe whole run: {metadata['submission']['wall_s']:.0f} s on {metadata['cpu_model']} "
        f"({metadata['cpu_count']} cores, {metadata['device_count']} {metadata['platform']} devices, "
        f"{metadata['dtype']}), compiles included: `{metadata['command_line']}`."
    )


def large_grids(results: Path) -> str:
    """The run's floor (metadata.json) and the 4,096-run sweeps of devices.csv (beside ``results``)."""
    metadata = read_metadata(results)
    devices = _numbers(read_table(results.parent / "devices.csv"))
    lines = [
        f"- floor of the committed run: {metadata['floor_gflop_per_s']:.3g} GFLOP/s, "
        f"{metadata['floor_gexp_per_s']:.3g} G exp/s ({metadata['device_count']} x {metadata['device_kind']})"
    ]
    widest = (
        devices.groupby(["machine", "device"])["device_count"].transform("max") == devices["device_count"]
    )
    shown = devices[widest & (devices["optimizer"] == "gd")]  # plain GD on all of each machine's devices
    for row in shown.sort_values(["machine", "device", "problem"]).itertuples():
        lines.append(
            f"- {row.problem}, {row.optimizer}: {row.n_runs:,} runs on {row.device} x{row.device_count} "
            f"({row.machine}): {row.ns_per_lr_step:.3g} ns per LR-step [{row.ns_per_lr_step_min:.3g}, "
            f"{row.ns_per_lr_step_max:.3g}]"
        )
    return "\n".join(lines)


def columns_reference(*, machine: bool = False) -> str:
    """The columns of every table of a results folder, or (``machine``) of results/'s devices tables.

    What each column holds, as bench.tables.SCHEMA says, in the tables' column order.
    """
    version = f"schema version {SCHEMA_VERSION}; `bench/tables.py` holds it"
    parts = [f"Rows are sorted, columns in this order ({version}):"]
    for name, columns in SCHEMA.items():
        if (name in MACHINE_TABLES) == machine:
            rows = "\n".join(f"| `{column}` | {meaning} |" for column, meaning in columns.items())
            parts.append(f"**`{name}`**\n\n| column | meaning |\n|---|---|\n{rows}")
    return "\n\n".join(parts)


def pages() -> list[Path]:
    """The pages that hold generated blocks: README.md and docs/*.md."""
    return [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]


def render(page: str, generated: dict[str, str]) -> str:
    """``page`` with every generated block replaced by ``generated[name]``."""

    def replace(match: re.Match) -> str:
        name = match.group("name")
        if name not in generated:
            raise ValueError(f"no generated block named {name!r}; bench.readme knows {sorted(generated)}")
        return match.group(1) + "\n" + generated[name] + "\n\n" + match.group(4)

    return BLOCK.sub(replace, page)


def main() -> int:
    generated = blocks(ROOT / "results" / "cpu")
    for path in pages():
        text = path.read_text()
        new = render(text, generated)
        if new != text:
            path.write_text(new)
            print(f"rewrote {path.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
