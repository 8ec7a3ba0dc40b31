"""`python -m bench compare A B` (bench.compare): speed ratios, convergence side by side, bad input."""

import csv
import shutil
from pathlib import Path

import numpy as np
import pytest

from bench import tables
from bench.cli import UsageError
from bench.compare import compare_command, compare_runs

QUICK = Path(__file__).parents[1] / "results" / "cpu-quick"
NEEDED = ("metadata.json", "timing.csv", "tuned.csv", "networks-summary.csv")
NS_COLUMNS = ("ns_per_lr_step", "ns_per_lr_step_min", "ns_per_lr_step_max")


def _copy(folder: Path) -> Path:
    folder.mkdir()
    for name in NEEDED:
        shutil.copy(QUICK / name, folder / name)
    return folder


def _edit(path: Path, change) -> None:
    """Rewrite a CSV file, ``change(row)`` on each row (a dict of strings); a row it returns None for goes."""
    with open(path, newline="") as handle:
        reader = csv.DictReader(handle)
        fields, rows = reader.fieldnames, [change(row) for row in reader]
    with open(path, "w", newline="") as handle:
        writer = csv.DictWriter(handle, fields, lineterminator="\n")
        writer.writeheader()
        writer.writerows(row for row in rows if row is not None)


def _slower_and_changed(row):
    """B: every timing twice as slow (exactly: float repr), xor/adam's rate changed, one row dropped."""
    for column in NS_COLUMNS:
        if column in row:
            row[column] = repr(2 * float(row[column]))
    if "learning_rate" in row and (row["problem"], row["optimizer"]) == ("xor", "adam"):
        row["learning_rate"] = repr(2 * float(row["learning_rate"]))
    if "reached_fraction" in row and (row["problem"], row["optimizer"]) == ("rosenbrock", "adam"):
        row["reached_fraction"] = "0.5"
    return None if (row["problem"], row["optimizer"]) == ("logistic_regression", "sgd") else row


@pytest.fixture
def runs(tmp_path):
    """Two results folders in tmp_path: a (results/cpu-quick's tables) and b (changed, see above)."""
    a, b = _copy(tmp_path / "a"), _copy(tmp_path / "b")
    for name in ("timing.csv", "tuned.csv"):
        _edit(b / name, _slower_and_changed)
    return a, b


def test_speed_ratio_is_exactly_half_or_two(runs):
    a, b = runs
    speed = compare_runs(a, b).speed
    both = speed[speed["in_runs"] == "both"]
    assert len(both) == len(tables.read_table(a / "timing.csv")) - 2  # logistic_regression/sgd's two rows
    assert (both["ratio"] == 0.5).all()
    assert both["same_program"].all()
    assert (both["ratio_low"] <= both["ratio"]).all()
    assert (both["ratio"] <= both["ratio_high"]).all()
    reverse = compare_runs(b, a).speed
    assert (reverse.loc[reverse["in_runs"] == "both", "ratio"] == 2).all()
    only = speed[speed["in_runs"] != "both"]
    assert set(only["in_runs"]) == {"A only"}
    assert set(zip(only["problem"], only["optimizer"], strict=True)) == {("logistic_regression", "sgd")}


def test_convergence_flags_the_best_point_and_reached_fraction_and_lists_rows_in_one_run(runs):
    a, b = runs
    comparison = compare_runs(a, b)
    tuned = comparison.tuned.set_index(["problem", "optimizer"])
    flagged = tuned[tuned["best_point_differs"]].index.tolist()
    assert flagged == [("xor", "adam")]
    assert tuned[tuned["reached_differs"]].index.tolist() == [("rosenbrock", "adam")]
    assert tuned.loc[("logistic_regression", "sgd"), "in_runs"] == "A only"
    assert not comparison.networks["best_point_differs"].any()
    assert not comparison.networks["reached_differs"].any()
    markdown = comparison.markdown
    assert f"A = {a}, B = {b}" in markdown
    assert "**0.5** [" in markdown
    assert "rows in A only (1): logistic_regression/sgd" in markdown
    assert "timing rows in A only (2)" in markdown
    assert "| xor | adam |" in markdown
    assert "**best point**" in markdown
    assert "**seeds at target**" in markdown
    assert "The runs share device, dtype, profile and commit." in markdown


def test_a_run_without_networks_is_compared_and_says_so(runs):
    a, b = runs
    (b / "networks-summary.csv").unlink()
    comparison = compare_runs(a, b)
    assert comparison.networks is None
    assert comparison.notes == ["networks-summary.csv is only in A: the networks are not compared"]


def test_command_prints_and_writes_markdown_and_plot_into_the_common_parent(runs, capsys):
    a, b = runs
    assert compare_command([str(a), str(b)]) == 0
    out = a.parent
    assert (out / "compare.png").read_bytes().startswith(b"\x89PNG")
    markdown = (out / "compare.md").read_text()
    printed = capsys.readouterr().out
    assert markdown in printed
    assert f"wrote {out / 'compare.md'}, {out / 'compare.png'}" in printed
    assert "![A / B speed per cell](compare.png)" in markdown
    assert not list(out.glob(".compare*"))  # no temporary file left behind


def test_command_writes_into_out(runs, tmp_path, capsys):
    a, b = runs
    out = tmp_path / "elsewhere"
    assert compare_command([str(a), str(b), "--out", str(out)]) == 0
    assert sorted(path.name for path in out.iterdir()) == ["compare.md", "compare.png"]
    assert not (a.parent / "compare.md").exists()


def _damaged_timing(a, b):
    text = (b / "timing.csv").read_text()
    (b / "timing.csv").write_text(text[: len(text) // 2])


def _bad_cell(a, b):
    _edit(a / "tuned.csv", lambda row: {**row, "steps_to_target_median": "many"})


@pytest.mark.parametrize(
    ("break_it", "argv", "message"),
    [
        (None, ["{tmp}/missing", "{b}"], "A {tmp}/missing: no such folder"),
        (
            lambda a, b: (a / "metadata.json").unlink(),
            ["{a}", "{b}"],
            "not a results folder (no metadata.json)",
        ),
        (lambda a, b: (b / "metadata.json").write_text("{"), ["{a}", "{b}"], "metadata.json: not valid JSON"),
        (lambda a, b: (a / "tuned.csv").unlink(), ["{a}", "{b}"], "tuned.csv: missing"),
        (_damaged_timing, ["{a}", "{b}"], "timing.csv: row"),
        (_bad_cell, ["{a}", "{b}"], "column steps_to_target_median: 'many' is not a number"),
        (None, ["{a}/timing.csv", "{b}"], "timing.csv: not a folder"),
        (None, ["{a}", "{b}", "--out", "{a}/tuned.csv"], "is a file; give a folder with --out"),
        (None, ["{a}", "{b}", "--out", "{tmp}/no/such"], "does not exist"),
        (None, ["{a}"], "the following arguments are required: B"),
        (None, ["{a}", "{b}", "--bogus"], "unrecognized arguments: --bogus"),
    ],
)
def test_bad_input_is_refused_with_one_line_and_nothing_written(runs, tmp_path, break_it, argv, message):
    a, b = runs
    if break_it is not None:
        break_it(a, b)
    before = sorted(tmp_path.rglob("*"))
    with pytest.raises(UsageError) as raised:
        compare_command([arg.format(a=a, b=b, tmp=tmp_path) for arg in argv])
    text = str(raised.value)
    assert message.format(tmp=tmp_path) in text
    assert "\n" not in text
    assert sorted(tmp_path.rglob("*")) == before


def test_ratio_range_holds_the_repeats_spread(runs):
    a, b = runs
    both = compare_runs(a, b).speed.query("in_runs == 'both'")
    expected_low = both["ns_per_lr_step_min_a"] / both["ns_per_lr_step_max_b"]
    assert np.array_equal(both["ratio_low"], expected_low)
