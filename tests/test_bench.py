"""The harness: command line, tables, atomic writes, check, metrics."""

import csv
import json
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import gdjax
from bench import metrics as bench_metrics
from bench import tables
from bench.cli import main
from bench.suites import LEARNING_RATE_RANGES, SUITE_OPTIMIZERS, build_suite
from bench.tuned import FRESH_SEEDS

SMALL_RUN = [
    "--problems",
    "xor,linear_regression",
    "--optimizers",
    "gd,adam",
    "--steps",
    "300",
    "--lrs",
    "1e-4,0.1,1",
    "--seeds",
    "0,1",
    "--repeats",
    "1",
]


@pytest.fixture
def quick_results():
    """The committed quick run (well formed, `nox -s results` checks it): for tests that copy and damage
    a results folder without running the harness."""
    return Path(__file__).parents[1] / "results" / "cpu-quick"


@pytest.fixture(scope="module")
def small_results(tmp_path_factory):
    """One small run of the harness, shared by the tests that read its output."""
    out = tmp_path_factory.mktemp("results")
    assert main([*SMALL_RUN, "--out", str(out)]) == 0
    (folder,) = out.iterdir()
    return folder


@pytest.mark.slow  # 59 s measured on 2 busy cores
def test_small_run_writes_every_table_plot_and_metadata(small_results):
    names = {path.name for path in small_results.iterdir()}
    assert set(tables.RUN_TABLES) <= names
    assert {"summary.md", "metadata.json", "curves-xor.png", "sensitivity-linear_regression.png"} <= names
    for name in tables.RUN_TABLES:
        frame = tables.read_table(small_results / name)
        assert list(frame.columns) == list(tables.SCHEMA[name])
    convergence = tables.read_table(small_results / "convergence.csv")
    # optimizers x rates x seeds: xor's 2 seeds; the regression's one (its seeds change nothing)
    assert len(convergence) == 2 * 3 * 2 + 2 * 3 * 1
    metadata = json.loads((small_results / "metadata.json").read_text())
    assert metadata["schema_version"] == tables.SCHEMA_VERSION
    assert metadata["seeds"] == [0, 1]
    assert {"jax", "optax", "numpy", "gdjax"} <= set(metadata["versions"])
    assert metadata["matmul_precision"] == "default"  # jax_default_matmul_precision unset
    timing = tables.read_table(small_results / "timing.csv")
    assert set(timing["implementation"]) == {
        "gdjax.sweep",
        "textbook numpy loop",
        "python loop of jitted step",
    }
    assert (timing["ratio_to_floor"] > 0).all()
    assert "## Best learning rate per optimizer" in (small_results / "summary.md").read_text()


@pytest.mark.slow  # runs the shared small harness run (small_results)
def test_small_run_draws_the_lessons_and_compares_with_sklearn(small_results):
    names = {path.name for path in small_results.iterdir()}
    pictures = {"fit-linear_regression.png", "paths-linear_regression.png", "cost-linear_regression.png"}
    assert pictures <= names
    summary = (small_results / "summary.md").read_text()
    assert all(f"![{name}]({name})" in summary for name in pictures)
    sklearn = tables.read_table(small_results / "sklearn.csv")
    assert list(sklearn.columns) == list(tables.SCHEMA["sklearn.csv"])
    assert len(sklearn) == 3
    assert "## scikit-learn beside gdjax" in summary


@pytest.mark.slow  # runs the shared small harness run (small_results)
def test_report_puts_each_problems_plots_beside_its_tables(small_results):
    report = (small_results / "report.md").read_text()
    sections = report.split("\n## ")[1:]
    assert [section.splitlines()[0] for section in sections] == [
        "xor",
        "linear_regression",
        "Performance profiles",
    ]
    profiles = re.findall(r'<img src="([^"]+)"', sections.pop())
    assert profiles == [f"profile-{name}.png" for name in ("examples", "gradient-evaluations", "seconds")]
    for section in sections:
        problem = section.splitlines()[0]
        images = re.findall(r'<img src="([^"]+)"', section)
        assert f"curves-{problem}.png" in images
        assert f"sensitivity-{problem}.png" in images
        assert all((small_results / name).is_file() for name in images)
        for heading in ("Best learning rate of the grid", "Tuned: the best rate on fresh seeds", "Speed"):
            assert f"**{heading}**" in section
        table_rows = [line for line in section.splitlines() if line.startswith(f"| {problem} |")]
        # best rate and tuned: a row per optimizer; speed: sweep and python loop each, and the textbook loop
        assert len(table_rows) == 2 + 2 + 2 * 2 + 1


@pytest.mark.slow  # 44 s measured on 2 busy cores
def test_convergence_is_identical_across_runs_and_check_agrees(small_results, tmp_path, capsys):
    assert main([*SMALL_RUN, "--out", str(tmp_path)]) == 0
    (again,) = tmp_path.iterdir()
    assert (again / "convergence.csv").read_bytes() == (small_results / "convergence.csv").read_bytes()
    assert main(["check", str(again), "--against", str(small_results)]) == 0
    assert "agrees" in capsys.readouterr().out


def test_check_reports_a_difference_beyond_tolerance(quick_results, tmp_path, capsys):
    changed = tmp_path / "changed"
    changed.mkdir()
    for path in quick_results.iterdir():
        (changed / path.name).write_bytes(path.read_bytes())
    frame = pd.read_csv(changed / "convergence.csv", keep_default_na=False)  # hyperparameters "" stays ""
    frame.loc[0, "best_loss"] *= 1.1
    frame.to_csv(changed / "convergence.csv", index=False, na_rep="nan")
    assert main(["check", str(changed), "--against", str(quick_results)]) == 1
    assert "best_loss differs" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("damage", "message"),
    [
        (lambda text: text.replace("best_loss", "bestloss", 1), "missing best_loss"),
        (
            lambda text: text.replace(",False\n", ",maybe\n", 1).replace(",True\n", ",maybe\n", 1),
            "column settled: 'maybe' is not True/False",
        ),
        (
            lambda text: text.replace("linear_regression,gd", "linear_regression,gd,extra", 1),
            "not a readable CSV",
        ),
        (lambda text: text[: len(text) // 2], "truncated"),
        (lambda text: "", "not a readable CSV"),
    ],
)
def test_check_names_the_damage_and_exits_2(quick_results, tmp_path, capsys, damage, message):
    damaged = tmp_path / "damaged"
    damaged.mkdir()
    for path in quick_results.iterdir():
        (damaged / path.name).write_bytes(path.read_bytes())
    path = damaged / "convergence.csv"
    path.write_text(damage(path.read_text()))
    assert main(["check", str(damaged), "--against", str(quick_results)]) == 2
    err = capsys.readouterr().err
    assert message in err
    assert err.count("\n") == 1


def test_non_numeric_cell_is_reported_with_row_and_column(quick_results, tmp_path):
    rows = list(csv.reader((quick_results / "timing.csv").read_text().splitlines()))
    rows[2][rows[0].index("ns_per_lr_step")] = "fast"  # data row 2, line 3 of the file
    with (tmp_path / "timing.csv").open("w", newline="") as file:
        csv.writer(file, lineterminator="\n").writerows(rows)
    with pytest.raises(tables.TableError, match="row 3, column ns_per_lr_step: 'fast' is not a number"):
        tables.read_table(tmp_path / "timing.csv")


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (
            ["--problems", "mnist"],
            "unknown problem 'mnist'; allowed: linear_regression, linear_regression_standardized",
        ),
        (
            ["--optimizers", "gd,lbfgs"],
            "optimizer 'lbfgs' is not registered; known: adam, gd, momentum, nesterov, sgd",
        ),
        (["--lrs", "0.1,-1"], "learning rates '0.1,-1' are not positive finite numbers"),
        (["--lrs", "fast"], "learning rates 'fast' are not"),
        (["--lrs", "1e-2:1e-4:5"], "LOW:HIGH:COUNT"),
        (["--seeds", ""], "give at least one integer"),
        (["--steps", "0"], "'0' is not an integer >= 1"),
        (["--dtype", "float16"], "invalid choice: 'float16'"),
        (["--device", "tpu"], "device 'tpu' is not available"),
        (["--frobnicate"], "unrecognized arguments: --frobnicate"),
        (["--optimizers", "momentum", "--lrs", "0.1", "--grid", "gamma=1"],
         "'gamma' is not an argument of optimizer 'momentum' with schedule 'constant'"),
        (["--grid", "momentum"], "--grid 'momentum' is not one of: NAME=a,b,c"),
        (["--grid", "momentum=lin:0:1"], "is not one of"),
        (["--grid", "momentum=1-log:0.5:1:4"], "is not one of"),
        (["--lrs", "0.1", "--grid", "learning_rate=0.2"], "give the learning rates once"),
        (["--grid", "momentum=0.5", "--grid", "momentum=0.9"], "--grid: each hyperparameter once"),
        (["--schedule", "linear"], "invalid choice: 'linear'"),
        (["--grid", "learning_rate=-1,0.1"], "--grid learning_rate: the rates must be positive finite"),
        (["--optimizers", "gd", "--lrs", "0.1", "--schedule", "warmup_cosine", "--grid",
          "warmup_steps=0,5000", "--steps", "100"], "got warmup_steps 5000.0 with decay_steps 100.0"),
        (["--optimizers", "gd", "--lrs", "0.1", "--schedule", "warmup_cosine", "--grid", "warmup_steps=5000",
          "--steps", "100"], "warmup_steps must be >= 0 and below decay_steps"),
    ],
)  # fmt: skip
def test_bad_command_line_gets_one_line_and_exit_2(argv, message, tmp_path, capsys):
    assert main([*argv, "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert message in err
    assert err.count("\n") == 1
    assert not (tmp_path / "out").exists()


def test_output_path_that_is_a_file_is_refused(tmp_path, capsys):
    target = tmp_path / "results"
    target.write_text("not a folder")
    assert main(["--quick", "--out", str(target)]) == 2
    assert "is a file" in capsys.readouterr().err
    assert target.read_text() == "not a folder"


def test_missing_output_folder_and_parent_is_refused(tmp_path, capsys):
    assert main(["--quick", "--out", str(tmp_path / "no" / "such")]) == 2
    assert f"output folder {tmp_path / 'no' / 'such'} does not exist" in capsys.readouterr().err
    assert list(tmp_path.iterdir()) == []


def test_read_only_output_folder_is_refused_before_running(tmp_path, capsys, monkeypatch):
    import tempfile

    def read_only(*args, **kwargs):
        raise OSError(30, "Read-only file system")

    monkeypatch.setattr(tempfile, "TemporaryFile", read_only)  # root may write anywhere: simulate EROFS
    monkeypatch.setattr("bench.runner.run_suite", lambda *a, **k: pytest.fail("ran before refusing"))
    assert main(["--quick", "--out", str(tmp_path)]) == 2
    assert "is not writable (Read-only file system)" in capsys.readouterr().err


@pytest.mark.slow  # 69 s measured on 2 busy cores
def test_full_disk_during_write_keeps_old_results_and_says_so(small_results, tmp_path, capsys, monkeypatch):
    folder = tmp_path / small_results.name
    tables.write_folder(folder, {"convergence.csv": b"previous results"})
    real_open = open

    def full_disk(path, mode="r", *args, **kwargs):
        if ".new-" in str(path) and "summary" in str(path):
            raise OSError(28, "No space left on device")
        return real_open(path, mode, *args, **kwargs)

    monkeypatch.setattr("builtins.open", full_disk)
    assert main([*SMALL_RUN, "--out", str(tmp_path)]) == 2
    monkeypatch.undo()
    err = capsys.readouterr().err
    assert "No space left on device" in err
    assert "previous results are intact" in err
    assert [p.name for p in folder.iterdir()] == ["convergence.csv"]
    assert (folder / "convergence.csv").read_bytes() == b"previous results"


def test_check_refuses_other_schema_versions(quick_results, tmp_path, capsys):
    other = tmp_path / "other"
    other.mkdir()
    for path in quick_results.iterdir():
        (other / path.name).write_bytes(path.read_bytes())
    meta = json.loads((other / "metadata.json").read_text())
    meta["schema_version"] = tables.SCHEMA_VERSION + 1
    (other / "metadata.json").write_text(json.dumps(meta))
    assert main(["check", str(other), "--against", str(quick_results)]) == 2
    assert f"cannot compare schema version {tables.SCHEMA_VERSION + 1}" in capsys.readouterr().err


@pytest.mark.slow  # 8 s measured on 2 busy cores
def test_command_line_error_has_no_traceback(tmp_path):
    done = subprocess.run(
        [sys.executable, "-m", "bench", "--problems", "nope", "--out", str(tmp_path)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 2
    assert done.stderr.strip().count("\n") == 0
    assert "Traceback" not in done.stderr


def test_write_folder_failing_part_way_keeps_the_old_results(tmp_path, monkeypatch):
    folder = tmp_path / "cpu"
    tables.write_folder(folder, {"a.csv": b"old a", "b.csv": b"old b"})

    real_open = open

    def failing_open(path, mode="r", *args, **kwargs):
        if str(path).endswith("b.csv") and "w" in mode:
            raise OSError(28, "No space left on device")
        return real_open(path, mode, *args, **kwargs)

    monkeypatch.setattr("builtins.open", failing_open)
    with pytest.raises(OSError, match="No space"):
        tables.write_folder(folder, {"a.csv": b"new a", "b.csv": b"new b"})
    monkeypatch.undo()
    assert (folder / "a.csv").read_bytes() == b"old a"
    assert (folder / "b.csv").read_bytes() == b"old b"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cpu"]  # no staging folder left


def test_recover_folder_puts_back_results_left_aside(tmp_path):
    (tmp_path / ".cpu.old").mkdir()
    (tmp_path / ".cpu.old" / "timing.csv").write_text("x")
    tables.recover_folder(tmp_path / "cpu")
    assert (tmp_path / "cpu" / "timing.csv").read_text() == "x"


@pytest.mark.slow  # 87 s measured on 2 busy cores
@pytest.mark.parametrize(
    ("signal_number", "delay_s"),
    [(signal.SIGINT, 2.5), (signal.SIGINT, 4.0), (signal.SIGKILL, 3.0), (signal.SIGKILL, 6.0)],
)
def test_interrupted_run_leaves_old_or_new_results_never_a_mix(tmp_path, signal_number, delay_s):
    import jax

    from bench.cli import device_tag

    folder = tmp_path / f"{device_tag(jax.devices()[0])}-custom"
    tables.write_folder(folder, {"convergence.csv": b"previous results"})
    process = subprocess.Popen(
        [sys.executable, "-m", "bench", *SMALL_RUN, "--out", str(tmp_path)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    time.sleep(delay_s)
    process.send_signal(signal_number)
    _, err = process.communicate(timeout=120)
    tables.recover_folder(folder)  # what the next run does first
    names = {path.name for path in folder.iterdir()}
    if (folder / "convergence.csv").read_bytes() == b"previous results":
        assert names == {"convergence.csv"}
        if signal_number == signal.SIGINT:
            assert process.returncode == 130
            assert b"interrupted; results left as they were" in err
            assert b"Traceback" not in err
    else:  # the run finished before the signal: complete new results
        assert set(tables.RUN_TABLES) | {"metadata.json", "summary.md"} <= names
        assert tables.check(folder, folder) == []
    # besides the results, at most the pieces kept for a resumed run
    assert sorted(path.name for path in tmp_path.iterdir()) in (
        [folder.name],
        [f".{folder.name}.partial", folder.name],
    )


def test_textbook_stability_limit_and_grid_straddles_it():
    limit = 2 / gdjax.linear_regression().facts.curvature[0]
    assert limit == pytest.approx(6.1e-4, rel=0.01)
    low, high = LEARNING_RATE_RANGES["linear_regression", "gd"]
    assert low < limit < high


def test_default_suite_is_wide_enough():
    cells = build_suite(["linear_regression", "xor"], list(SUITE_OPTIMIZERS))
    assert len(cells) == 8
    assert all(len(c.learning_rates) >= 32 and len(c.seeds) >= 5 for c in cells)
    assert {c.problem: c.steps for c in cells} == {"linear_regression": 100_000, "xor": 60_000}


def test_asking_for_a_device_that_is_not_there_names_the_ones_that_are(tmp_path, capsys):
    import jax

    if any(device.platform == "gpu" for device in jax.devices()):
        pytest.skip("this machine has a GPU")
    assert main(["--device", "gpu", "--out", str(tmp_path)]) == 2
    assert capsys.readouterr().err == "bench: error: device 'gpu' is not available; available: cpu\n"
    assert list(tmp_path.iterdir()) == []


@pytest.mark.slow  # 36 s measured on 2 busy cores
def test_sgd_speed_is_measured_against_the_work_of_its_minibatch_step():
    from bench import baselines
    from bench.runner import run_suite

    problem = gdjax.linear_regression()
    full = baselines.step_cost(problem, gdjax.OPTIMIZERS["sgd"], "float32")
    one = baselines.step_cost(problem, gdjax.OPTIMIZERS["sgd"], "float32", batch_size=1)
    assert one.flop < full.flop / 20  # one example of 100
    cells = build_suite(["linear_regression"], ["sgd"], learning_rates=[1e-4], seeds=[0], steps=50)
    timing = run_suite(cells, dtype="float32", repeats=1).timing.set_index("implementation")
    assert timing.loc["gdjax.sweep", "flop_per_lr_step"] == one.flop
    assert timing.loc["python loop of jitted step", "flop_per_lr_step"] == one.flop


@pytest.mark.slow  # 44 s measured on 2 busy cores
def test_a_grid_run_writes_each_points_hyperparameters_and_reruns_the_best_point(tmp_path):
    argv = ["--problems", "xor", "--optimizers", "momentum", "--grid", "learning_rate=0.3,3", "--grid",
            "momentum=lin:0:0.9:3", "--steps", "400", "--seeds", "0,1", "--repeats", "1"]  # fmt: skip
    assert main([*argv, "--out", str(tmp_path)]) == 0
    folder = tmp_path / "cpu-custom"
    convergence = tables.read_table(folder / "convergence.csv")
    assert sorted(set(convergence["hyperparameters"])) == ["momentum=0.0", "momentum=0.45", "momentum=0.9"]
    assert len(convergence) == 2 * 3 * 2
    summary, tuned = (tables.read_table(folder / name).iloc[0] for name in ("summary.csv", "tuned.csv"))
    assert summary["best_hyperparameters"] in set(convergence["hyperparameters"])
    assert tuned["hyperparameters"] == summary["best_hyperparameters"]
    best = {
        "learning_rate": float(summary["best_learning_rate"]),
        **bench_metrics.parse_point(tuned["hyperparameters"]),
    }
    alone = gdjax.sweep(gdjax.xor(), "momentum", points=[best], steps=400, seeds=FRESH_SEEDS, log_every=100)
    assert float(tuned["final_loss_median"]) == pytest.approx(float(np.median(alone.final_loss)), rel=1e-6)
    # one axis beside the rate: its heatmap is in the report (no theory.csv: that is the profiles')
    assert (folder / "grid-xor-momentum.png").read_bytes().startswith(b"\x89PNG")
    assert "grid-xor-momentum.png" in (folder / "report.md").read_text()
    assert not (folder / "theory.csv").exists()
