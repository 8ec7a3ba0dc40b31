"""What the harness runs: problems x optimizers x learning-rate grids x seeds (targets: ``gdjax.Facts``)."""

from __future__ import annotations

import importlib
from typing import NamedTuple

import numpy as np

import gdjax

PROBLEMS = {
    "linear_regression": gdjax.linear_regression,
    # the same data with its feature standardised: how many fewer steps than the classic 100,000
    "linear_regression_standardized": lambda: gdjax.linear_regression(
        standardize=True, name="linear_regression_standardized"
    ),
    "xor": gdjax.xor,
    "rosenbrock": gdjax.rosenbrock,
    "logistic_regression": gdjax.logistic_regression,
}
# Built in too, asked for by name (--problems), not in the default suite.
MORE_PROBLEMS = {
    "logistic_regression_separable": lambda: gdjax.logistic_regression(separable=True),
}
KNOWN_PROBLEMS = {**PROBLEMS, **MORE_PROBLEMS}
TEXTBOOK_STEPS = {
    "linear_regression": 100_000,
    "linear_regression_standardized": 10_000,
    "xor": 60_000,
    "rosenbrock": 20_000,
    "logistic_regression": 5_000,
    "logistic_regression_separable": 5_000,
}
QUICK_STEPS = dict.fromkeys(KNOWN_PROBLEMS, 3_000)
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
    # Standardised, X.T X / m is the identity: GD's limit is 2; SGD's about 2 / max(1 + z**2) ~ 0.5.
    ("linear_regression_standardized", "gd"): (1e-4, 4.0),
    ("linear_regression_standardized", "sgd"): (1e-5, 1.0),
    ("linear_regression_standardized", "momentum"): (1e-5, 1.0),
    ("linear_regression_standardized", "adam"): (1e-3, 1e2),
    # The log-loss's curvature is at most 1/4 of X.T X / m's (~1 here): GD's limit is about 8.
    ("logistic_regression", "gd"): (1e-3, 3e1),
    ("logistic_regression", "sgd"): (1e-4, 1e1),
    ("logistic_regression", "momentum"): (1e-4, 1e1),
    ("logistic_regression", "adam"): (1e-4, 1e1),
    # Rosenbrock has no data, so "sgd" is plain GD there (a baseline for the noise-free case).
    ("rosenbrock", "gd"): (1e-5, 1e-2),
    ("rosenbrock", "sgd"): (1e-5, 1e-2),
    ("rosenbrock", "momentum"): (1e-6, 1e-2),
    ("rosenbrock", "adam"): (1e-4, 1e0),
}
# Separable, the same grid (the penalty keeps the minimum finite and the curvature alike).
LEARNING_RATE_RANGES.update(
    {
        ("logistic_regression_separable", optimizer): rates
        for (problem, optimizer), rates in LEARNING_RATE_RANGES.items()
        if problem == "logistic_regression"
    }
)
# The optimizers of the default suite (any registered name or optax:NAME can be asked for).
SUITE_OPTIMIZERS = ("gd", "sgd", "momentum", "adam")
N_LEARNING_RATES = {"default": 32, "quick": 8}
SEEDS = {"default": (0, 1, 2, 3, 4), "quick": (0, 1)}
LOG_EVERY = 100
# Problems solved in a few steps log more often (their curves; full-batch steps to target are exact anyway).
LOG_EVERY_OF = {
    "linear_regression_standardized": 1,
    "logistic_regression": 10,
    "logistic_regression_separable": 10,
}


class Cell(NamedTuple):
    """One compiled sweep of the suite: a problem, an optimizer and its grid."""

    problem: str
    optimizer: str
    learning_rates: np.ndarray
    seeds: tuple[int, ...]
    steps: int
    log_every: int
    grid: tuple[tuple[str, tuple[float, ...]], ...] = ()  # other hyperparameters' axes: (name, values)
    schedule: str = "constant"
    # drawn points instead of a grid (bench.submit's tuning): each ((name, value), ...), the rate first
    points: tuple[tuple[tuple[str, float], ...], ...] = ()

    def sweep_points(self) -> dict:
        """The keyword giving ``gdjax.sweep`` this cell's points: ``grid=`` or ``points=``."""
        if self.points:
            return {"points": [dict(point) for point in self.points]}
        return {"grid": {"learning_rate": self.learning_rates, **dict(self.grid)}}

    def n_points(self) -> int:
        return len(self.points) or len(self.learning_rates) * int(np.prod([len(v) for _, v in self.grid]))


def one_seed_where_deterministic(cell: Cell, deterministic: bool) -> Cell:
    """``cell`` run on its first seed only where its seeds change nothing (n = 1; ``gdjax.seeds_matter``).

    The runs saved are saved: the default run's 4-minute budget. Spending
    them on a 5x finer grid of rates instead cost 2.7 s a cell (11 s on four
    cells, 38 -> 49 s, measured), about 35 s on the default suite's 13.
    """
    return cell._replace(seeds=cell.seeds[:1]) if deterministic else cell


def build_suite(
    problems, optimizers, *, quick=False, learning_rates=None, seeds=None, steps=None, grid=None,
    schedule="constant", log_every=None,
):  # fmt: skip
    """The cells to run, problems outer, optimizers inner, each with its grid.

    ``learning_rates``, ``seeds``, ``steps`` and ``log_every``, when given, replace the
    profile's for every cell; a problem or optimizer without a default
    needs them (ValueError otherwise). ``grid`` ({name: values}, without the
    learning rate) adds axes to every cell's rates; ``schedule`` schedules them.
    """
    axes = tuple((name, tuple(float(v) for v in values)) for name, values in (grid or {}).items())
    profile = "quick" if quick else "default"
    cells = []
    for problem in problems:
        n_steps = steps or (QUICK_STEPS if quick else TEXTBOOK_STEPS).get(problem)
        if n_steps is None:
            raise ValueError(f"no default number of steps for {problem}; give it (--steps)")
        for optimizer in optimizers:
            if learning_rates is None:
                low, high = _rate_range(problem, optimizer)
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
                    min(log_every or LOG_EVERY_OF.get(problem, LOG_EVERY), n_steps),
                    axes,
                    schedule,
                )
            )
    return cells


def _rate_range(problem: str, optimizer: str) -> tuple[float, float]:
    """The suite's rates for an optimizer on a problem; for your own factory, its declared search space's."""
    if (problem, optimizer) in LEARNING_RATE_RANGES:
        return LEARNING_RATE_RANGES[problem, optimizer]
    own = optimizer not in gdjax.OPTIMIZERS and not optimizer.startswith("optax:")
    space = gdjax.optimizers.declarations(optimizer).search_space if own else None
    scale, low, high = (space or {}).get("learning_rate", (None, 0, 0))
    if scale != "log":
        raise ValueError(
            f"no default learning rates for {optimizer} on {problem}: give them (--lrs), or declare a search "
            "space with ('log', low, high) for learning_rate (SEARCH_SPACE)"
        )
    return low, high


def resolve_problem(name: str) -> gdjax.Problem:
    """A built-in problem by name, or ``module:function``: a function of no arguments returning a Problem."""
    if name in KNOWN_PROBLEMS:
        return KNOWN_PROBLEMS[name]()
    module_name, colon, function_name = name.partition(":")
    if not colon or not module_name or not function_name:
        raise ValueError(
            f"unknown problem {name!r}; allowed: {', '.join(KNOWN_PROBLEMS)}, or module:function"
        )
    try:
        module = importlib.import_module(module_name)
    except Exception as error:  # ImportError, or whatever the module raises as it loads
        raise ValueError(f"problem {name!r}: cannot import {module_name!r} ({error})") from None
    make = getattr(module, function_name, None)
    if not callable(make):
        raise ValueError(f"problem {name!r}: {module_name} has no function {function_name!r}")
    try:
        problem = make()
    except Exception as error:
        raise ValueError(
            f"problem {name!r}: {function_name}() failed: {type(error).__name__}: {error}"
        ) from None
    if not isinstance(problem, gdjax.Problem):
        shown = repr(problem)
        shown = f" {shown}" if len(shown) <= 40 else ""
        raise ValueError(
            f"problem {name!r}: {function_name}() must return a gdjax.Problem; got "
            f"{type(problem).__name__}{shown}. Allowed: a function of no arguments returning a "
            "gdjax.Problem, e.g. gdjax.function_problem(f, x0), gdjax.linear_regression(X, y) or "
            "gdjax.Problem(name, X, y, loss, init)"
        )
    return problem._replace(name=name)
