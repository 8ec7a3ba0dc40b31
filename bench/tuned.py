"""The tuned comparison (the DeepOBS practice): each optimizer's best point, rerun on fresh seeds.

The suite's grid picks each optimizer's best point on its tuning seeds
(``bench.metrics.best_point``); that point is then rerun on FRESH_SEEDS,
seeds the tuning never saw (the same seeds for every optimizer, so
comparisons are paired). Where seeds change nothing (``gdjax.seeds_matter``:
a fixed start, full batch, no noise) the harness hands over the tuning run
at the best point (a fresh seed would run the same numbers), reported as
n = 1 with no interval. Otherwise the table reports the fraction of fresh seeds
that reached the target (stayed at or below it to the end), and medians
with their distribution-free order-statistic intervals
(``bench.metrics.median_interval``) of the steps to target (a seed that
never reached it counts as never: infinite) and of the final loss: both are
positive and skewed, where a Student-t interval of the mean can go below
zero. Tuneability, from the grid: the contiguous range of rates around the
best whose result is within TUNEABILITY_FACTOR of the best's (steps to
target where every seed reached it, else median final loss), and its width
in decades (NaN where the best point shares its other hyperparameters with no
other rate: random points drawn over several of them).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

import gdjax
from bench.metrics import best_point_values, convergence_frame, final_or_inf, median_interval, reached

# Disjoint from every profile's tuning seeds (0..4).
FRESH_SEEDS = tuple(range(1000, 1010))
TUNEABILITY_FACTOR = 2.0


def fresh_seeds(summary_row) -> tuple[int, ...]:
    """The fresh seeds a summary row's best point is rerun on: one where its seeds change nothing."""
    return FRESH_SEEDS if summary_row["seeds_matter"] else FRESH_SEEDS[:1]


def tuneable_range(convergence: pd.DataFrame, best_rate: float, minimum: float) -> tuple[float, float]:
    """The contiguous rates around ``best_rate`` (one problem and optimizer's grid) within the factor.

    Without the target at the best rate, final losses are compared by their
    excess over the problem's ``minimum`` loss (0 where it is unknown).
    """
    by_rate = convergence.groupby("learning_rate")
    reached_all = by_rate.apply(lambda runs: bool(reached(runs).all()))
    if reached_all[best_rate]:
        steps = by_rate["steps_to_target"].median()
        good = reached_all & (steps <= TUNEABILITY_FACTOR * steps[best_rate])
    else:  # not every seed reached the target at the best rate: compare final losses
        final = by_rate["final_loss"].apply(lambda loss: np.median(np.where(np.isfinite(loss), loss, np.inf)))
        excess = final - (0.0 if np.isnan(minimum) else minimum)
        if not np.isfinite(excess[best_rate]):  # every seed diverged even at the best rate
            return best_rate, best_rate
        good = excess <= TUNEABILITY_FACTOR * excess[best_rate]
    rates = good.index.to_numpy()
    at = int(np.flatnonzero(rates == best_rate)[0])
    low = high = at
    while low > 0 and good.iloc[low - 1]:
        low -= 1
    while high < len(rates) - 1 and good.iloc[high + 1]:
        high += 1
    return float(rates[low]), float(rates[high])


def tuned_table(
    summary: pd.DataFrame,
    convergence: pd.DataFrame,
    cells,
    problems: dict,
    *,
    dtype: str,
    devices=None,
    reruns: dict | None = None,
    ns_per_run_step: dict | None = None,
    per_seed: list | None = None,
) -> pd.DataFrame:
    """One row per (problem, optimizer) of ``summary``: its best point rerun on ``fresh_seeds``.

    ``reruns``: (problem, optimizer) -> the SweepResult of that rerun where
    it was already run (the harness runs it with the grid's compiled program).
    ``ns_per_run_step``: (problem, optimizer) -> the cell's measured time per
    run-step, for ``seconds_to_target_median`` (a grid's runs advance
    together: no run has a wall time of its own); NaN where not given.
    ``per_seed``, where given, receives each best point's fresh runs
    (``convergence_frame`` rows): what paired comparisons are made of.
    """
    cell_of = {(cell.problem, cell.optimizer): cell for cell in cells}
    reruns = reruns or {}
    rows = []
    for row in summary.itertuples():
        cell = cell_of[row.problem, row.optimizer]
        problem = problems[row.problem]
        result = reruns.get((row.problem, row.optimizer)) or gdjax.sweep(
            problem,
            row.optimizer,
            steps=cell.steps,
            points=[best_point_values(row._asdict())],
            schedule=cell.schedule,
            seeds=fresh_seeds(row._asdict()),
            log_every=cell.log_every,
            dtype=dtype,
            devices=devices,
        )
        examples_a_step = result.batch_size or problem.n_examples
        fresh = convergence_frame(result, problem).assign(
            problem=row.problem, optimizer=row.optimizer, examples_a_step=examples_a_step
        )
        if per_seed is not None:
            per_seed.append(fresh)
        stayed = reached(fresh)
        diverged = fresh["diverged_at"] >= 0
        loss = median_interval(final_or_inf(fresh))
        steps = median_interval(np.where(stayed, fresh["steps_to_target"], np.inf))
        grid = convergence[  # the rates at the best point's other hyperparameters
            (convergence["problem"] == row.problem)
            & (convergence["optimizer"] == row.optimizer)
            & (convergence["hyperparameters"] == row.best_hyperparameters)
        ]
        low, high = (  # drawn points (bench.submit) have no rates beside the best at its other values
            tuneable_range(grid, row.best_learning_rate, problem.facts.minimum_loss)
            if grid["learning_rate"].nunique() > 1
            else (np.nan, np.nan)
        )
        rows.append(
            {
                "problem": row.problem,
                "optimizer": row.optimizer,
                "learning_rate": row.best_learning_rate,
                "hyperparameters": row.best_hyperparameters,
                "schedule": row.schedule,
                "best_on_edge": row.best_on_edge,
                "best_by": row.best_by,
                "tuning_points": row.tuning_points,
                "tuning_seeds": row.n_seeds,
                "seeds_matter": row.seeds_matter,
                "n_seeds": len(fresh),
                "reached_fraction": float(stayed.mean()),
                "diverged_seeds": int(diverged.sum()),
                "steps_to_target_median": steps[0],
                "steps_to_target_ci_low": steps[1],
                "steps_to_target_ci_high": steps[2],
                "target_resolution": int(fresh["target_resolution"].iloc[0]),
                "examples_to_target_median": steps[0] * examples_a_step,
                "epochs_to_target_median": steps[0] * examples_a_step / problem.n_examples,
                "seconds_to_target_median": steps[0]
                * (ns_per_run_step or {}).get((row.problem, row.optimizer), np.nan)
                * 1e-9,
                "final_loss_median": loss[0],
                "final_loss_ci_low": loss[1],
                "final_loss_ci_high": loss[2],
                "tuneable_lr_low": low,
                "tuneable_lr_high": high,
                "tuneability_decades": float(np.log10(high / low)),
            }
        )
    return pd.DataFrame(rows)
