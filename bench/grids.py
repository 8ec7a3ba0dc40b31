"""Heatmaps over two hyperparameters, each one compiled sweep, with theory beside them where it applies.

Each heatmap is a grid of (learning rate x a second hyperparameter) run as
one ``gdjax.sweep(grid=...)``. Per cell: the steps to the problem's target
(the start of the run's final stay at or below it, exact: full-batch runs
watch the loss every step; over several seeds the median, a seed that
never reached it counting as never), the final loss, and whether the run
diverged (``SweepResult.diverged_at``: the one rule of every table). Where the loss is quadratic
(``gdjax.theory``), the heavy ball's predicted optimum and stability limit
stand beside the measured best cell and the largest stable rate, and GD
and the heavy ball are run at their predicted optima to compare their
steps with the predicted ratio.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
import pandas as pd

import gdjax
from bench.metrics import median_steps
from bench.suites import KNOWN_PROBLEMS
from gdjax.theory import curvature


class Heatmap(NamedTuple):
    problem: str
    optimizer: str
    learning_rates: tuple[float, float]  # log-spaced, low and high
    axis: str  # the second hyperparameter, linear from low to high
    values: tuple[float, float]
    steps: int
    seeds: tuple[int, ...]


# (rates, second axis) points per profile; the quick profile's grids are 16 x 16.
GRID_POINTS = {"default": 32, "quick": 16}
HEATMAPS = (
    Heatmap("quadratic_k100", "momentum", (1e-3, 1.0), "momentum", (0.0, 0.99), 2_000, (0,)),
    Heatmap("linear_regression", "momentum", (1e-6, 1e-2), "momentum", (0.0, 0.99), 3_000, (0,)),
    Heatmap("xor", "adam", (1e-3, 1e1), "b1", (0.0, 0.99), 3_000, (0, 1, 2, 3)),
)
PROBLEMS = {"quadratic_k100": lambda: gdjax.quadratic(100.0), **KNOWN_PROBLEMS}


def run_heatmap(heatmap: Heatmap, profile: str, *, dtype: str, devices=None) -> tuple[pd.DataFrame, list]:
    """The heatmap's cells (one row each) and its theory rows (empty where the loss is not quadratic)."""
    problem = PROBLEMS[heatmap.problem]()
    n = GRID_POINTS[profile]
    rates = np.geomspace(*heatmap.learning_rates, n)
    values = np.linspace(*heatmap.values, n)
    program = gdjax.prepare_sweep(
        problem,
        heatmap.optimizer,
        grid={"learning_rate": rates, heatmap.axis: values},
        steps=heatmap.steps,
        seeds=heatmap.seeds,
        dtype=dtype,
        devices=devices,
    )
    compiled = program.compile()
    res = program.result(program.execute(compiled))
    steps = res.at_target_from
    median = median_steps(steps)
    cells = pd.DataFrame(
        {
            "problem": heatmap.problem,
            "optimizer": heatmap.optimizer,
            "steps": heatmap.steps,
            "n_seeds": len(heatmap.seeds),
            "learning_rate": res.grid["learning_rate"],
            "axis": heatmap.axis,
            "value": res.grid[heatmap.axis],
            "target_loss": problem.facts.target_loss,
            "steps_to_target_median": median,
            "reached_fraction": (steps >= 0).mean(axis=0),
            "final_loss_median": np.median(res.final_loss, axis=0),
            "diverged_fraction": (res.diverged_at >= 0).mean(axis=0),
        }
    )
    best = int(np.argmin(median)) if np.isfinite(median).any() else -1
    cells["best"] = np.arange(len(cells)) == best
    row, column = np.unravel_index(max(best, 0), (n, n))
    cells["best_on_edge"] = best >= 0 and (row in (0, n - 1) or column in (0, n - 1))
    theory = (
        _theory_rows(heatmap, problem, cells, program, compiled) if heatmap.optimizer == "momentum" else []
    )
    return cells, theory


def _theory_rows(heatmap, problem, cells, program, compiled) -> list[dict]:
    """Predicted against measured: the best cell, the stability limit at four momenta, the speedup.

    ``cells_apart``: how far the prediction lies from the measurement, in
    grid steps (of log rate, or of momentum); a stability limit between the
    largest stable rate and the next one is in (0, 1].
    """
    try:
        theory = curvature(problem)
    except ValueError:  # not a quadratic loss: no theory to draw
        return []
    common = {"problem": heatmap.problem, "optimizer": heatmap.optimizer, "kappa": theory.kappa}
    rates, betas = np.unique(cells["learning_rate"]), np.unique(cells["value"])
    rate_step, beta_step = np.log(rates[1] / rates[0]), betas[1] - betas[0]

    def row(quantity, predicted, measured, momentum=np.nan, step=None, log=False):
        scale = np.log if log else (lambda value: value)
        apart = np.nan if step is None else (scale(predicted) - scale(measured)) / step
        return {**common, "quantity": quantity, "momentum": momentum, "predicted": predicted,
                "measured": measured, "cells_apart": apart}  # fmt: skip

    best = cells[cells["best"]]
    predicted_rate, predicted_beta = theory.heavy_ball_optimum
    rows = [
        row("best learning_rate", predicted_rate, best["learning_rate"].iloc[0] if len(best) else np.nan,
            step=rate_step, log=True),
        row("best momentum", predicted_beta, best["value"].iloc[0] if len(best) else np.nan, step=beta_step),
    ]  # fmt: skip
    for beta in betas[np.round(np.linspace(0, len(betas) - 1, 5)).astype(int)[:4]]:  # 0, ~0.25, ~0.5, ~0.75
        stable = cells[(cells["value"] == beta) & (cells["diverged_fraction"] == 0)]["learning_rate"]
        rows.append(
            row("largest stable learning_rate", float(theory.heavy_ball_limit(beta)),
                stable.max() if len(stable) else np.nan, momentum=beta, step=rate_step, log=True)
        )  # fmt: skip
    # both optima on the heatmap's compiled program: GD is the heavy ball at momentum 0 (v = g + 0 v = g)
    optima = program.rerun(
        seeds=heatmap.seeds[:1],
        points=[
            {"learning_rate": theory.gd_optimal_rate, "momentum": 0.0},
            {"learning_rate": predicted_rate, "momentum": predicted_beta},
        ],
    )
    gd_steps, ball_steps = optima.result(optima.execute(compiled)).at_target_from[0]
    for quantity, predicted, measured in (
        ("gd steps at 2/(L+mu)", np.nan, gd_steps),
        ("heavy ball steps at its optimum", np.nan, ball_steps),
        ("speedup of the heavy ball over gd", theory.predicted_speedup,
         gd_steps / ball_steps if gd_steps > 0 and ball_steps > 0 else np.nan),
    ):  # fmt: skip
        rows.append(row(quantity, predicted, measured if measured != -1 else np.nan))
    return rows


class GridTables(NamedTuple):
    cells: pd.DataFrame  # grids.csv
    theory: pd.DataFrame  # theory.csv


def cells_from_convergence(convergence: pd.DataFrame, summary: pd.DataFrame) -> GridTables:
    """A custom run's heatmap cells (``--grid`` with one axis beside the rate), in grids.csv's columns.

    Steps to target as convergence.csv's (the start of the final stay), diverged as
    the engine records it (``diverged_at``); the best cell is summary.csv's
    best point. No theory (theory.csv's rows need a heatmap's own runs).
    """
    frames = []
    for (problem, optimizer), runs in convergence.groupby(["problem", "optimizer"], sort=False):
        best = summary[(summary["problem"] == problem) & (summary["optimizer"] == optimizer)].iloc[0]
        steps = runs["steps_to_target"].where(runs["steps_to_target"] >= 0, np.inf)
        by_point = runs.assign(steps=steps, diverged=runs["diverged_at"] >= 0).groupby(
            ["learning_rate", "hyperparameters"], sort=True
        )
        cells = by_point.agg(
            steps_to_target_median=("steps", "median"),
            reached_fraction=("steps", lambda s: float(np.isfinite(s).mean())),
            final_loss_median=("final_loss", "median"),
            diverged_fraction=("diverged", "mean"),
            target_loss=("target_loss", "first"),
            n_seeds=("seed", "size"),
        ).reset_index()
        ((axis, _),) = (item.split("=") for item in cells["hyperparameters"].iloc[:1])
        cells["axis"] = axis
        cells["value"] = [float(text.split("=")[1]) for text in cells["hyperparameters"]]
        cells["best"] = (cells["learning_rate"] == best["best_learning_rate"]) & (
            cells["hyperparameters"] == best["best_hyperparameters"]
        )
        rates, values = np.unique(cells["learning_rate"]), np.unique(cells["value"])
        on_edge = cells["learning_rate"].isin(rates[[0, -1]]) | cells["value"].isin(values[[0, -1]])
        cells["best_on_edge"] = bool((cells["best"] & on_edge).any())
        frames.append(
            cells.assign(
                problem=problem,
                optimizer=optimizer,
                steps=int(runs["steps"].iloc[0]),
                schedule=runs["schedule"].iloc[0],
            )
        )
    return GridTables(pd.concat(frames, ignore_index=True), pd.DataFrame())


def run_grids(profile: str, *, dtype: str, devices=None) -> GridTables:
    """Every heatmap of the profile (default or quick; full runs the default's)."""
    profile = "quick" if profile == "quick" else "default"
    cells, theory = [], []
    for heatmap in HEATMAPS:
        heatmap_cells, heatmap_theory = run_heatmap(heatmap, profile, dtype=dtype, devices=devices)
        cells.append(heatmap_cells)
        theory.extend(heatmap_theory)
    return GridTables(pd.concat(cells, ignore_index=True), pd.DataFrame(theory))
