"""The classic lessons, rerun for their pictures: paths at the best rates, and GD's cost at three rates.

After the suite, each optimizer's best learning rate is rerun on seed 0
with its parameters logged (two-parameter problems only: their paths can be
drawn on the loss contours), and plain GD on the regression is rerun at a
rate too small, the textbook's and one past the stability limit, logging
its cost every step (the lesson "track the cost to tune the learning rate").
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import numpy as np
import pandas as pd

import gdjax
from bench.suites import resolve_problem
from gdjax.problems import TEXTBOOK_RATE

# Points a drawn path or cost curve keeps at most (log_every = steps // this).
POINTS_PER_LINE = 2_000
# Plain GD on the regression: rates as fractions of its stability limit 2 / lambda_max.
COST_LESSON_RATES = {"too small": 0.05, "the textbook's 5e-4": None, "too large": 1.05}


class Lessons(NamedTuple):
    """Sweeps rerun for the pictures (seed 0)."""

    paths: dict  # (problem, optimizer) -> SweepResult at the best rate, params logged
    cost: gdjax.SweepResult | None  # GD on the regression at COST_LESSON_RATES
    problems: dict  # name -> Problem
    optima: dict  # name -> parameters at the known minimum


def _log_every(steps: int) -> int:
    return max(1, steps // POINTS_PER_LINE)


def two_parameter(problem: gdjax.Problem) -> bool:
    return sum(np.size(leaf) for leaf in jax.tree.leaves(problem.init(0))) == 2


def run_lessons(summary: pd.DataFrame, steps: dict, *, dtype: str, devices=None, problems=None) -> Lessons:
    """Rerun what the pictures need. ``summary`` is the suite's, ``steps`` its steps per problem.

    ``problems`` maps names to problems, as for ``bench.runner.run_suite``.
    """
    names = summary["problem"].unique()
    problems = {name: (problems or {}).get(name) or resolve_problem(name) for name in names}
    drawn = {name for name, problem in problems.items() if two_parameter(problem)}
    paths = {}
    for row in summary[summary["problem"].isin(drawn)].itertuples():
        n_steps = steps[row.problem]
        paths[row.problem, row.optimizer] = gdjax.sweep(
            problems[row.problem],
            row.optimizer,
            [row.best_learning_rate],
            n_steps,
            log_every=_log_every(n_steps),
            dtype=dtype,
            log_params=True,
            devices=devices,
        )
    cost = None
    if "linear_regression" in problems:
        problem = problems["linear_regression"]
        limit = 2 / problem.facts.curvature[0]  # plain GD's stability limit
        rates = [TEXTBOOK_RATE if share is None else share * limit for share in COST_LESSON_RATES.values()]
        n_steps = steps["linear_regression"]
        # every step: the diverging rate leaves the picture within a few hundred steps
        cost = gdjax.sweep(problem, "gd", rates, n_steps, log_every=1, dtype=dtype)
    optima = {name: problem.facts.optimum for name, problem in problems.items() if name in drawn}
    return Lessons(paths, cost, problems, optima)


def fitted_line(theta) -> str:
    """``y = a + b x`` of parameters (bias, slope)."""
    bias, slope = (float(value) for value in theta)
    return f"y = {bias:.4g} {'-' if slope < 0 else '+'} {abs(slope):.4g} x"
