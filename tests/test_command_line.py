"""The command line a new user meets: every refusal at once and before any work, help, modes, the console."""

import os
import re
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from bench import tables
from bench.cli import main
from bench.suites import build_suite

ROOT = Path(__file__).parents[1]


@pytest.fixture
def nothing_runs(monkeypatch):
    """Fail the test if the suite starts: a refusal must come before any work."""
    monkeypatch.setattr("bench.runner.run_suite", lambda *a, **k: pytest.fail("ran before refusing"))
    monkeypatch.setattr("bench.baselines.measure_floor_rates", lambda *a, **k: pytest.fail("floor ran"))


@pytest.mark.parametrize(
    ("argv", "messages"),
    [
        (["--lr", "1e-3"], ["unrecognized arguments: --lr 1e-3"]),  # no abbreviation of --lrs
        (["--quic"], ["unrecognized arguments: --quic"]),
        (
            ["--lrs", "x", "--seeds", "-1", "--steps", "0"],
            ["argument --lrs: learning rates 'x'", "argument --seeds: seeds '-1'", "argument --steps: '0'"],
        ),
        (
            ["--data", "a.csv", "--quick", "--full", "--steps", "10", "--log-every", "20",
             "--process-id", "0"],
            [
                "--data and --target go together",
                "give --quick or --full, not both",
                "--log-every 20 is more than --steps 10",
                "--coordinator, --num-processes and --process-id go together",
            ],
        ),
        (  # a bad choice, a bad value and an inconsistency: all three
            ["--dtype", "float16", "--steps", "0", "--quick", "--full", "--process-id", "x"],
            ["argument --dtype: invalid choice: 'float16' (choose from float32, float64)",
             "argument --steps: '0' is not an integer >= 1", "give --quick or --full, not both",
             "argument --process-id: 'x' is not an integer >= 0"],
        ),
        (
            ["--problems", "xor", "--optimizers", "gd", "--lrs", "0.1", "--steps", "100000000000"],
            ["steps must be an integer >= 1 and <= 2147483647"],
        ),
        (  # 2e9 logged points a run: not even one point fits in memory
            ["--problems", "xor", "--optimizers", "gd", "--lrs", "0.1", "--steps", "2000000000",
             "--log-every", "1"],
            ["fewer logged points (a larger log_every: --log-every on the command line)"],
        ),
    ],
)  # fmt: skip
def test_every_refusal_is_one_line_exit_2_before_any_work(argv, messages, tmp_path, capsys, nothing_runs):
    assert main([*argv, "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    for message in messages:
        assert message in err
    assert not (tmp_path / "out").exists()


def test_help_lists_the_other_commands_and_the_default_problems(capsys):
    with pytest.raises(SystemExit):
        main(["--help"])
    text = " ".join(capsys.readouterr().out.split())
    for command in ("python -m bench check", "python -m bench compare A B", "python -m bench devices"):
        assert command in text
    assert "(default: linear_regression," in text
    assert "all built-in" not in text
    assert "--log-every N" in text
    assert "--no-compile-cache" in text


def test_log_every_replaces_the_profiles_intervals():
    cells = build_suite(["xor", "linear_regression_standardized"], ["gd"], log_every=7)
    assert [cell.log_every for cell in cells] == [7, 7]
    assert build_suite(["xor"], ["gd"], steps=5, log_every=7)[0].log_every == 5  # at most the steps


def test_results_get_the_usual_modes_not_tempfiles_private_ones(tmp_path):
    umask = os.umask(0o022)
    os.umask(umask)
    tables.write_folder(tmp_path / "run", {"a.csv": b"x"})
    tables.replace_files(tmp_path / "machine", {"b.csv": b"y"})
    assert stat.S_IMODE((tmp_path / "run").stat().st_mode) == 0o777 & ~umask
    assert stat.S_IMODE((tmp_path / "run" / "a.csv").stat().st_mode) == 0o666 & ~umask
    assert stat.S_IMODE((tmp_path / "machine" / "b.csv").stat().st_mode) == 0o666 & ~umask


@pytest.mark.slow  # 65 s measured on 2 busy cores
def test_a_piped_run_talks_in_plain_lines_and_ends_with_a_summary(tmp_path):
    """stderr not a terminal: one progress line per piece of work, nothing else (no warnings);
    stdout: the closing summary. Started in another folder, with the harness found on PYTHONPATH
    (it is not installed), the run imports the user's problem from the current folder."""
    (tmp_path / "my_problems.py").write_text("import gdjax\n\ndef xor_again():\n    return gdjax.xor()\n")
    argv = ["--problems", "my_problems:xor_again", "--optimizers", "gd,adam", "--lrs", "0.1,1",
            "--seeds", "0", "--steps", "200", "--repeats", "1", "--no-compile-cache",
            "--out", str(tmp_path)]  # fmt: skip
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    done = subprocess.run(
        [sys.executable, "-m", "bench", *argv],
        capture_output=True,
        text=True,
        check=False,
        cwd=tmp_path,
        env=env,
    )
    assert done.returncode == 0, done.stderr
    lines = done.stderr.splitlines()
    assert all(re.fullmatch(r"\[ *\d+\.\d s\] [a-z]+( \d+/\d+)?: .+", line) for line in lines), lines
    phases = [line.split("] ")[1].split(":")[0] for line in lines]
    assert phases == ["floor", "sweeps 1/2", "sweeps 2/2", "tuned", "lessons", "writing", "done"]
    folder = tmp_path / "cpu-custom"
    assert done.stdout.splitlines()[0].startswith("my_problems:xor_again: ")
    assert done.stdout.splitlines()[-1] == f"summary: {folder / 'summary.md'}  report: {folder / 'report.md'}"
    assert {"profiles.csv", "profile-seconds.png"} <= {path.name for path in folder.iterdir()}
