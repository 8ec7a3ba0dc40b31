"""The tuned comparison (the DeepOBS practice): each optimizer's best rate, rerun on fresh seeds.

The suite's grid picks each optimizer's best learning rate on its tuning
seeds (``bench.metrics.best_learning_rate``); that rate is then rerun on
FRESH_SEEDS, seeds the tuning never saw, and the table reports the mean,
standard deviation and a 95% confidence interval (Student's t) of the final
loss and of the steps to target, and the fraction of fresh seeds that ended
at the target (for XOR: that solved it). Tuneability, from the grid: the
contiguous range of rates around the best whose result is within
TUNEABILITY_FACTOR of the best's (steps to target where every seed reached
it, else mean final loss), and its width in decades.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy import stats

import gdjax
from bench.metrics import best_point_values, convergence_frame
from bench.suites import minimum_loss

# Disjoint from every profile's tuning seeds (0..4).
FRESH_SEEDS = tuple(range(1000, 1010))
TUNEABILITY_FACTOR = 2.0
CONFIDENCE = 0.95


def mean_std_interval(values) -> tuple[float, float, float, float]:
    """Mean, standard deviation (ddof 1) and the 95% Student-t interval of the mean; NaN where undefined."""
    values = np.asarray(values, dtype=np.float64)
    if len(values) == 0:
        return (np.nan,) * 4
    mean = float(values.mean())
    if len(values) == 1:
        return mean, np.nan, np.nan, np.nan
    std = float(values.std(ddof=1))
    half = float(stats.t.ppf(0.5 + CONFIDENCE / 2, len(values) - 1)) * std / np.sqrt(len(values))
    return mean, std, mean - half, mean + half


def tuneable_range(convergence: pd.DataFrame, best_rate: float, minimum: float) -> tuple[float, float]:
    """The contiguous rates around ``best_rate`` (one problem and optimizer's grid) within the factor.

    Without the target at the best rate, final losses are compared by their
    excess over the problem's ``minimum`` loss (0 where it is unknown).
    """
    by_rate = convergence.groupby("learning_rate")
    reached_all = by_rate.apply(lambda runs: bool((runs["final_loss"] <= runs["target_loss"]).all()))
    if reached_all[best_rate]:
        steps = by_rate["steps_to_target"].mean()
        good = reached_all & (steps <= TUNEABILITY_FACTOR * steps[best_rate])
    else:  # nothing reached the target at the best rate: compare final losses
        final = by_rate["final_loss"].apply(lambda loss: np.where(np.isfinite(loss), loss, np.inf).mean())
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
) -> pd.DataFrame:
    """One row per (problem, optimizer) of ``summary``: its best rate rerun on FRESH_SEEDS.

    ``reruns``: (problem, optimizer) -> the SweepResult of that rerun where
    it was already run (the harness runs it with the grid's compiled program).
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
            seeds=FRESH_SEEDS,
            log_every=cell.log_every,
            dtype=dtype,
            devices=devices,
        )
        fresh = convergence_frame(result, problem)
        finite = fresh[np.isfinite(fresh["final_loss"])]
        ended = fresh["final_loss"] <= fresh["target_loss"]
        loss = mean_std_interval(finite["final_loss"])
        steps = mean_std_interval(fresh.loc[ended, "steps_to_target"])
        grid = convergence[  # the rates at the best point's other hyperparameters
            (convergence["problem"] == row.problem)
            & (convergence["optimizer"] == row.optimizer)
            & (convergence["hyperparameters"] == row.best_hyperparameters)
        ]
        low, high = tuneable_range(grid, row.best_learning_rate, minimum_loss(problem))
        rows.append(
            {
                "problem": row.problem,
                "optimizer": row.optimizer,
                "learning_rate": row.best_learning_rate,
                "hyperparameters": row.best_hyperparameters,
                "n_seeds": len(fresh),
                "reached_fraction": float(ended.mean()),
                "diverged_seeds": int((fresh["diverged_at"] >= 0).sum()),
                "final_loss_mean": loss[0],
                "final_loss_std": loss[1],
                "final_loss_ci_low": loss[2],
                "final_loss_ci_high": loss[3],
                "steps_to_target_mean": steps[0],
                "steps_to_target_std": steps[1],
                "steps_to_target_ci_low": steps[2],
                "steps_to_target_ci_high": steps[3],
                "tuneable_lr_low": low,
                "tuneable_lr_high": high,
                "tuneability_decades": float(np.log10(high / low)),
            }
        )
    return pd.DataFrame(rows)
