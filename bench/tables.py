"""The results folder: table schemas, atomic CSV writing, and the check against committed tables."""

from __future__ import annotations

import csv
import json
import os
import shutil
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd

SCHEMA_VERSION = 6

# Every table's columns, in order, with what each holds. README's column
# reference is this, verbatim.
SCHEMA: dict[str, dict[str, str]] = {
    "timing.csv": {
        "problem": "problem name",
        "optimizer": "optimizer name (the textbook loop is plain GD)",
        "implementation": "gdjax.sweep | textbook numpy loop | python loop of jitted step",
        "includes": "what the timed program does beside the optimizer's step, and its dtype (the floor "
        "counts the step and, where the loss is watched every step, its loss value)",
        "n_runs": "runs timed together: learning rates x seeds (1 for the baselines)",
        "steps": "steps per run in the timed call",
        "compile_s": "ahead-of-time compile time in seconds (sweep only)",
        "ns_per_lr_step": "median over repeats of wall time / (n_runs x steps), in ns",
        "ns_per_lr_step_min": "fastest repeat, same unit",
        "ns_per_lr_step_max": "slowest repeat, same unit",
        "lr_steps_per_s": "1e9 / ns_per_lr_step",
        "flop_per_lr_step": "FLOP of one step of one run, as XLA's cost analysis counts them",
        "floor_ns_per_lr_step": "flop_per_lr_step at the multiply-add rate measured in this run",
        "transcendentals_per_lr_step": "exp, log, ... of one step of one run (XLA's cost analysis)",
        "floor_with_transcendentals_ns": "floor_ns_per_lr_step plus transcendentals_per_lr_step at the exp "
        "rate measured in this run",
        "speedup_over_textbook": "textbook numpy loop's ns per step / ns_per_lr_step; gd rows only (the "
        "same algorithm)",
        "ratio_to_floor": "ns_per_lr_step / floor_ns_per_lr_step (1 = at the floor)",
        "ratio_to_floor_with_transcendentals": "ns_per_lr_step / floor_with_transcendentals_ns",
    },
    "convergence.csv": {
        "problem": "problem name",
        "optimizer": "optimizer name",
        "dtype": "float32 or float64",
        "steps": "steps per run",
        "log_every": "steps between logged losses",
        "batch_size": "examples per step (0 = whole data set)",
        "seed": "the run's seed (start point and minibatch order)",
        "learning_rate": "the run's learning rate (a schedule's peak)",
        "schedule": "the learning rate's schedule (gdjax.schedules; constant unless --schedule)",
        "hyperparameters": "the point's other swept hyperparameters (--grid NAME=VALUES) as "
        "name=value;name=value, empty where only the learning rate is swept",
        "final_loss": "loss on all data after the last step",
        "best_loss": "lowest finite loss on all data at the start, logged points and end",
        "diverged_at": "first observed step at which the run had diverged (the one rule: loss not finite, or "
        "its excess over the known minimum above 1e6 x the starting excess, above max(1e30, 1e6 x |starting "
        "loss|) where no minimum is "
        "known); -1 if never",
        "first_at_target": "first observed step whose loss was at or below target_loss; -1 if never",
        "stopped_at": "first step whose parameter change was below 1e-6 (the classic stop); -1 if never",
        "target_loss": "the problem's declared target (gdjax.Facts): 1.01 x the least-squares cost "
        "(regressions), 1.0001 x the exact minimum (logistic), 0.01 (XOR), 1e-9 (Rosenbrock); NaN: none",
        "target_resolution": "steps between observations of the loss: 1 for full batch (exact), log_every "
        "for minibatches",
        "examples_to_target": "steps_to_target x examples a step; -1 if never",
        "epochs_to_target": "examples_to_target / examples in the data set; empty if never",
        "steps_to_target": "start of the run's final stay at or below target_loss (it stayed there to the "
        "end); one gradient evaluation a step; -1 if it ended above",
        "param_distance": "Euclidean distance of the final parameters from the known optimum (not XOR)",
        "settled": "final_loss within 0.1% of best_loss (False for oscillating runs such as Adam)",
    },
    "curves.csv": {
        "problem": "problem name",
        "optimizer": "optimizer name",
        "learning_rate": "the optimizer's best learning rate",
        "step": "steps done",
        "loss_mean": "loss on all data, mean over seeds",
        "loss_min": "lowest over seeds",
        "loss_max": "highest over seeds",
    },
    "summary.csv": {
        "problem": "problem name",
        "optimizer": "optimizer name",
        "schedule": "the learning rate's schedule",
        "best_learning_rate": "the best point's rate: the point (rate and hyperparameters) with the most "
        "seeds that stayed at the target to the end, then fewest median steps to target, then lowest "
        "median final loss",
        "best_hyperparameters": "the best point's other swept hyperparameters (convergence.csv)",
        "best_on_edge": "the best point is at the low or high end of an axis of its grid: the grid may be "
        "too small",
        "best_by": "steps_to_target, or final_loss where no point of the grid reached the target",
        "tuning_points": "points of the grid (the tuning budget is tuning_points x n_seeds runs)",
        "n_seeds": "seeds run at each point (1 where seeds change nothing: see seeds_matter)",
        "seeds_matter": "whether runs differ by seed (a seeded start, minibatches or noise; "
        "gdjax.seeds_matter)",
        "reached_fraction": "fraction of seeds that stayed at the target to the end, at the best point",
        "steps_to_target_median": "median steps to target over the seeds, a seed that never reached it "
        "counting as never (inf)",
        "first_at_target_median": "median first observed step at or below the target (inf: never)",
        "target_resolution": "steps between observations of the loss (1: exact)",
        "examples_to_target_median": "steps_to_target_median x examples a step",
        "epochs_to_target_median": "examples_to_target_median / examples in the data set",
        "final_loss_median": "median final loss over seeds at the best point",
        "best_loss_median": "median best loss over seeds at the best point",
        "diverged_runs": "runs of the whole grid that diverged",
        "largest_finite_learning_rate": "largest learning rate of the grid at which no seed diverged (at the "
        "best point's other hyperparameters)",
        "predicted_stability_limit": "plain GD on a problem of declared curvature: 2 / L",
    },
    "tuned.csv": {
        "problem": "problem name",
        "optimizer": "optimizer name",
        "learning_rate": "the best learning rate of the grid (summary.csv), rerun here",
        "hyperparameters": "the best point's other swept hyperparameters, rerun with it",
        "schedule": "the learning rate's schedule",
        "best_on_edge": "summary.csv's: the point is on its grid's edge",
        "best_by": "summary.csv's: steps_to_target, or final_loss where no point reached the target",
        "tuning_points": "points of the tuning grid",
        "tuning_seeds": "seeds of the tuning grid",
        "seeds_matter": "whether runs differ by seed; where not, one fresh seed is run (n = 1, no interval)",
        "n_seeds": "fresh seeds run (1000..1009, the same for every optimizer: paired; none tuned the "
        "point); 1 where seeds change nothing: the tuning run at the best point (seed 0; any seed runs the "
        "same)",
        "reached_fraction": "fraction of fresh seeds that stayed at the target to the end (XOR: solved, "
        "every output right)",
        "diverged_seeds": "fresh seeds that diverged",
        "steps_to_target_median": "median steps to target over the fresh seeds, a seed that never reached "
        "it counting as never (inf)",
        "steps_to_target_ci_low": "95% order-statistic interval of the median (x_(2) of 10; covers at least "
        "95% for any distribution), low end; empty for n = 1",
        "steps_to_target_ci_high": "high end (x_(9) of 10; inf: never)",
        "target_resolution": "steps between observations of the loss (1: exact)",
        "examples_to_target_median": "steps_to_target_median x examples a step",
        "epochs_to_target_median": "examples_to_target_median / examples in the data set",
        "seconds_to_target_median": "steps_to_target_median x the cell's measured ns per run-step "
        "(timing.csv's gdjax.sweep row; a grid's runs advance together)",
        "final_loss_median": "median final loss over the fresh seeds (a diverged seed counts as inf)",
        "final_loss_ci_low": "95% order-statistic interval of the median, low end; empty for n = 1",
        "final_loss_ci_high": "high end",
        "tuneable_lr_low": "lowest rate of the contiguous grid range around the best within 2x of its "
        "result (median steps to target if every seed reached it, else median final loss)",
        "tuneable_lr_high": "highest rate of that range",
        "tuneability_decades": "log10(tuneable_lr_high / tuneable_lr_low): wider is easier to tune; the "
        "three are NaN where no other rate shares the best point's other hyperparameters (random points)",
    },
}
# The tables of one run's results folder (python -m bench).
RUN_TABLES = tuple(SCHEMA)
SCHEMA["sklearn.csv"] = {
    "implementation": "scikit-learn LinearRegression, scikit-learn SGDRegressor, or gdjax.sweep sgd",
    "learning_rate": "SGDRegressor's eta0 (it decays it); gdjax's best of its grid; empty for least squares",
    "epochs": "passes over the data (SGDRegressor's n_iter_; gdjax runs as many)",
    "runs": "fits made in one timed call (gdjax: its whole grid of learning rates)",
    "seconds": "median wall time of one call (fit, or the compiled sweep), over repeats",
    "final_loss": "textbook cost on the standardised data",
    "loss_ratio_to_least_squares": "final_loss / LinearRegression's",
}
SCHEMA["conditioning.csv"] = {
    "condition_number": "ratio of the largest to the smallest eigenvalue of gdjax.quadratic's matrix",
    "optimizer": "optimizer name",
    "best_learning_rate": "the grid's rate that reached the target and stayed in the fewest steps; empty "
    "if none did",
    "best_on_edge": "the best rate is the lowest or highest of the grid",
    "steps_to_target": "start of the final stay at or below 1e-10 of the starting loss (exact, from x0 = "
    "(1, 0.3)); -1 if none",
    "steps": "steps per run",
}
_NETWORK_RUN = {
    "problem": "network problem: mnist1d_<model> or digits_<model> (gdjax.mnist1d, gdjax.digits)",
    "optimizer": "optimizer name",
    "dtype": "float32 or float64",
    "steps": "updates per run",
    "log_every": "steps between logged points (the resolution of every step count)",
    "batch_size": "examples a step; 0 means the whole training set (gd)",
}
SCHEMA["networks.csv"] = {
    **_NETWORK_RUN,
    "seed": "tuning seed (the start and the minibatch order)",
    "learning_rate": "learning rate of the grid",
    "final_loss": "mean cross-entropy on all training examples after the last step",
    "best_loss": "lowest of it at the start, the logged points and the end",
    "diverged_at": "first observed step at which the run had diverged (convergence.csv's rule); -1 if never",
    "test_accuracy": "fraction of test examples classified right after the last step (NaN for a run "
    "whose logits are not finite: diverged)",
    "test_loss": "mean cross-entropy on the test set after the last step",
    "validation_accuracy": "the same on the validation split (what chooses the best rate)",
    "validation_loss": "mean cross-entropy on the validation split",
}
SCHEMA["networks-summary.csv"] = {
    **{k: v for k, v in _NETWORK_RUN.items() if k != "dtype"},
    "epochs": "passes over the training set a run makes (steps x examples a step / training examples; "
    "the same epoch count for every optimizer, minibatch epochs skipping the n % 100 left over)",
    "tuning_points": "learning rates in the tuning grid",
    "tuning_seeds": "seeds per tuning point (the tuning budget is points x seeds runs)",
    "best_learning_rate": "the rate with the highest mean validation accuracy (never the test set)",
    "best_on_edge": "True when it is the grid's lowest or highest rate: the grid may be too narrow",
    "validation_accuracy_at_best": "its mean validation accuracy over the tuning seeds",
    "n_fresh_seeds": "fresh seeds (1000, 1001, ...) the best rate was rerun on",
    "test_accuracy_mean": "mean test accuracy after the last step over the fresh seeds",
    "test_accuracy_std": "its standard deviation (ddof 1)",
    "test_accuracy_ci_low": "95% Student-t interval of the mean, low end",
    "test_accuracy_ci_high": "high end",
    "test_loss_mean": "mean test cross-entropy over the fresh seeds",
    "target_test_accuracy": "the problem's stated target (bench.networks.TARGET_TEST_ACCURACY)",
    "reached_fraction": "fraction of fresh seeds at or above the target from a logged point to the end",
    "steps_to_target_median": "median over fresh seeds of the start of that final stay (a seed that "
    "never reached it counts as never: inf when half or more did not); logging-interval resolution",
    "first_at_target_median": "median of the first logged step at or above the target",
    "epochs_to_target_median": "steps_to_target_median in passes over the training set",
    "examples_to_target_median": "steps_to_target_median x examples a step",
    "gradient_evaluations_to_target_median": "steps_to_target_median: one gradient a step, of its batch "
    "(gd: of the whole training set; examples_to_target_median compares the work)",
    "ns_per_run_step": "wall time / (runs x steps) of the cell's program, median of its timed runs (the "
    "tuning grid once after a warm-up, and the fresh seeds), logging included",
    "ns_per_run_step_min": "fastest repeat",
    "ns_per_run_step_max": "slowest repeat",
    "seconds_to_target_median": "steps_to_target_median x ns_per_run_step (a grid's runs advance "
    "together: no run has a wall time of its own)",
    "compile_s": "the tuning sweep's compile time (the fresh seeds reuse its program)",
    "full_profile_hours_here": "hours the --full profile's cell (64 rates x 10 seeds x 230 epochs, run 3 "
    "times: warm-up, timed, fresh seeds) would run on this device at ns_per_run_step, compile aside",
}
SCHEMA["networks-curves.csv"] = {
    "problem": "network problem",
    "optimizer": "optimizer name",
    "learning_rate": "the best rate (networks-summary.csv)",
    "step": "steps done at the logged point",
    "epoch": "passes over the training set done",
    "test_accuracy_mean": "mean test accuracy over the fresh seeds",
    "test_accuracy_min": "lowest over the fresh seeds",
    "test_accuracy_max": "highest",
}
# The networks' tables, written by the default, quick and full profiles.
NETWORK_TABLES = ("networks.csv", "networks-summary.csv", "networks-curves.csv")
SCHEMA["grids.csv"] = {
    "problem": "problem (quadratic_k100 is gdjax.quadratic(100.0))",
    "optimizer": "optimizer name",
    "steps": "steps per run (full batch: the loss watched every step)",
    "n_seeds": "seeds per cell (1 where every seed starts alike and steps on all data: n = 1)",
    "learning_rate": "the cell's learning rate (log-spaced axis)",
    "axis": "the second hyperparameter's name (an argument of the optimizer: momentum, b1)",
    "value": "its value in this cell (linear axis)",
    "target_loss": "the problem's target; for the quadratic 1e-10 of the starting loss",
    "steps_to_target_median": "median over seeds of the start of the final stay at or below it (a seed "
    "that never got there counts as never: inf when half or more did not)",
    "reached_fraction": "fraction of seeds that reached it and stayed",
    "final_loss_median": "median loss after the last step",
    "diverged_fraction": "fraction of seeds diverged (convergence.csv's diverged_at rule)",
    "best": "True for the cell with the fewest steps to target (ties: the first in row-major order)",
    "best_on_edge": "the same on every row of a heatmap: True when its best cell is on the grid's edge "
    "(the grid may be too small)",
}
SCHEMA["theory.csv"] = {
    "problem": "problem whose loss is quadratic (gdjax.theory: L and mu from its Hessian)",
    "optimizer": "the heatmap's optimizer (momentum: the heavy ball)",
    "kappa": "L / mu",
    "quantity": "best learning_rate and best momentum (the grid's fastest cell against (lr*, beta*)), "
    "largest stable learning_rate at a momentum (against 2 (1 + beta) / L), gd and heavy-ball steps at their "
    "predicted optima, and their ratio (against log((sqrt k + 1)/(sqrt k - 1)) / log((k + 1)/(k - 1)))",
    "momentum": "the momentum of a stability row; empty otherwise",
    "predicted": "what theory predicts (empty for a count it does not predict)",
    "measured": "what the grid or the run measured (empty: not reached within the steps)",
    "cells_apart": "(predicted - measured) in grid steps (of log rate, or of momentum); a limit between the "
    "largest stable rate and the next is in (0, 1]",
}
# The heatmaps' tables (bench.grids), written by the default, quick and full profiles.
GRID_TABLES = ("grids.csv", "theory.csv")
# Written beside them when they could be made: sklearn.csv with scikit-learn
# installed and the regression run; conditioning.csv in the default and quick profiles.
OPTIONAL_RUN_TABLES = ("sklearn.csv", "conditioning.csv")
SCHEMA["profiles.csv"] = {
    "quantity": "the work to target compared: gradient_evaluations (steps_to_target_median of tuned.csv, "
    "gradient_evaluations_to_target_median of networks-summary.csv: one gradient a step, of its batch), "
    "examples (examples_to_target_median: the work across batch sizes) or seconds "
    "(seconds_to_target_median); a median over fresh seeds, inf where the optimizer did not solve the "
    "problem; in python -m bench submit's folder, work: examples x gradient evaluations a step (work.csv)",
    "optimizer": "optimizer name",
    "tau": "a breakpoint of the profile: 1, then each distinct finite ratio of this optimizer's work on a "
    "problem to the least work of any optimizer compared on it, ascending",
    "rho": "fraction of the n_problems whose ratio is at most tau (Dolan and More 2002); it holds up to the "
    "next breakpoint, and the last is the fraction this optimizer solved",
    "n_optimizers": "optimizers compared (those with rows of this quantity): the profile depends on the set "
    "compared, since adding or removing one changes the least work on a problem and so every ratio",
    "n_problems": "problems in the profile: run and measured by every optimizer compared, and solved by one "
    "at least",
    "unsolved_problems": "problems every optimizer compared ran but none solved (left out)",
    "not_compared_problems": "problems not run or not measured by every optimizer compared, or at the target "
    "from the start (work 0), left out",
}
# Performance profiles of a run (bench.profiles), from its tuned.csv and networks-summary.csv.
PROFILE_TABLES = ("profiles.csv",)
SCHEMA["work.csv"] = {
    "problem": "problem name",
    "optimizer": "optimizer name",
    "seed": "fresh seed; one row where the optimizer's seeds change nothing on the problem (n = 1)",
    "work": "work to target on this seed: examples seen x gradient evaluations a step, until the start of "
    "the final stay at the target (inf: never reached, or diverged)",
    "target_resolution": "steps between observations of the target (1: every step, exact)",
    "resolution": "the work between two observations: target_resolution x examples a step x gradient "
    "evaluations a step",
}
SCHEMA["paired.csv"] = {
    "problem": "problem name",
    "optimizer": "the baseline the submission is compared with",
    "n_pairs": "fresh seeds compared: shared by both (a side whose seeds change nothing has one run, paired "
    "with each of the other's), leaving out those neither brought to the target; 1 where both are "
    "deterministic",
    "n_neither": "fresh seeds neither brought to the target (left out: they say nothing of which is faster)",
    "exact": "both deterministic and observed every step: the one ratio is exact",
    "submitted_work_median": "the submission's median work to target over the shared seeds (work.csv; inf: "
    "the median seed never reached the target)",
    "baseline_work_median": "the baseline's, the same",
    "work_ratio_median": "median over the pairs of submitted / baseline work on the same seed (below 1: the "
    "submission needed less; only the baseline never at the target: 0, only the submission: inf)",
    "work_ratio_ci_low": "95% order-statistic interval of that median (distribution-free), low end; the "
    "ratio itself where both are deterministic; empty below 6 pairs",
    "work_ratio_ci_high": "high end",
    "verdict": "faster (the interval below 1), slower (above 1), within noise (inconclusive at these seeds); "
    "deterministic: faster, slower, the same, or within resolution (closer than the coarser observation "
    "interval); the same (equal work on every pair); too few seeds to say; neither reached the target",
}
# The submission workflow's comparison (bench.submit).
SUBMIT_TABLES = ("work.csv", "paired.csv")
_DEVICE_COLUMNS = {
    "machine": "the machine measured: CPU model and core count",
    "device": "device tag: cpu, or platform and kind (e.g. gpu-nvidia-h200)",
    "device_count": "devices of that kind the sweep was split over",
}
_SPEED_COLUMNS = {
    "n_runs": "learning rates timed together (one seed)",
    "steps": "steps per run in the timed call",
    "compile_s": "ahead-of-time compile time in seconds",
    "ns_per_lr_step": "median over repeats of wall time / (n_runs x steps), in ns",
    "ns_per_lr_step_min": "fastest repeat, same unit",
    "ns_per_lr_step_max": "slowest repeat, same unit",
    "lr_steps_per_s": "1e9 / ns_per_lr_step",
}
SCHEMA["devices.csv"] = {
    **_DEVICE_COLUMNS,
    "problem": "problem name",
    "optimizer": "optimizer name",
    **_SPEED_COLUMNS,
    "speedup_over_one_cpu": "ns_per_lr_step of one CPU device on this machine / this row's",
}
SCHEMA["scaling.csv"] = {
    **_DEVICE_COLUMNS,
    "series": "learning_rates (grid size varies) or examples (data size varies)",
    "problem": "problem name (examples series: Gaussian features plus a bias column)",
    "optimizer": "optimizer name",
    "n_examples": "examples in the data",
    "n_features": "columns of X (bias included) or inputs of the network",
    **_SPEED_COLUMNS,
    "ns_per_lr_example_step": "ns_per_lr_step / n_examples",
}
# Tables that gather the rows of many machines (python -m bench devices);
# the others describe one run and live in its results folder.
MACHINE_TABLES = ("devices.csv", "scaling.csv")
SORT_KEYS = {
    "timing.csv": ["problem", "optimizer", "implementation"],
    "sklearn.csv": ["implementation"],
    "conditioning.csv": ["condition_number", "optimizer"],
    "convergence.csv": ["problem", "optimizer", "learning_rate", "hyperparameters", "seed"],
    "curves.csv": ["problem", "optimizer", "step"],
    "summary.csv": ["problem", "optimizer"],
    "tuned.csv": ["problem", "optimizer"],
    "networks.csv": ["problem", "optimizer", "learning_rate", "seed"],
    "networks-summary.csv": ["problem", "optimizer"],
    "networks-curves.csv": ["problem", "optimizer", "step"],
    "grids.csv": ["problem", "optimizer", "learning_rate", "value"],
    "theory.csv": ["problem", "optimizer"],
    "profiles.csv": ["quantity", "optimizer", "tau"],
    "paired.csv": ["problem", "optimizer"],
    "work.csv": ["problem", "optimizer", "seed"],
    "devices.csv": ["machine", "problem", "optimizer", "device", "device_count"],
    "scaling.csv": [
        "machine",
        "series",
        "problem",
        "device",
        "device_count",
        "n_features",
        "n_examples",
        "n_runs",
    ],
}
INTEGER_COLUMNS = {
    "n_runs",
    "steps",
    "log_every",
    "batch_size",
    "seed",
    "diverged_at",
    "stopped_at",
    "steps_to_target",
    "first_at_target",
    "examples_to_target",
    "target_resolution",
    "n_seeds",
    "diverged_runs",
    "diverged_seeds",
    "device_count",
    "n_examples",
    "n_features",
    "runs",
    "tuning_points",
    "tuning_seeds",
    "n_fresh_seeds",
    "n_pairs",
    "n_neither",
}
TEXT_COLUMNS = {
    "problem", "optimizer", "implementation", "dtype", "machine", "device", "series", "axis", "quantity",
    "schedule", "hyperparameters", "best_hyperparameters", "best_by", "includes", "verdict",
}  # fmt: skip
BOOL_COLUMNS = {"settled", "best_on_edge", "best", "seeds_matter", "exact"}
TIMING_DIGITS, VALUE_DIGITS = 4, 7


class TableError(ValueError):
    """A results file that is missing, damaged, or of another schema."""


def table_csv(name: str, frame: pd.DataFrame) -> str:
    """The CSV text of a table: schema column order, sorted rows, values rounded to what is meaningful."""
    columns = list(SCHEMA[name])
    frame = frame[columns].sort_values(SORT_KEYS[name], kind="stable").reset_index(drop=True)
    digits = TIMING_DIGITS if name in ("timing.csv", *MACHINE_TABLES) else VALUE_DIGITS
    for column in columns:
        if column not in INTEGER_COLUMNS | TEXT_COLUMNS | BOOL_COLUMNS:
            frame[column] = frame[column].map(lambda v: f"{v:.{digits}g}")
    return frame.to_csv(index=False, lineterminator="\n")


def read_table(path: Path) -> pd.DataFrame:
    """Read a results table, checking its columns and cells; TableError names the file, row and column."""
    name = path.name
    if not path.is_file():
        raise TableError(f"{path}: missing")
    try:
        frame = pd.read_csv(path, keep_default_na=False, dtype=str)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as error:
        raise TableError(f"{path}: not a readable CSV ({str(error).splitlines()[0]})") from None
    expected = list(SCHEMA[name])
    if list(frame.columns) != expected:
        missing = [c for c in expected if c not in frame.columns]
        raise TableError(
            f"{path}: columns differ from schema {SCHEMA_VERSION}"
            + (f"; missing {', '.join(missing)}" if missing else f"; got {list(frame.columns)}")
        )
    with open(path, newline="") as handle:
        for number, fields in enumerate(csv.reader(handle), start=1):
            if len(fields) != len(expected):
                raise TableError(
                    f"{path}: row {number} has {len(fields)} of {len(expected)} fields (truncated?)"
                )
    for column in expected:
        if column in TEXT_COLUMNS:
            continue
        if column in BOOL_COLUMNS:
            bad = ~frame[column].isin(["True", "False"])
            values = frame[column] == "True"
        else:
            values = pd.to_numeric(frame[column], errors="coerce")
            bad = values.isna() & ~frame[column].str.lower().isin(["nan", "inf", "-inf"])
            if column in INTEGER_COLUMNS:
                bad |= values.notna() & (values != values.round())
        if bad.any():
            row = int(np.flatnonzero(bad.to_numpy())[0])
            raise TableError(
                f"{path}: row {row + 2}, column {column}: {frame[column].iloc[row]!r} is not "
                + ("True/False" if column in BOOL_COLUMNS else "a number")
            )
        frame[column] = values.astype(int) if column in INTEGER_COLUMNS else values
    return frame


def _usual_mode(path: Path, mode: int) -> None:
    """Give ``path`` the mode a plain mkdir or open would (``mode`` & ~umask): tempfile's are private."""
    umask = os.umask(0o022)
    os.umask(umask)
    os.chmod(path, mode & ~umask)


def write_folder(out_dir: Path, files: dict[str, bytes]) -> None:
    """Replace ``out_dir`` with a folder holding exactly ``files``, all or nothing.

    The files are written to a temporary sibling folder first; the old folder
    is moved aside and the new one moved in by two renames, and the old one
    removed. A run killed between the renames leaves the old folder as
    ``.<name>.old``, which :func:`recover_folder` puts back.
    """
    out_dir = Path(out_dir)
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.new-", dir=out_dir.parent))
    try:
        for name, content in files.items():
            with open(staging / name, "wb") as handle:
                handle.write(content)
                handle.flush()
                os.fsync(handle.fileno())
        _usual_mode(staging, 0o777)  # private (0700) while it is being written
        old = out_dir.parent / f".{out_dir.name}.old"
        if old.exists():
            shutil.rmtree(old)
        if out_dir.exists():
            out_dir.rename(old)
        staging.rename(out_dir)
        shutil.rmtree(old, ignore_errors=True)
    finally:
        if staging.exists():
            shutil.rmtree(staging, ignore_errors=True)


def replace_files(out_dir: Path, files: dict[str, bytes]) -> None:
    """Write ``files`` into ``out_dir`` (other files there are left alone), each replaced whole.

    Every file is written beside its target first; only when all are written
    are they renamed over the old ones, so a failure while writing leaves
    every old file as it was.
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    written = {}
    try:
        for name, content in files.items():
            handle, temporary = tempfile.mkstemp(prefix=f".{name}.new-", dir=out_dir)
            written[name] = Path(temporary)
            with os.fdopen(handle, "wb") as stream:
                stream.write(content)
                stream.flush()
                os.fsync(stream.fileno())
            _usual_mode(written[name], 0o666)
        for name, temporary in written.items():
            temporary.replace(out_dir / name)
    finally:
        for temporary in written.values():
            temporary.unlink(missing_ok=True)


def recover_folder(out_dir: Path) -> None:
    """Tidy up after a run killed inside :func:`write_folder`.

    Puts back a results folder left aside as ``.<name>.old`` and removes
    staging folders ``.<name>.new-*`` that never got moved in.
    """
    out_dir = Path(out_dir)
    old = out_dir.parent / f".{out_dir.name}.old"
    if old.is_dir() and not out_dir.exists():
        old.rename(out_dir)
    for staging in out_dir.parent.glob(f".{out_dir.name}.new-*"):
        shutil.rmtree(staging, ignore_errors=True)


def read_metadata(folder: Path) -> dict:
    path = Path(folder) / "metadata.json"
    try:
        metadata = json.loads(path.read_text())
    except FileNotFoundError:
        raise TableError(f"{path}: missing") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise TableError(f"{path}: not valid JSON ({error})") from None
    if not isinstance(metadata, dict) or "schema_version" not in metadata:
        raise TableError(f"{path}: no schema_version")
    return metadata


# Tolerances of `bench check` (timing is never compared). Loss values are
# compared relatively; final losses and parameter distances only where both
# runs settled (an oscillating run's final value depends on rounding);
# steps to target may move by one observation interval or STEPS_RTOL.
LOSS_RTOL = 1e-3
DISTANCE_RTOL, DISTANCE_ATOL = 1e-2, 1e-4
STEPS_RTOL = 1e-2


def _steps_close(a, b, resolution) -> np.ndarray:
    """Steps to target that agree: both never (-1 or inf) or both reached, within resolution or STEPS_RTOL."""
    a, b = np.asarray(a, float), np.asarray(b, float)
    a, b = np.where(a < 0, np.inf, a), np.where(b < 0, np.inf, b)
    with np.errstate(invalid="ignore"):
        near = np.abs(a - b) <= np.maximum(resolution, STEPS_RTOL * np.maximum(a, b))
    return (a == b) | (np.isnan(a) & np.isnan(b)) | (np.isfinite(a) & np.isfinite(b) & near)


def compare_convergence(new: pd.DataFrame, reference: pd.DataFrame) -> list[str]:
    """Differences between two convergence tables, one line each; empty when they agree."""
    key = SORT_KEYS["convergence.csv"]
    merged = new.merge(
        reference,
        on=[*key, "dtype", "steps", "log_every", "batch_size", "schedule"],
        how="outer",
        suffixes=("", "_ref"),
        indicator=True,
    )
    differences = [
        f"run {tuple(row[k] for k in key)} only in the "
        f"{'new' if row['_merge'] == 'left_only' else 'reference'} table"
        for _, row in merged[merged["_merge"] != "both"].iterrows()
    ]
    both = merged[merged["_merge"] == "both"]
    settled = both["settled"] & both["settled_ref"]

    def close(column, rtol, atol, where):
        a, b = both[column].to_numpy(float), both[f"{column}_ref"].to_numpy(float)
        same = np.isclose(a, b, rtol=rtol, atol=atol) | (np.isnan(a) & np.isnan(b)) | (a == b)
        return same | ~where

    checks = {
        "best_loss": close("best_loss", LOSS_RTOL, 0, np.ones(len(both), bool)),
        "final_loss": close("final_loss", LOSS_RTOL, 0, settled.to_numpy()),
        "param_distance": close("param_distance", DISTANCE_RTOL, DISTANCE_ATOL, settled.to_numpy()),
        "diverged": (both["diverged_at"] >= 0).to_numpy() == (both["diverged_at_ref"] >= 0).to_numpy(),
        "steps_to_target": _steps_close(
            both["steps_to_target"], both["steps_to_target_ref"], both["target_resolution"]
        ),
    }
    for name, ok in checks.items():
        column = "diverged_at" if name == "diverged" else name
        for _, row in both[~ok].iterrows():
            differences.append(
                f"{name} differs for run {tuple(row[k] for k in key)}: "
                f"{row[column]} vs reference {row[f'{column}_ref']}"
            )
    return differences


def check(new_dir: Path, reference_dir: Path) -> list[str]:
    """Check every table of ``new_dir`` against its schema, and its results against ``reference_dir``.

    Compared: convergence.csv run by run, the PUBLISHED tables (summary,
    tuned, conditioning) row by row, and grids.csv cell by cell; timing never.

    Raises TableError for a missing or damaged file or a schema mismatch;
    returns the differences found (empty when within tolerance).
    """
    new_meta, reference_meta = read_metadata(new_dir), read_metadata(reference_dir)
    if new_meta["schema_version"] != reference_meta["schema_version"]:
        raise TableError(
            f"cannot compare schema version {new_meta['schema_version']} ({new_dir}) with "
            f"{reference_meta['schema_version']} ({reference_dir})"
        )
    if new_meta["schema_version"] != SCHEMA_VERSION:
        raise TableError(
            f"{new_dir}: schema version {new_meta['schema_version']}, this harness reads {SCHEMA_VERSION}"
        )
    for name in RUN_TABLES:
        read_table(Path(new_dir) / name)
        read_table(Path(reference_dir) / name)
    for name in (*OPTIONAL_RUN_TABLES, *NETWORK_TABLES, *GRID_TABLES, *PROFILE_TABLES):
        if (Path(new_dir) / name).exists():
            read_table(Path(new_dir) / name)
    differences = compare_convergence(
        read_table(Path(new_dir) / "convergence.csv"), read_table(Path(reference_dir) / "convergence.csv")
    )
    for name in PUBLISHED:
        present = [(Path(folder) / name).exists() for folder in (new_dir, reference_dir)]
        if all(present):
            differences += compare_published(
                name, read_table(Path(new_dir) / name), read_table(Path(reference_dir) / name)
            )
        elif any(present):  # one cannot be compared: say so, never pass quietly
            differences.append(f"{name} is in only one of {new_dir} and {reference_dir}")
    grids = [(Path(folder) / "grids.csv").exists() for folder in (new_dir, reference_dir)]
    if any(grids):
        if not all(grids):
            return [*differences, f"grids.csv is in only one of {new_dir} and {reference_dir}"]
        differences += compare_grids(
            read_table(Path(new_dir) / "grids.csv"), read_table(Path(reference_dir) / "grids.csv")
        )
    return differences


# What `bench check` compares in the published per-cell tables: columns that must be equal, and
# steps to target (within their resolution or STEPS_RTOL). Final losses of oscillating runs depend on
# rounding, timing on the machine: neither is compared here.
PUBLISHED = {
    "summary.csv": (
        ["best_learning_rate", "best_hyperparameters", "best_on_edge", "best_by", "n_seeds",
         "reached_fraction", "diverged_runs"],
        ["steps_to_target_median"],
    ),
    "tuned.csv": (
        ["learning_rate", "hyperparameters", "n_seeds", "reached_fraction", "diverged_seeds"],
        ["steps_to_target_median", "steps_to_target_ci_low", "steps_to_target_ci_high"],
    ),
    "conditioning.csv": (["best_learning_rate", "best_on_edge"], ["steps_to_target"]),
}  # fmt: skip


def compare_published(name: str, new: pd.DataFrame, reference: pd.DataFrame) -> list[str]:
    """Differences between two of the PUBLISHED tables, one line each; empty when they agree."""
    key = SORT_KEYS[name]
    exact, steps = PUBLISHED[name]
    merged = new.merge(reference, on=key, how="outer", suffixes=("", "_ref"), indicator=True)
    differences = [
        f"{name}: row {tuple(row[k] for k in key)} only in the "
        f"{'new' if row['_merge'] == 'left_only' else 'reference'} table"
        for _, row in merged[merged["_merge"] != "both"].iterrows()
    ]
    both = merged[merged["_merge"] == "both"]
    resolution = both.get("target_resolution", 1)
    for column in [*exact, *steps]:
        a, b = both[column], both[f"{column}_ref"]
        ok = _steps_close(a, b, resolution) if column in steps else (a == b) | a.isna() & b.isna()
        differences += [
            f"{name}: {column} differs for {tuple(row[k] for k in key)}: {row[column]} vs reference "
            f"{row[f'{column}_ref']}"
            for _, row in both[~np.asarray(ok)].iterrows()
        ]
    return differences


def compare_grids(new: pd.DataFrame, reference: pd.DataFrame) -> list[str]:
    """Differences between two heatmap tables: which cells diverged, and steps to target within 1%."""
    key = [*SORT_KEYS["grids.csv"], "axis", "steps", "n_seeds"]
    merged = new.merge(reference, on=key, how="outer", suffixes=("", "_ref"), indicator=True)
    if (merged["_merge"] != "both").any():
        return [f"grids.csv: the cells differ ({int((merged['_merge'] != 'both').sum())} in only one table)"]
    steps, steps_ref = (
        merged[c].to_numpy(float) for c in ("steps_to_target_median", "steps_to_target_median_ref")
    )
    ok = (np.isclose(steps, steps_ref, rtol=1e-2, atol=1) | (steps == steps_ref)) & (
        merged["diverged_fraction"].to_numpy(float) == merged["diverged_fraction_ref"].to_numpy(float)
    )
    return [
        f"grids.csv cell {tuple(row[k] for k in key[:5])}: steps to target "
        f"{row['steps_to_target_median']} vs reference {row['steps_to_target_median_ref']}, "
        f"diverged {row['diverged_fraction']} vs {row['diverged_fraction_ref']}"
        for _, row in merged[~ok].iterrows()
    ]
