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


def point_text(values: dict) -> str:
    """A point's swept hyperparameters other than the learning rate as text: ``momentum=0.9;b1=0.8``.

    Each value is written as Python's ``repr`` of the float, which reads back
    exactly: the best point is rerun with the very values of the grid.
    """
    return ";".join(f"{name}={float(value)!r}" for name, value in values.items())


def parse_point(text: str) -> dict[str, float]:
    """The hyperparameters of ``point_text``'s text (empty for a one-axis sweep)."""
    return {name: float(value) for name, value in (item.split("=") for item in text.split(";") if item)}


def _hyperparameters(result: gdjax.SweepResult) -> np.ndarray:
    """(n_seeds, n_points) text of each run's swept hyperparameters other than the learning rate."""
    others = {name: values for name, values in result.grid.items() if name != "learning_rate"}
    texts = [
        point_text({name: values[i] for name, values in others.items()})
        for i in range(result.final_loss.shape[1])
    ]
    return np.broadcast_to(np.array(texts, dtype=object), result.final_loss.shape)


def convergence_frame(result: gdjax.SweepResult, problem: gdjax.Problem) -> pd.DataFrame:
    """One row per run: losses, steps to target, divergence, distance to the optimum, settled.

    ``hyperparameters`` holds the point's other swept values (``point_text``);
    a point is (``learning_rate``, ``hyperparameters``).
    """
    known = optimum(problem)
    if known is not None:
        with np.errstate(over="ignore"):  # a blown-up run is infinitely far, which is what it is
            distance = np.linalg.norm(result.params - known, axis=-1)
    else:
        distance = np.full(result.final_loss.shape, np.nan)
    settled = np.isfinite(result.final_loss) & (result.final_loss <= result.best_loss * SETTLED_FACTOR)
    target = target_loss(problem)
    return result.to_frame(
        hyperparameters=_hyperparameters(result),
        target_loss=np.full(result.final_loss.shape, target),
        steps_to_target=steps_to_target(result, target),
        param_distance=distance,
        settled=settled,
    )


POINT = ["learning_rate", "hyperparameters"]


def best_point(convergence: pd.DataFrame) -> tuple[float, str]:
    """(learning rate, other hyperparameters) of the point of one grid that did best over its seeds.

    Ranked by the fraction of seeds that ended at the target (more is
    better), then the mean steps to target of those, then the mean final
    loss (a diverged seed counts as infinite). Ending at the target, not
    touching it once, keeps a noisy run (SGD) from winning by chance.
    """
    ended = convergence.assign(ended=convergence["final_loss"] <= convergence["target_loss"])
    if "hyperparameters" not in ended:
        ended = ended.assign(hyperparameters="")
    by_rate = ended.groupby(POINT).apply(
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
    rate, others = ranked.index[0]
    return float(rate), others


def best_point_values(row) -> dict[str, float]:
    """A summary row's best point as ``{name: value}`` (the learning rate first): ``sweep(points=...)``."""
    return {"learning_rate": float(row["best_learning_rate"]), **parse_point(row["best_hyperparameters"])}


def best_learning_rate(convergence: pd.DataFrame) -> float:
    """The learning rate of ``best_point``."""
    return best_point(convergence)[0]


def summarize(convergence: pd.DataFrame, problem: gdjax.Problem) -> dict:
    """The row of the summary table for one (problem, optimizer) grid."""
    rate, others = best_point(convergence)
    at_best = convergence[(convergence["learning_rate"] == rate) & (convergence["hyperparameters"] == others)]
    ended = at_best["final_loss"] <= at_best["target_loss"]
    reached = at_best["steps_to_target"][ended]
    finite_everywhere = (
        convergence[convergence["hyperparameters"] == others]
        .groupby("learning_rate")["diverged_at"]
        .apply(lambda d: bool((d < 0).all()))
    )
    finite_rates = finite_everywhere[finite_everywhere].index
    optimizer = convergence["optimizer"].iloc[0]
    gd_on_least_squares = known_objective(problem) == "least_squares" and optimizer == "gd"
    limit = stability_limit(problem) if gd_on_least_squares else np.nan
    return {
        "problem": problem.name,
        "optimizer": optimizer,
        "schedule": convergence["schedule"].iloc[0],
        "best_learning_rate": rate,
        "best_hyperparameters": others,
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


def mean_curve(result: gdjax.SweepResult, learning_rate: float, others: str = "") -> pd.DataFrame:
    """Loss against step at one point (learning rate, other hyperparameters): mean, min and max over seeds."""
    at = (result.learning_rates == learning_rate) & (_hyperparameters(result)[0] == others)
    column = int(np.flatnonzero(at)[0])
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
