"""The networks part of the suite: classifiers on MNIST-1D and digits, tuned on validation, reported on test.

The protocol, per (problem, optimizer):

1. **Tune**: one sweep over the learning-rate grid on the tuning seeds.
   The best rate is the one with the highest mean *validation* accuracy
   after the last step (ties: the lower mean validation loss); the test set
   is never read to choose it. A best rate on the edge of its grid is
   flagged (``best_on_edge``): the grid may be too narrow.
2. **Report**: the best rate rerun on FRESH_SEEDS (seeds the tuning never
   saw), with the compiled program of step 1: test accuracy after the last
   step (mean, standard deviation, 95% Student-t interval of the mean; an
   accuracy over a fixed test set is bounded and, at these accuracies,
   about symmetric across seeds), and the work to reach the problem's
   target test accuracy.

sgd, momentum and adam step on minibatches of BATCH_SIZE examples, drawn by
epochs (each epoch a fresh permutation from the seed's key; the
``n % BATCH_SIZE`` examples left over are skipped that epoch, others the
next); gd steps on the whole training set, a step an epoch. Every optimizer
gets the same number of epochs (minibatch epochs skip the ``n % BATCH_SIZE``
left over, so they see slightly fewer examples: 1,100 of digits' 1,149).

Reached the target: the test accuracy is at or above the target at a logged
point and at every logged point after it, to the end; the step reported is
the start of that final stay (``steps_to_target``), beside the first logged
step at or above it (``first_at_target``). Both have the resolution of the
logging interval (``log_every``, chosen to divide the steps so the last
logged point is the end). The runs of a grid advance together,
so no run has a wall time of its own: ``seconds_to_target`` is steps to
target times the cell's measured time per run-step.
"""

from __future__ import annotations

import time
from typing import NamedTuple

import jax
import numpy as np
import pandas as pd
from scipy import stats

import gdjax
from bench.metrics import point_text
from bench.runner import PYTHON_LOOP_TIMED_STEPS, sweep_and_loop_rows
from bench.timing import per_lr_step_ns, time_sweep

BATCH_SIZE = 100
NETWORKS = {
    "mnist1d_linear": lambda: gdjax.mnist1d("linear"),
    "mnist1d_mlp": lambda: gdjax.mnist1d("mlp"),
    "mnist1d_cnn": lambda: gdjax.mnist1d("cnn"),
    "digits_linear": lambda: gdjax.digits("linear"),
    "digits_mlp": lambda: gdjax.digits("mlp"),
}
# The default run holds what fits its 4-minute budget beside the textbook suite, with room for a
# slower machine: softmax regression and the MLP on MNIST-1D (where the optimizers differ most) and
# softmax regression on digits. Measured on 2 CPU cores, compiles included, a cell (sgd, momentum or
# adam) took 2-3 s for a linear model, 6-7 s for the MNIST-1D MLP, 3-4 s for the digits MLP and
# 22-30 s for the CNN (about 0.6 ms a run-step: small im2col products, 25 channels wide), which
# with gd's cells are left to --full. The quick run (CI) has softmax regression on digits.
PROFILE_NETWORKS = {
    "quick": ("digits_linear",),
    "default": ("mnist1d_linear", "mnist1d_mlp", "digits_linear"),
    "full": tuple(NETWORKS),
}
# The test accuracy a run must reach and keep (about what a well-tuned run of the model gets in
# the default run's epochs; MNIST-1D's published baselines: linear 32%, MLP 68%, CNN 94%).
TARGET_TEST_ACCURACY = {
    "mnist1d_linear": 0.30,
    "mnist1d_mlp": 0.55,
    "mnist1d_cnn": 0.85,
    "digits_linear": 0.90,
    "digits_mlp": 0.93,
}
NETWORK_OPTIMIZERS = ("gd", "sgd", "momentum", "adam")
# gd at the default run's few epochs (8 full-batch steps) is far from any target: it runs in the quick
# and full profiles, and the default's budget goes to the minibatch optimizers.
PROFILE_OPTIMIZERS = {
    "quick": NETWORK_OPTIMIZERS,
    "default": ("sgd", "momentum", "adam"),
    "full": NETWORK_OPTIMIZERS,
}
# Log-spaced learning rates per optimizer (both ends included).
RATE_RANGES = {"gd": (0.03, 30.0), "sgd": (0.01, 10.0), "momentum": (1e-3, 10.0), "adam": (1e-4, 1.0)}
# A CPU device runs whole tiles of 16 runs (gdjax.placement.RUNS_ALIGN, for the runs' bit
# invariance), and a sweep takes one device per 16 runs: a cell's tuning grid (16 rates x 2 seeds)
# and its 32 fresh seeds each fill both cores of a 2-core CPU, and the fresh seeds reuse the tuning
# sweep's compiled program. (16 runs on one device took as long as 32 on two: 325 against 176 us
# a run-step for the MNIST-1D MLP with adam.)
N_RATES = {"quick": 16, "default": 16, "full": 64}
EPOCHS = {"quick": 3, "default": 8, "full": 230}  # full: 8,000 minibatch steps of MNIST-1D
TUNING_SEEDS = {"quick": (0, 1), "default": (0, 1), "full": tuple(range(10))}
FRESH_SEEDS = dict.fromkeys(("quick", "default", "full"), tuple(range(1000, 1032)))
LOG_POINTS = 10
# Timed executions of a cell's program after its warm-up: one repeat of the tuning grid, and the
# fresh seeds' run (the same program and work).
NETWORK_REPEATS = 1
# The Python loop of a jitted step timed beside each cell: its repeats, and its steps where a step
# takes the whole training set (a gd step on MNIST-1D's 3,500 examples: about 5 ms).
LOOP_REPEATS = 3
FULL_BATCH_LOOP_STEPS = 30
CONFIDENCE = 0.95


class NetworkCell(NamedTuple):
    """One tuned (problem, optimizer) of the networks part: its grid, seeds and budget."""

    problem: str
    optimizer: str
    learning_rates: np.ndarray
    tuning_seeds: tuple[int, ...]
    fresh_seeds: tuple[int, ...]
    steps: int
    batch_size: int | None
    log_every: int
    # drawn points instead of the rates alone (bench.submit's tuning): each ((name, value), ...)
    points: tuple[tuple[tuple[str, float], ...], ...] = ()


class NetworkTables(NamedTuple):
    convergence: pd.DataFrame  # every tuning run: losses and metrics after the last step
    summary: pd.DataFrame  # per (problem, optimizer): best rate, fresh-seed test accuracy, work to target
    curves: pd.DataFrame  # test accuracy against step at each best rate, over the fresh seeds
    timing: pd.DataFrame  # rows of timing.csv: the sweep and a Python loop of a jitted step, per cell
    fresh: pd.DataFrame | None = None  # a row per fresh seed at each best point: for paired comparisons


def network_cells(
    profile: str, problems: dict[str, gdjax.Problem], optimizers=None, points=None
) -> list[NetworkCell]:
    """The cells of ``profile`` ("quick", "default", "full") for the built ``problems`` (name -> problem).

    ``optimizers`` replaces the profile's; ``points`` ({optimizer: [{name: value}, ...]}) replaces an
    optimizer's rates by drawn points.
    """
    cells = []
    for name in problems:
        n_train = problems[name].n_examples
        for optimizer in optimizers or PROFILE_OPTIMIZERS[profile]:
            drawn = (points or {}).get(optimizer)
            full_batch = optimizer == "gd"
            steps = EPOCHS[profile] * (1 if full_batch else n_train // BATCH_SIZE)
            cells.append(
                NetworkCell(
                    name,
                    optimizer,
                    np.array([point["learning_rate"] for point in drawn])
                    if drawn
                    else np.geomspace(*RATE_RANGES[optimizer], N_RATES[profile]),
                    TUNING_SEEDS[profile],
                    FRESH_SEEDS[profile],
                    steps,
                    None if full_batch else BATCH_SIZE,
                    _log_every(steps),
                    tuple(tuple(point.items()) for point in drawn or ()),
                )
            )
    return cells


def _log_every(steps: int) -> int:
    """The largest divisor of ``steps`` giving at least LOG_POINTS logged points (the last at the end)."""
    return max(d for d in range(1, max(1, steps // LOG_POINTS) + 1) if steps % d == 0)


def full_profile_run_steps(cell: NetworkCell, problem: gdjax.Problem) -> int:
    """Run-steps a ``--full`` cell of this problem and optimizer executes: its tuning grid three times.

    (The warm-up, the timed repeat, and the fresh seeds, padded to the grid's shape.)
    """
    steps = EPOCHS["full"] * (1 if cell.batch_size is None else problem.n_examples // cell.batch_size)
    return 3 * N_RATES["full"] * len(TUNING_SEEDS["full"]) * steps


def final_stay(curve: np.ndarray, target: float, log_every: int) -> tuple[np.ndarray, np.ndarray]:
    """(start of the final stay at or above ``target``, first step at or above it); -1 where none.

    ``curve`` is (..., points), the metric after log_every, 2 log_every, ... steps.
    """
    at = curve >= target
    first = np.where(at.any(axis=-1), (at.argmax(axis=-1) + 1) * log_every, -1)
    below_after = np.flip(np.cumsum(np.flip(~at, axis=-1), axis=-1), axis=-1)  # misses from each point on
    stays = at & (below_after == 0)
    stay = np.where(stays.any(axis=-1), (stays.argmax(axis=-1) + 1) * log_every, -1)
    return stay, first


def best_rate(result: gdjax.SweepResult) -> tuple[int, bool]:
    """(index of the best point by mean final validation accuracy, whether it is on the grid's edge).

    On the edge: its value of some hyperparameter is the lowest or highest the grid holds.
    """
    accuracy = np.nan_to_num(result.final_metrics["validation_accuracy"].mean(axis=0), nan=-1.0)
    loss = np.nan_to_num(result.final_metrics["validation_loss"].mean(axis=0), nan=np.inf)
    best = int(np.lexsort((loss, -accuracy))[0])
    values = [np.asarray(v) for v in (result.grid or {"learning_rate": result.learning_rates}).values()]
    return best, any(len(np.unique(v)) > 1 and v[best] in (v.min(), v.max()) for v in values)


def _interval(values: np.ndarray) -> tuple[float, float, float, float]:
    mean, std = float(values.mean()), float(values.std(ddof=1)) if len(values) > 1 else np.nan
    if len(values) < 2:
        return mean, std, np.nan, np.nan
    half = float(stats.t.ppf(0.5 + CONFIDENCE / 2, len(values) - 1)) * std / np.sqrt(len(values))
    return mean, std, mean - half, mean + half


def run_cell(cell: NetworkCell, problem: gdjax.Problem, *, dtype: str, repeats: int, devices=None):
    """Tune ``cell`` on validation, rerun its best rate on fresh seeds.

    Returns (the tuning runs' frame, the summary row, the fresh seeds' curve, the tuning sweep's timing,
    its program, a row per fresh seed).
    """
    settings = dict(log_every=cell.log_every, dtype=dtype, batch_size=cell.batch_size)
    given = (
        {"points": [dict(p) for p in cell.points]} if cell.points else {"learning_rates": cell.learning_rates}
    )
    tuning = gdjax.prepare_sweep(
        problem,
        cell.optimizer,
        steps=cell.steps,
        **given,
        seeds=cell.tuning_seeds,
        devices=devices,
        **settings,
    )
    timing, result = time_sweep(tuning, repeats)
    best, on_edge = best_rate(result)
    point = {name: float(values[best]) for name, values in result.grid.items()}
    rate = point["learning_rate"]
    # the fresh seeds fill the tuning sweep's shape and run on its compiled program: the same work,
    # so their execution is timed as one more repeat
    fresh = tuning.rerun(seeds=cell.fresh_seeds, points=[point])
    fresh.put()  # its arguments on the devices before the clock starts, as the repeats' were
    start = time.perf_counter()
    outputs = jax.block_until_ready(fresh.execute(timing.compiled))
    run_s = (*timing.run_s, time.perf_counter() - start)
    fresh_result = fresh.result(outputs)
    n_runs = len(cell.learning_rates) * len(cell.tuning_seeds)
    ns, fastest, slowest = per_lr_step_ns(run_s, n_runs, cell.steps)
    target = TARGET_TEST_ACCURACY[cell.problem]
    curve = fresh_result.metric_curves["test_accuracy"][:, 0, :]
    stay, first = final_stay(curve, target, cell.log_every)
    reached = stay >= 0
    examples_a_step = cell.batch_size or problem.n_examples
    accuracy = _interval(fresh_result.final_metrics["test_accuracy"][:, 0])
    # the median over seeds, a seed that never reached the target counting as never (infinite)
    median_steps = float(np.median(np.where(reached, stay, np.inf)))
    row = {
        "problem": cell.problem,
        "optimizer": cell.optimizer,
        "batch_size": cell.batch_size or 0,
        "steps": cell.steps,
        "epochs": cell.steps * examples_a_step / problem.n_examples,
        "log_every": cell.log_every,
        "tuning_points": len(cell.learning_rates),
        "tuning_seeds": len(cell.tuning_seeds),
        "best_learning_rate": rate,
        "best_hyperparameters": point_text({k: v for k, v in point.items() if k != "learning_rate"}),
        "best_on_edge": on_edge,
        "validation_accuracy_at_best": float(result.final_metrics["validation_accuracy"][:, best].mean()),
        "n_fresh_seeds": len(cell.fresh_seeds),
        "test_accuracy_mean": accuracy[0],
        "test_accuracy_std": accuracy[1],
        "test_accuracy_ci_low": accuracy[2],
        "test_accuracy_ci_high": accuracy[3],
        "test_loss_mean": float(np.mean(fresh_result.final_metrics["test_loss"][:, 0])),
        "target_test_accuracy": target,
        "reached_fraction": float(reached.mean()),
        "steps_to_target_median": median_steps,
        "first_at_target_median": float(np.median(np.where(first >= 0, first, np.inf))),
        "epochs_to_target_median": median_steps * examples_a_step / problem.n_examples,
        "examples_to_target_median": median_steps * examples_a_step,
        "gradient_evaluations_to_target_median": median_steps,  # a step: one gradient, of its batch
        "ns_per_run_step": ns,
        "ns_per_run_step_min": fastest,
        "ns_per_run_step_max": slowest,
        "seconds_to_target_median": median_steps * ns * 1e-9,
        "compile_s": timing.compile_s,
        "full_profile_hours_here": full_profile_run_steps(cell, problem) * ns * 1e-9 / 3600,
    }
    points = (np.arange(curve.shape[-1]) + 1) * cell.log_every
    curves = pd.DataFrame(
        {
            "problem": cell.problem,
            "optimizer": cell.optimizer,
            "learning_rate": rate,
            "step": points,
            "epoch": points * examples_a_step / problem.n_examples,
            "test_accuracy_mean": curve.mean(axis=0),
            "test_accuracy_min": curve.min(axis=0),
            "test_accuracy_max": curve.max(axis=0),
        }
    )
    per_seed = pd.DataFrame(
        {
            "problem": cell.problem,
            "optimizer": cell.optimizer,
            "seed": np.asarray(cell.fresh_seeds),
            "steps_to_target": stay,
            "examples_to_target": np.where(reached, stay * examples_a_step, -1),
            "target_resolution": cell.log_every,
            "examples_a_step": examples_a_step,
            "test_accuracy": fresh_result.final_metrics["test_accuracy"][:, 0],
        }
    )
    return result.to_frame(), row, curves, timing._replace(run_s=run_s), tuning, per_seed


def run_networks(
    profile: str,
    *,
    dtype: str,
    repeats: int,
    rates,
    devices=None,
    progress=None,
    optimizers=None,
    points=None,
    networks=None,
) -> NetworkTables:
    """Every network cell of ``profile``: tuned, reported on fresh seeds (see the module docstring).

    ``rates``: the floor's measured rates (``baselines.FloorRates``), for the timing rows.
    ``optimizers`` and ``points``: see ``network_cells``; ``networks`` (names in NETWORKS) replaces
    the profile's problems.
    """
    problems = {name: NETWORKS[name]() for name in networks or PROFILE_NETWORKS[profile]}
    convergence, summary, curves, timing, fresh = [], [], [], [], []
    for cell in network_cells(profile, problems, optimizers, points):
        if progress is not None:
            progress(f"{cell.problem} {cell.optimizer}")
        problem = problems[cell.problem]
        frame, row, curve, cell_timing, program, per_seed = run_cell(
            cell, problem, dtype=dtype, repeats=repeats, devices=devices
        )
        fresh.append(per_seed)
        convergence.append(frame)
        summary.append(row)
        curves.append(curve)
        loop_steps = PYTHON_LOOP_TIMED_STEPS if cell.batch_size else FULL_BATCH_LOOP_STEPS
        timing += sweep_and_loop_rows(
            cell.problem,
            cell.optimizer,
            problem,
            program,
            cell_timing,
            rates=rates,
            loop_steps=loop_steps,
            repeats=LOOP_REPEATS,
            textbook_ns=np.nan,
        )
    return NetworkTables(
        pd.concat(convergence, ignore_index=True),
        pd.DataFrame(summary),
        pd.concat(curves, ignore_index=True),
        pd.DataFrame(timing),
        pd.concat(fresh, ignore_index=True),
    )
