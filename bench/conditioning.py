"""How the condition number slows each optimizer: steps to reach the minimum of gdjax.quadratic(k).

For each condition number and optimizer, one sweep over a log-spaced grid
of learning rates, the loss logged every step; the table keeps the rate
that reached the target (TARGET_FRACTION of the starting loss) in the
fewest steps. Plain GD needs about k times more steps; momentum and Adam
much less (see README).
"""

from __future__ import annotations

import jax
import numpy as np
import pandas as pd

import gdjax

CONDITION_NUMBERS = {"default": (1, 10, 100, 1_000, 10_000), "quick": (1, 10, 100)}
CONDITIONING_STEPS = {"default": 6_000, "quick": 3_000}  # the slowest count reached: 5,006
CONDITIONING_RATES = {"gd": (1e-5, 2.0), "momentum": (1e-6, 2.0), "adam": (1e-4, 1.0)}
N_CONDITIONING_RATES = {"default": 64, "quick": 16}
TARGET_FRACTION = 1e-10


def conditioning_table(profile: str, *, dtype: str, devices=None) -> pd.DataFrame:
    """One row per (condition number, optimizer): the best rate and its steps to the target (-1: none)."""
    rows = []
    steps = CONDITIONING_STEPS[profile]
    for condition_number in CONDITION_NUMBERS[profile]:
        problem = gdjax.quadratic(condition_number)
        with jax.enable_x64(True):
            start_loss = float(problem.loss(jax.numpy.asarray(problem.init(0)), problem.X, problem.y))
        target = TARGET_FRACTION * start_loss
        for optimizer, (low, high) in CONDITIONING_RATES.items():
            rates = np.geomspace(low, high, N_CONDITIONING_RATES[profile])
            res = gdjax.sweep(problem, optimizer, rates, steps, log_every=1, dtype=dtype, devices=devices)
            reached = res.loss_curve[0] <= target
            first = np.where(reached.any(axis=-1), reached.argmax(axis=-1) + 1, np.iinfo(np.int64).max)
            best = int(first.argmin())
            found = first[best] != np.iinfo(np.int64).max
            rows.append(
                {
                    "condition_number": float(condition_number),
                    "optimizer": optimizer,
                    "best_learning_rate": rates[best] if found else np.nan,
                    "steps_to_target": int(first[best]) if found else -1,
                    "steps": steps,
                }
            )
    return pd.DataFrame(rows)
