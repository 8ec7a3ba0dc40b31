"""What the harness runs: problems x optimizers x learning-rate grids x seeds, and each problem's target."""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

import gdjax

PROBLEMS = {"linear_regression": gdjax.linear_regression, "xor": gdjax.xor, "rosenbrock": gdjax.rosenbrock}
TEXTBOOK_STEPS = {"linear_regression": 100_000, "xor": 60_000, "rosenbrock": 20_000}
QUICK_STEPS = {"linear_regression": 3_000, "xor": 3_000, "rosenbrock": 3_000}
# Every run also records where the classic stopping rule (parameter change
# below this; the tutorial's default) would have stopped it.
STOP_TOLERANCE = 1e-6

# Log-spaced learning-rate ranges, wide enough to show where each optimizer
# diverges (or, for Adam, whose steps are bounded by the rate, where it stops
# settling). The textbook regression's GD limit is 2 / lambda_max ~ 6.1e-4;
# heavy-ball momentum 0.9 moves it up 3.8x; SGD on single examples with
# x up to 99 is stable only below ~2e-4.
LEARNING_RATE_RANGES = {
    ("linear_regression", "gd"): (1e-6, 1e-2),
    ("linear_regression", "sgd"): (1e-7, 1e-3),
    ("linear_regression", "momentum"): (1e-7, 1e-2),
    ("linear_regression", "adam"): (1e-3, 1e2),
    ("xor", "gd"): (1e-2, 1e3),
    ("xor", "sgd"): (1e-2, 1e3),
    ("xor", "momentum"): (1e-3, 1e2),
    ("xor", "adam"): (1e-4, 1e1),
    # Rosenbrock has no data, so "sgd" is plain GD there (a baseline for the noise-free case).
    ("rosenbrock", "gd"): (1e-5, 1e-2),
    ("rosenbrock", "sgd"): (1e-5, 1e-2),
    ("rosenbrock", "momentum"): (1e-6, 1e-2),
    ("rosenbrock", "adam"): (1e-4, 1e0),
}
# The optimizers of the default suite (any registered name or optax:NAME can be asked for).
SUITE_OPTIMIZERS = ("gd", "sgd", "momentum", "adam")
N_LEARNING_RATES = {"default": 32, "quick": 8}
SEEDS = {"default": (0, 1, 2, 3, 4), "quick": (0, 1)}
LOG_EVERY = 100

# XOR is reached when its loss is at most this: any output on the wrong side
# of 0.5 alone adds 0.5 * 0.5**2 = 0.125, so it implies all four are right.
XOR_TARGET_LOSS = 0.01
# Regression is reached within this factor of the least-squares optimum's cost.
REGRESSION_TARGET_FACTOR = 1.01
# Rosenbrock's minimum is 0 at (1, 1); near it the loss is about 0.2 d**2 along
# the valley (Hessian eigenvalue 0.4), so this loss means within about 7e-5 of (1, 1).
ROSENBROCK_TARGET_LOSS = 1e-9


class Cell(NamedTuple):
    """One compiled sweep of the suite: a problem, an optimizer and its grid."""

    problem: str
    optimizer: str
    learning_rates: np.ndarray
    seeds: tuple[int, ...]
    steps: int
    log_every: int


def build_suite(problems, optimizers, *, quick=False, learning_rates=None, seeds=None, steps=None):
    """The cells to run, problems outer, optimizers inner, each with its grid.

    ``learning_rates``, ``seeds`` and ``steps``, when given, replace the
    profile's for every cell.
    """
    profile = "quick" if quick else "default"
    cells = []
    for problem in problems:
        n_steps = steps or (QUICK_STEPS if quick else TEXTBOOK_STEPS)[problem]
        for optimizer in optimizers:
            if learning_rates is None:
                if (problem, optimizer) not in LEARNING_RATE_RANGES:
                    raise ValueError(
                        f"no default learning rates for {optimizer} on {problem}; give them (--lrs)"
                    )
                low, high = LEARNING_RATE_RANGES[problem, optimizer]
                rates = np.geomspace(low, high, N_LEARNING_RATES[profile])
            else:
                rates = np.asarray(learning_rates, dtype=np.float64)
            cells.append(
                Cell(
                    problem,
                    optimizer,
                    rates,
                    tuple(seeds or SEEDS[profile]),
                    n_steps,
                    min(LOG_EVERY, n_steps),
                )
            )
    return cells


def least_squares(problem: gdjax.Problem):
    """The exact least-squares solution and its cost (numpy, float64)."""
    theta = np.linalg.lstsq(problem.X, problem.y, rcond=None)[0]
    residual = problem.X @ theta - problem.y
    return theta, float(residual @ residual / (2 * problem.n_examples))


def target_loss(problem: gdjax.Problem) -> float:
    """The loss a run must reach to count as done (see the constants above)."""
    if problem.name == "linear_regression":
        return REGRESSION_TARGET_FACTOR * least_squares(problem)[1]
    if problem.name == "xor":
        return XOR_TARGET_LOSS
    if problem.name == "rosenbrock":
        return ROSENBROCK_TARGET_LOSS
    raise ValueError(f"no target for problem {problem.name!r}")


def optimum(problem: gdjax.Problem) -> np.ndarray | None:
    """The parameters at the problem's known minimum, or None where none is known (XOR)."""
    if problem.name == "linear_regression":
        return least_squares(problem)[0]
    if problem.name == "rosenbrock":
        return np.ones(2)
    return None


def stability_limit(problem: gdjax.Problem) -> float:
    """Plain GD's predicted stability limit ``2 / lambda_max(X.T X / m)`` for least squares."""
    return 2 / np.linalg.eigvalsh(problem.X.T @ problem.X / problem.n_examples).max()
