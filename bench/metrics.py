"""Convergence metrics of a sweep, and the per-optimizer summary at its best learning rate."""

from __future__ import annotations

import numpy as np
import pandas as pd

import gdjax
from bench.suites import known_objective, optimum, stability_limit, target_loss

# A run has settled when it ends within this factor of the best loss it saw;
# Adam on the regression does not (its steps stay about lr in size), and
# its final loss then depends on rounding.
SETTLED_FACTOR = 1 + 1e-3


def steps_to_target(result: gdjax.SweepResult, target: float) -> np.ndarray:
    """(n_seeds, n_lrs) first logged step whose loss was <= target (or the end); -1 if none."""
    reached = result.loss_curve <= target
    first = np.where(reached.any(axis=-1), (reached.argmax(axis=-1) + 1) * result.log_every, -1)
    return np.where((first < 0) & (result.final_loss <= target), result.steps, first)


def convergence_frame(result: gdjax.SweepResult, problem: gdjax.Problem) -> pd.DataFrame:
    """One row per run: losses, steps to target, divergence, distance to the optimum, settled."""
    known = optimum(problem)
    if known is not None:
        with np.errstate(over="ignore"):  # a blown-up run is infinitely far, which is what it is
            distance = np.linalg.norm(result.params - known, axis=-1)
    else:
        distance = np.full(result.final_loss.shape, np.nan)
    settled = np.isfinite(result.final_loss) & (result.final_loss <= result.best_loss * SETTLED_FACTOR)
    target = target_loss(problem)
    return result.to_frame(
        target_loss=np.full(result.final_loss.shape, target),
        steps_to_target=steps_to_target(result, target),
        param_distance=distance,
        settled=settled,
    )


def best_learning_rate(convergence: pd.DataFrame) -> float:
    """The learning rate of one (problem, optimizer) grid that did best over its seeds.

    Ranked by the fraction of seeds that ended at the target (more is
    better), then the mean steps to target of those, then the mean final
    loss (a diverged seed counts as infinite). Ending at the target, not
    touching it once, keeps a noisy run (SGD) from winning by chance.
    """
    ended = convergence.assign(ended=convergence["final_loss"] <= convergence["target_loss"])
    by_rate = ended.groupby("learning_rate").apply(
        lambda runs: pd.Series(
            {
                "ended": runs["ended"].mean(),
                "steps": runs.loc[runs["ended"], "steps_to_target"].mean() if runs["ended"].any() else np.inf,
                "final": np.where(np.isfinite(runs["final_loss"]), runs["final_loss"], np.inf).mean(),
            }
        ),
        include_groups=False,
    )
    ranked = by_rate.sort_values(["ended", "steps", "final"], ascending=[False, True, True], kind="stable")
    return float(ranked.index[0])


def summarize(convergence: pd.DataFrame, problem: gdjax.Problem) -> dict:
    """The row of the summary table for one (problem, optimizer) grid."""
    rate = best_learning_rate(convergence)
    at_best = convergence[convergence["learning_rate"] == rate]
    ended = at_best["final_loss"] <= at_best["target_loss"]
    reached = at_best["steps_to_target"][ended]
    finite_everywhere = convergence.groupby("learning_rate")["diverged_at"].apply(
        lambda d: bool((d < 0).all())
    )
    finite_rates = finite_everywhere[finite_everywhere].index
    optimizer = convergence["optimizer"].iloc[0]
    gd_on_least_squares = known_objective(problem) == "least_squares" and optimizer == "gd"
    limit = stability_limit(problem) if gd_on_least_squares else np.nan
    return {
        "problem": problem.name,
        "optimizer": optimizer,
        "best_learning_rate": rate,
        "n_seeds": len(at_best),
        "reached_fraction": float(ended.mean()),
        "steps_to_target_mean": reached.mean() if len(reached) else np.nan,
        "steps_to_target_std": reached.std(ddof=0) if len(reached) else np.nan,
        "final_loss_mean": at_best["final_loss"].mean(),
        "final_loss_std": at_best["final_loss"].std(ddof=0),
        "best_loss_mean": at_best["best_loss"].mean(),
        "diverged_runs": int((convergence["diverged_at"] >= 0).sum()),
        "largest_finite_learning_rate": float(finite_rates.max()) if len(finite_rates) else np.nan,
        "predicted_stability_limit": limit,
    }


def mean_curve(result: gdjax.SweepResult, learning_rate: float) -> pd.DataFrame:
    """Loss against step at one learning rate: mean, min and max over seeds."""
    column = int(np.flatnonzero(result.learning_rates == learning_rate)[0])
    curves = result.loss_curve[:, column, :]
    return pd.DataFrame(
        {
            "problem": result.problem,
            "optimizer": result.optimizer,
            "learning_rate": learning_rate,
            "step": (np.arange(curves.shape[-1]) + 1) * result.log_every,
            "loss_mean": curves.mean(axis=0),
            "loss_min": curves.min(axis=0),
            "loss_max": curves.max(axis=0),
        }
    )
