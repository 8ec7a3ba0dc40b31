"""How the condition number slows each optimizer: steps to reach the minimum of gdjax.quadratic(k).

For each condition number and optimizer, one sweep over a log-spaced grid
of learning rates; the table keeps the rate that reached the quadratic's
target (``gdjax.problems.QUADRATIC_TARGET_FRACTION`` of the starting loss)
and stayed there in the fewest steps (exact: a full-batch run watches its
loss every step). The runs start at START, not on the diagonal: from (1, 1)
Adam's first step (about ``-lr sign(g)``) at a grid rate of exactly 1 lands
on the minimum, a one-step "solution" of no meaning. Plain GD needs about k
times more steps; momentum and Adam much less (docs/results.md).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

import gdjax

CONDITION_NUMBERS = {"default": (1, 10, 100, 1_000, 10_000), "quick": (1, 10, 100)}
CONDITIONING_STEPS = {"default": 6_000, "quick": 3_000}  # the slowest count reached: 5,713 (adam, k = 1e4)
CONDITIONING_RATES = {"gd": (1e-5, 2.0), "momentum": (1e-6, 2.0), "adam": (1e-4, 1.0)}
N_CONDITIONING_RATES = {"default": 64, "quick": 16}
START = (1.0, 0.3)


def conditioning_table(profile: str, *, dtype: str, devices=None) -> pd.DataFrame:
    """One row per (condition number, optimizer): the best rate and its steps to the target (-1: none)."""
    rows = []
    steps = CONDITIONING_STEPS[profile]
    for condition_number in CONDITION_NUMBERS[profile]:
        problem = gdjax.quadratic(condition_number, x0=START)
        for optimizer, (low, high) in CONDITIONING_RATES.items():
            rates = np.geomspace(low, high, N_CONDITIONING_RATES[profile])
            res = gdjax.sweep(problem, optimizer, rates, steps, dtype=dtype, devices=devices)
            stay = np.where(res.at_target_from[0] >= 0, res.at_target_from[0], np.inf)
            best = int(stay.argmin())
            found = bool(np.isfinite(stay[best]))
            rows.append(
                {
                    "condition_number": float(condition_number),
                    "optimizer": optimizer,
                    "best_learning_rate": rates[best] if found else np.nan,
                    "best_on_edge": bool(found and best in (0, len(rates) - 1)),
                    "steps_to_target": int(stay[best]) if found else -1,
                    "steps": steps,
                }
            )
    return pd.DataFrame(rows)
