"""Convergence metrics of a sweep, and the per-optimizer summary at its best point.

Steps to target are the start of a run's final stay at or below the
problem's target (``SweepResult.at_target_from``): a run that touches the
target once and leaves it has not reached it. Exact for full-batch runs (the
loss is watched every step), at the logging interval for minibatch runs
(``target_resolution``). The work it took: one gradient evaluation a step,
of ``batch_size`` examples (all of them for full batch).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

import gdjax
from gdjax.step import watched_every_step

# A run has settled when it ends within this factor of the best loss it saw;
# Adam on the regression does not (its steps stay about lr in size), and
# its final loss then depends on rounding.
SETTLED_FACTOR = 1 + 1e-3


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
    """One row per run: losses, steps to target and the work they took, divergence, distance to the optimum.

    ``hyperparameters`` holds the point's other swept values (``point_text``);
    a point is (``learning_rate``, ``hyperparameters``).
    """
    known = problem.facts.optimum
    if known is not None:
        with np.errstate(over="ignore"):  # a blown-up run is infinitely far, which is what it is
            distance = np.linalg.norm(result.params - known, axis=-1)
    else:
        distance = np.full(result.final_loss.shape, np.nan)
    settled = np.isfinite(result.final_loss) & (result.final_loss <= result.best_loss * SETTLED_FACTOR)
    steps = result.at_target_from.astype(np.int64)  # x examples a step: past int32 on large data
    every_step = (
        watched_every_step(result.batch_size, problem.n_examples, problem.loss_takes_key)
        and not result.evaluation_point
    )
    examples_a_step = result.batch_size or problem.n_examples
    examples = np.where(steps >= 0, steps * examples_a_step, -1)
    frame = result.to_frame(
        hyperparameters=_hyperparameters(result),
        target_loss=np.full(steps.shape, problem.facts.target_loss),
        target_resolution=np.full(steps.shape, 1 if every_step else result.log_every),
        examples_to_target=examples,
        epochs_to_target=np.where(steps >= 0, examples / problem.n_examples, np.nan),
        param_distance=distance,
        settled=settled,
    )
    return frame.rename(columns={"at_target_from": "steps_to_target"})


POINT = ["learning_rate", "hyperparameters"]


def _never_as_inf(steps):
    return np.where(np.asarray(steps) >= 0, steps, np.inf)


def reached(runs: pd.DataFrame) -> pd.Series:
    """Runs that stayed at the target to the end and never diverged (one that came back does not count)."""
    return (runs["steps_to_target"] >= 0) & (runs["diverged_at"] < 0)


def final_or_inf(runs: pd.DataFrame) -> np.ndarray:
    """Final losses, a diverged or non-finite run's as infinite: what medians of final loss are taken over."""
    keep = (runs["diverged_at"] < 0) & np.isfinite(runs["final_loss"])
    return np.where(keep, runs["final_loss"], np.inf)


def median_steps(steps) -> np.ndarray:
    """Median over seeds (axis 0), a seed that never reached (-1) counting as never: inf when half did not."""
    return np.median(_never_as_inf(steps), axis=0)


def point_ranking(convergence: pd.DataFrame) -> pd.DataFrame:
    """Per point of one grid, over its seeds: the fraction that reached the target, median steps, median loss.

    A seed that never reached the target counts as never (infinite steps);
    a diverged one as an infinite final loss. Sorted best first: the most
    seeds at the target, then the fewest median steps, then the lowest
    median final loss (what decides where no point reached the target).
    """
    runs = convergence.assign(
        reached=reached(convergence),
        steps=np.where(reached(convergence), convergence["steps_to_target"], np.inf),
        final=final_or_inf(convergence),
    )
    if "hyperparameters" not in runs:
        runs = runs.assign(hyperparameters="")
    by_point = runs.groupby(POINT).agg(
        reached=("reached", "mean"), steps=("steps", "median"), final=("final", "median")
    )
    return by_point.sort_values(["reached", "steps", "final"], ascending=[False, True, True], kind="stable")


def best_point(convergence: pd.DataFrame) -> tuple[float, str]:
    """(learning rate, other hyperparameters) of the point of one grid that did best over its seeds.

    See ``point_ranking``: a run counts as at the target only if it stayed
    there to the end, so a run that oscillates through the target does not win.
    """
    rate, others = point_ranking(convergence).index[0]
    return float(rate), others


def best_point_values(row) -> dict[str, float]:
    """A summary row's best point as ``{name: value}`` (the learning rate first): ``sweep(points=...)``."""
    return {"learning_rate": float(row["best_learning_rate"]), **parse_point(row["best_hyperparameters"])}


def on_edge(convergence: pd.DataFrame, rate: float, others: str) -> bool:
    """Whether the point lies at the low or high end of any axis of its grid with more than one value.

    A best point on an edge says only that the grid was too small.
    """
    axes = {"learning_rate": convergence["learning_rate"].unique()}
    texts = convergence["hyperparameters"].unique() if "hyperparameters" in convergence else [""]
    points = [parse_point(text) for text in texts]
    for name in parse_point(others):
        axes[name] = np.unique([point[name] for point in points])
    value_of = {"learning_rate": rate, **parse_point(others)}
    return any(
        len(values) > 1 and value_of[name] in (values.min(), values.max()) for name, values in axes.items()
    )


def median_interval(values, confidence: float = 0.95) -> tuple[float, float, float]:
    """The median and its distribution-free interval from order statistics (NaN bounds below 6 values).

    The interval ``[x_(k), x_(n+1-k)]`` covers the population median with
    probability ``1 - 2 P(Binomial(n, 1/2) < k)``, at least ``confidence``,
    whatever the distribution: right for skewed, positive quantities, and
    for steps to target where some seeds never reach it (infinite values
    are ranked last). At n = 10 it is ``[x_(2), x_(9)]``, coverage 97.9%.
    """
    from scipy import stats

    values = np.sort(np.asarray(values, dtype=np.float64))
    n = len(values)
    if n == 0:
        return (np.nan,) * 3
    median = float(np.median(values))  # inf where half or more are inf
    # the largest k with P(B < k) = P(B <= k - 1) <= (1 - confidence) / 2
    k = int(np.sum(stats.binom.cdf(np.arange(n), n, 0.5) <= (1 - confidence) / 2))
    if k == 0:
        return median, np.nan, np.nan
    return median, float(values[k - 1]), float(values[n - k])


def summarize(convergence: pd.DataFrame, problem: gdjax.Problem) -> dict:
    """The row of the summary table for one (problem, optimizer) grid, on its tuning seeds."""
    ranking = point_ranking(convergence)
    rate, others = best_point(convergence)
    at_best = convergence[(convergence["learning_rate"] == rate) & (convergence["hyperparameters"] == others)]
    stayed = reached(at_best)
    finite_everywhere = (
        convergence[convergence["hyperparameters"] == others]
        .groupby("learning_rate")["diverged_at"]
        .apply(lambda d: bool((d < 0).all()))
    )
    finite_rates = finite_everywhere[finite_everywhere].index
    optimizer = convergence["optimizer"].iloc[0]
    curvature = problem.facts.curvature
    steps = float(np.median(np.where(stayed, at_best["steps_to_target"], np.inf)))
    examples_a_step = int(at_best["batch_size"].iloc[0]) or problem.n_examples
    return {
        "problem": problem.name,
        "optimizer": optimizer,
        "schedule": convergence["schedule"].iloc[0],
        "best_learning_rate": rate,
        "best_hyperparameters": others,
        "best_on_edge": on_edge(convergence, rate, others),
        # where no point reached the target, the best is the lowest median final loss
        "best_by": "steps_to_target" if ranking["reached"].iloc[0] > 0 else "final_loss",
        "tuning_points": len(ranking),
        "n_seeds": len(at_best),
        "seeds_matter": gdjax.seeds_matter(problem, optimizer, int(at_best["batch_size"].iloc[0]) or None),
        "reached_fraction": float(stayed.mean()),
        "steps_to_target_median": steps,
        "first_at_target_median": float(np.median(_never_as_inf(at_best["first_at_target"]))),
        "target_resolution": int(at_best["target_resolution"].iloc[0]),
        "examples_to_target_median": steps * examples_a_step,
        "epochs_to_target_median": steps * examples_a_step / problem.n_examples,
        "final_loss_median": float(np.median(final_or_inf(at_best))),
        "best_loss_median": float(np.median(at_best["best_loss"])),
        "diverged_runs": int((convergence["diverged_at"] >= 0).sum()),
        "largest_finite_learning_rate": float(finite_rates.max()) if len(finite_rates) else np.nan,
        "predicted_stability_limit": 2 / curvature[0] if curvature and optimizer == "gd" else np.nan,
    }


def point_column(result: gdjax.SweepResult, learning_rate: float, others: str = "") -> int:
    """The index of the point (learning rate, other hyperparameters as ``point_text``) in ``result``."""
    at = (result.learning_rates == learning_rate) & (_hyperparameters(result)[0] == others)
    return int(np.flatnonzero(at)[0])


def mean_curve(result: gdjax.SweepResult, learning_rate: float, others: str = "") -> pd.DataFrame:
    """Loss against step at one point (learning rate, other hyperparameters): mean, min and max over seeds."""
    curves = result.loss_curve[:, point_column(result, learning_rate, others), :]
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
