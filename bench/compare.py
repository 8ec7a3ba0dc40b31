"""`python -m bench compare A B`: two results folders side by side, for reading (never a pass/fail check).

Speed: per timed cell (problem, optimizer, implementation) the ratio of A's
ns per run-step to B's, with each side's spread over its repeats.
Convergence: per (problem, optimizer) of tuned.csv (and networks-summary.csv
where both runs have it) the best point, the seeds at the target, steps to
target and final loss (test accuracy) of A and B, flagged where the best
point or the fraction at the target differs. Rows in only one run are listed
as such. `bench check` is the tolerance check; this is the reader's view.
"""

from __future__ import annotations

from pathlib import Path
from typing import NamedTuple

import numpy as np
import pandas as pd

from bench.tables import SORT_KEYS, TableError, read_metadata, read_table

IN_RUNS = {"both": "both", "left_only": "A only", "right_only": "B only"}
SPEED_COLUMNS = ["includes", "n_runs", "steps", "ns_per_lr_step", "ns_per_lr_step_min", "ns_per_lr_step_max"]
TUNED_COLUMNS = [
    "learning_rate", "hyperparameters", "schedule", "n_seeds", "reached_fraction", "steps_to_target_median",
    "target_resolution", "seconds_to_target_median", "final_loss_median",
]  # fmt: skip
NETWORKS_COLUMNS = [
    "batch_size", "best_learning_rate", "n_fresh_seeds", "reached_fraction", "steps_to_target_median",
    "log_every", "test_accuracy_mean", "seconds_to_target_median",
]  # fmt: skip
LEARNING_RATE_RTOL = 1e-6  # the tables keep 7 significant digits


class Comparison(NamedTuple):
    """Two runs side by side; every frame has column in_runs: both, A only or B only."""

    a: Path  # run A's results folder
    b: Path  # run B's
    metadata_a: dict  # A's metadata.json
    metadata_b: dict
    # per (problem, optimizer, implementation) of timing.csv: <column>_a, <column>_b for SPEED_COLUMNS,
    # ratio (A's ns per run-step / B's), ratio_low (A's fastest / B's slowest), ratio_high, same_program
    speed: pd.DataFrame
    # per (problem, optimizer) of tuned.csv: <column>_a, <column>_b for TUNED_COLUMNS,
    # best_point_differs, reached_differs
    tuned: pd.DataFrame
    networks: pd.DataFrame | None  # the same of networks-summary.csv, where both runs have it
    notes: list[str]  # what could not be compared (a table in one run only)
    markdown: str  # compare.md


def _results_folder(folder: Path, name: str) -> dict:
    """The folder's metadata; TableError with one line where it is not a results folder."""
    if not folder.exists():
        raise TableError(f"{name} {folder}: no such folder")
    if not folder.is_dir():
        raise TableError(f"{name} {folder}: not a folder")
    if not (folder / "metadata.json").is_file():
        raise TableError(f"{name} {folder}: not a results folder (no metadata.json)")
    return read_metadata(folder)


def _merge(a: pd.DataFrame, b: pd.DataFrame, key: list[str], columns: list[str]) -> pd.DataFrame:
    merged = a[[*key, *columns]].merge(
        b[[*key, *columns]], on=key, how="outer", suffixes=("_a", "_b"), indicator=True
    )
    merged.insert(len(key), "in_runs", merged.pop("_merge").astype(str).map(IN_RUNS))
    return merged.sort_values(key, kind="stable").reset_index(drop=True)


def _speed(a: pd.DataFrame, b: pd.DataFrame) -> pd.DataFrame:
    speed = _merge(a, b, SORT_KEYS["timing.csv"], SPEED_COLUMNS)
    with np.errstate(divide="ignore", invalid="ignore"):
        speed["ratio"] = speed["ns_per_lr_step_a"] / speed["ns_per_lr_step_b"]
        speed["ratio_low"] = speed["ns_per_lr_step_min_a"] / speed["ns_per_lr_step_max_b"]
        speed["ratio_high"] = speed["ns_per_lr_step_max_a"] / speed["ns_per_lr_step_min_b"]
    speed["same_program"] = (
        (speed["includes_a"] == speed["includes_b"])
        & (speed["n_runs_a"] == speed["n_runs_b"])
        & (speed["steps_a"] == speed["steps_b"])
    )
    return speed


def _rates_differ(a: pd.Series, b: pd.Series) -> np.ndarray:
    a, b = a.to_numpy(float), b.to_numpy(float)
    return ~(np.isclose(a, b, rtol=LEARNING_RATE_RTOL, atol=0) | (np.isnan(a) & np.isnan(b)))


def _convergence(a: pd.DataFrame, b: pd.DataFrame, columns: list[str], rate: str) -> pd.DataFrame:
    frame = _merge(a, b, ["problem", "optimizer"], columns)
    both = frame["in_runs"] == "both"
    differs = _rates_differ(frame[f"{rate}_a"], frame[f"{rate}_b"])
    if "hyperparameters" in columns:
        differs |= (frame["hyperparameters_a"] != frame["hyperparameters_b"]).to_numpy()
    frame["best_point_differs"] = both & differs
    frame["reached_differs"] = both & (frame["reached_fraction_a"] != frame["reached_fraction_b"])
    return frame


def compare_runs(a: Path, b: Path) -> Comparison:
    """Read two results folders and compare them (see the module's docstring).

    Raises TableError, one line naming the folder or file, where either is not
    a results folder or its timing.csv, tuned.csv or networks-summary.csv is
    missing or damaged.
    """
    a, b = Path(a), Path(b)
    metadata_a, metadata_b = _results_folder(a, "A"), _results_folder(b, "B")
    speed = _speed(read_table(a / "timing.csv"), read_table(b / "timing.csv"))
    tuned = _convergence(
        read_table(a / "tuned.csv"), read_table(b / "tuned.csv"), TUNED_COLUMNS, "learning_rate"
    )
    networks, notes = None, []
    present = [(folder / "networks-summary.csv").exists() for folder in (a, b)]
    if all(present):
        networks = _convergence(
            read_table(a / "networks-summary.csv"),
            read_table(b / "networks-summary.csv"),
            NETWORKS_COLUMNS,
            "best_learning_rate",
        )
    elif any(present):
        notes.append(
            f"networks-summary.csv is only in {'A' if present[0] else 'B'}: the networks are not compared"
        )
    comparison = Comparison(a, b, metadata_a, metadata_b, speed, tuned, networks, notes, "")
    return comparison._replace(markdown=compare_markdown(comparison))


# metadata.json's facts in the header, and a reader's name for each
RUN_FACTS = {
    "device": lambda m: (
        f"{m.get('device_count', '?')} x {m.get('device_kind', '?')} ({m.get('device_tag', '?')}; "
        f"CPU {m.get('cpu_model', '?')})"
    ),
    "dtype": lambda m: m.get("dtype", "?"),
    "profile": lambda m: m.get("profile", "?"),
    "git commit": lambda m: str(m.get("git_commit", "?"))[:12],
    "date (UTC)": lambda m: m.get("date_utc", "?"),
    "jax, jaxlib": lambda m: ", ".join(m.get("versions", {}).get(name, "?") for name in ("jax", "jaxlib")),
    "command": lambda m: f"`{m.get('command_line', '?')}`",
}
SPEED_NOTE = (
    "A / B is A's ns per run-step over B's, medians of each side's repeats (above 1: A is slower); the "
    "range divides A's fastest repeat by B's slowest and A's slowest by B's fastest, so a range that "
    "holds 1 is within the repeats' spread. Cells whose timed programs differ (what is watched, runs "
    "together, steps) are flagged: their ratio compares different work."
)


def _table(header: list[str], rows: list[list[str]]) -> str:
    from bench.report import _markdown_table

    return _markdown_table(header, rows)


def _only_lines(frame: pd.DataFrame, key: list[str], what: str) -> list[str]:
    lines = []
    for side in ("A only", "B only"):
        rows = frame[frame["in_runs"] == side]
        if len(rows):
            names = ", ".join("/".join(str(row[k]) for k in key) for _, row in rows.iterrows())
            lines.append(f"- {what} in {side.replace(' only', '')} only ({len(rows)}): {names}")
    return [*lines, ""] if lines else []


def _count(value) -> str:
    return "-" if pd.isna(value) else f"{int(value):,}"


def _at_target(fraction, seeds) -> str:
    return "-" if pd.isna(fraction) else f"{fraction:.0%} of {_count(seeds)}"


def _program_note(row) -> str:
    """Where the two timed programs differ, how: runs timed together, steps, what is watched."""
    if row.same_program:
        return ""
    differences = [
        f"{what} {_count(getattr(row, f'{column}_a'))} vs {_count(getattr(row, f'{column}_b'))}"
        for column, what in (("n_runs", "runs"), ("steps", "steps"))
        if getattr(row, f"{column}_a") != getattr(row, f"{column}_b")
    ]
    if row.includes_a != row.includes_b:
        differences.append(f"A times {row.includes_a}; B {row.includes_b}")
    return "programs differ: " + ", ".join(differences)


def _spread(median, low, high, *, bold=False) -> str:
    from bench.report import _fmt

    middle = f"**{_fmt(median)}**" if bold else _fmt(median)
    return f"{middle} [{_fmt(low)}, {_fmt(high)}]"


def _speed_section(speed: pd.DataFrame) -> list[str]:
    from bench.report import _fmt

    both = speed[speed["in_runs"] == "both"]
    rows = [
        [
            row.problem,
            row.optimizer,
            row.implementation,
            _spread(row.ns_per_lr_step_a, row.ns_per_lr_step_min_a, row.ns_per_lr_step_max_a),
            _spread(row.ns_per_lr_step_b, row.ns_per_lr_step_min_b, row.ns_per_lr_step_max_b),
            _spread(row.ratio, row.ratio_low, row.ratio_high, bold=True),
            _program_note(row),
        ]
        for row in both.itertuples()
    ]
    header = ["problem", "optimizer", "implementation", "A: ns [min, max]", "B: ns [min, max]",
              "A / B [range]", "note"]  # fmt: skip
    medians = [
        f"- {implementation}: median A / B {_fmt(float(cells['ratio'].median()))} over {len(cells)} cells"
        + (
            f" ({int(cells['same_program'].sum())} of the same program)"
            if not cells["same_program"].all()
            else ""
        )
        for implementation, cells in both.groupby("implementation")
    ]
    return [
        "## Speed: ns per run-step, A / B",
        "",
        SPEED_NOTE,
        "",
        *medians,
        "",
        _table(header, rows) if rows else "No timed cell is in both runs.",
        "",
        *_only_lines(speed, SORT_KEYS["timing.csv"], "timing rows"),
    ]


def _differs(row) -> str:
    flags = [
        *(["best point"] if row.best_point_differs else []),
        *(["seeds at target"] if row.reached_differs else []),
    ]
    return f"**{', '.join(flags)}**" if flags else ""


def _tuned_section(tuned: pd.DataFrame) -> list[str]:
    from bench.report import _fmt, _steps

    def point(rate, others):
        return _fmt(rate) + (f" ({others})" if others else "")

    rows = [
        [
            row.problem,
            row.optimizer,
            point(row.learning_rate_a, row.hyperparameters_a),
            point(row.learning_rate_b, row.hyperparameters_b),
            _at_target(row.reached_fraction_a, row.n_seeds_a),
            _at_target(row.reached_fraction_b, row.n_seeds_b),
            _steps(row.steps_to_target_median_a),
            _steps(row.steps_to_target_median_b),
            _fmt(row.final_loss_median_a, 6),
            _fmt(row.final_loss_median_b, 6),
            _differs(row),
        ]
        for row in tuned[tuned["in_runs"] == "both"].itertuples()
    ]
    header = ["problem", "optimizer", "A: lr", "B: lr", "A: at target", "B: at target", "A: steps to target",
              "B: steps to target", "A: final loss", "B: final loss", "differs"]  # fmt: skip
    return [
        "## Convergence: tuned.csv (each best point rerun on fresh seeds)",
        "",
        "Medians over the fresh seeds; at target: the fraction of them that stayed at the target, of n; "
        "steps to target: never where half or more did not reach it. Flagged where the best point or the "
        "fraction at the target differs.",
        "",
        _table(header, rows) if rows else "No (problem, optimizer) is in both runs.",
        "",
        *_only_lines(tuned, ["problem", "optimizer"], "rows"),
    ]


def _networks_section(networks: pd.DataFrame | None) -> list[str]:
    if networks is None:
        return []
    from bench.report import _fmt, _steps

    rows = [
        [
            row.problem,
            row.optimizer,
            _fmt(row.best_learning_rate_a),
            _fmt(row.best_learning_rate_b),
            _at_target(row.reached_fraction_a, row.n_fresh_seeds_a),
            _at_target(row.reached_fraction_b, row.n_fresh_seeds_b),
            _steps(row.steps_to_target_median_a),
            _steps(row.steps_to_target_median_b),
            _fmt(row.test_accuracy_mean_a),
            _fmt(row.test_accuracy_mean_b),
            _differs(row),
        ]
        for row in networks[networks["in_runs"] == "both"].itertuples()
    ]
    header = ["problem", "optimizer", "A: lr", "B: lr", "A: at target", "B: at target",
              "A: steps to target", "B: steps to target", "A: test accuracy", "B: test accuracy",
              "differs"]  # fmt: skip
    return [
        "## Networks: networks-summary.csv",
        "",
        "The rate chosen on the validation split; at target: the fraction of fresh seeds at or above the "
        "test-accuracy target to the end; test accuracy: the mean over the fresh seeds after the last step.",
        "",
        _table(header, rows) if rows else "No (problem, optimizer) is in both runs.",
        "",
        *_only_lines(networks, ["problem", "optimizer"], "rows"),
    ]


def compare_markdown(comparison: Comparison) -> str:
    """compare.md: a header naming both runs, then speed, tuned and networks side by side."""
    meta_a, meta_b = comparison.metadata_a, comparison.metadata_b
    facts = [[name, fact(meta_a), fact(meta_b)] for name, fact in RUN_FACTS.items()]
    header = _table(["", "A", "B"], [["folder", str(comparison.a), str(comparison.b)], *facts])
    differ = [
        name
        for name in ("device", "dtype", "profile", "git commit")
        if RUN_FACTS[name](meta_a) != RUN_FACTS[name](meta_b)
    ]
    differ_line = (
        f"The runs differ in: {', '.join(differ)}."
        if differ
        else "The runs share device, dtype, profile and commit."
    )
    if "profile" in differ:
        differ_line += " Profiles run other grids, seeds and steps: their best points may differ by design."
    parts = [
        f"# gdjax runs compared: A = {comparison.a}, B = {comparison.b}",
        "",
        header,
        "",
        differ_line,
        "",
        *[f"- {note}" for note in comparison.notes],
        *([""] if comparison.notes else []),
        *_speed_section(comparison.speed),
        *_tuned_section(comparison.tuned),
        *_networks_section(comparison.networks),
        "![A / B speed per cell](compare.png)",
        "",
    ]
    return "\n".join(parts)


def compare_plot(comparison: Comparison) -> bytes:
    """compare.png: A / B ns per run-step per cell in both runs, a log axis, the repeats' range as a bar."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from bench.report import _png

    speed = comparison.speed
    cells = speed[(speed["in_runs"] == "both") & np.isfinite(speed["ratio"]) & (speed["ratio"] > 0)]
    figure, axes = plt.subplots(figsize=(7.5, max(3.0, 0.22 * len(cells) + 1.6)))
    title = f"A = {comparison.a}, B = {comparison.b}: ns per run-step, A / B (above 1: A slower)"
    if cells.empty:
        axes.text(0.5, 0.5, "no timed cell in both runs", ha="center", va="center", transform=axes.transAxes)
        axes.set_axis_off()
        axes.set_title(title, fontsize="small")
        return _png(figure)
    y = np.arange(len(cells))[::-1]
    ratio = cells["ratio"].to_numpy(float)
    spread = np.abs(np.vstack([ratio - cells["ratio_low"].to_numpy(float),
                               cells["ratio_high"].to_numpy(float) - ratio]))  # fmt: skip
    colours = {name: f"C{i}" for i, name in enumerate(sorted(set(cells["implementation"])))}
    for name, colour in colours.items():
        mine = (cells["implementation"] == name).to_numpy()
        axes.barh(y[mine], ratio[mine] - 1, left=1, color=colour, alpha=0.8, label=name)
        axes.errorbar(ratio[mine], y[mine], xerr=spread[:, mine], fmt="none", ecolor="black", linewidth=0.8)
    axes.axvline(1, color="black", linewidth=0.8)
    axes.set_yticks(y)
    axes.set_yticklabels([f"{row.problem}, {row.optimizer}" for row in cells.itertuples()], fontsize="small")
    axes.set_xscale("log")
    axes.set_ylim(-0.7, len(cells) - 0.3)
    axes.set_xlabel("A / B (whisker: A's fastest / B's slowest to A's slowest / B's fastest repeat)")
    axes.set_title(title, fontsize="small")
    axes.legend(loc="upper left", bbox_to_anchor=(1.01, 1), fontsize="small", title="implementation")
    return _png(figure)


def compare_files(comparison: Comparison) -> dict[str, bytes]:
    """What `python -m bench compare` writes: compare.md and compare.png."""
    return {"compare.md": comparison.markdown.encode(), "compare.png": compare_plot(comparison)}


def default_out(a: Path, b: Path) -> Path:
    """The common parent of A and B if they share one (results/ for results/cpu and results/gpu), else ."""
    parent_a, parent_b = Path(a).resolve().parent, Path(b).resolve().parent
    return parent_a if parent_a == parent_b else Path(".")


def compare_command(argv: list[str]) -> int:
    """`python -m bench compare A B [--out DIR]`: print and write compare.md and compare.png; returns 0.

    Bad input raises bench.cli.UsageError (one line), before anything is written.
    """
    from bench.cli import UsageError, _check_writable, _Parser
    from bench.tables import replace_files

    parser = _Parser(
        prog="python -m bench compare",
        description="Compare two results folders (speed ratios, best points, steps to target) for reading; "
        "write compare.md and compare.png into --out.",
    )
    parser.add_argument("a", type=Path, metavar="A", help="a results folder (e.g. results/cpu)")
    parser.add_argument("b", type=Path, metavar="B", help="another (e.g. a GPU run, or after a change)")
    parser.add_argument(
        "--out", type=Path, help="output folder (default: A's and B's parent if they share one, else .)"
    )
    args = parser.parse_args(argv)
    out = args.out if args.out is not None else default_out(args.a, args.b)
    try:
        comparison = compare_runs(args.a, args.b)
    except TableError as error:
        raise UsageError(str(error)) from None
    _check_writable(out, out)
    files = compare_files(comparison)
    print(comparison.markdown)
    replace_files(out, files)
    print(f"wrote {', '.join(str(out / name) for name in sorted(files))}")
    return 0
