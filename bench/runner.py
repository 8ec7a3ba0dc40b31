"""Run a suite: every cell timed and measured, the baselines and the floor in the same run."""

from __future__ import annotations

from typing import Any, NamedTuple

import jax
import numpy as np
import pandas as pd

import gdjax
from bench import baselines
from bench.cache import RunCache, problem_fingerprint
from bench.metrics import best_point_values, convergence_frame, mean_curve, point_column, summarize
from bench.progress import silent
from bench.suites import STOP_TOLERANCE, Cell, one_seed_where_deterministic, resolve_problem
from bench.timing import per_lr_step_ns, time_sweep, wall_times
from bench.tuned import fresh_seeds, tuned_table
from gdjax.step import watched_every_step

TEXTBOOK_TIMED_STEPS = 2_000
PYTHON_LOOP_TIMED_STEPS = 300


class SuiteTables(NamedTuple):
    """Everything a run of the suite measured, as tables (see bench.tables.SCHEMA)."""

    timing: pd.DataFrame
    convergence: pd.DataFrame
    curves: pd.DataFrame
    summary: pd.DataFrame
    flop_rate: float
    exp_rate: float
    # scikit-learn beside gdjax's SGD: None when scikit-learn is missing or the regression was not run
    sklearn: pd.DataFrame | None = None
    # steps against the condition number: None outside the default and quick profiles
    conditioning: pd.DataFrame | None = None
    # each optimizer's best rate rerun on fresh seeds (bench.tuned)
    tuned: pd.DataFrame | None = None
    # the classifiers on MNIST-1D and digits (bench.networks): None in a custom run
    networks: Any = None
    # the heatmaps over two hyperparameters and theory beside them (bench.grids): None in a custom run
    grids: Any = None
    # the runs of tuned.csv, a row per fresh seed (bench.metrics.convergence_frame): for paired comparisons
    fresh: pd.DataFrame | None = None


def timing_row(
    cell_problem,
    optimizer,
    implementation,
    includes,
    n_runs,
    steps,
    run_s,
    compile_s,
    cost,
    rates,
    textbook_ns,
):
    """One row of timing.csv; ``includes`` says what the timed program does beside the optimizer's step.

    The speedup over the textbook loop (plain GD) is given for gd rows only:
    other optimizers do other work a step.
    """
    ns, fastest, slowest = per_lr_step_ns(run_s, n_runs, steps)
    flop_floor_ns, full_floor_ns = baselines.floor_ns(cost, rates)
    return {
        "problem": cell_problem,
        "optimizer": optimizer,
        "implementation": implementation,
        "includes": includes,
        "n_runs": n_runs,
        "steps": steps,
        "compile_s": compile_s,
        "ns_per_lr_step": ns,
        "ns_per_lr_step_min": fastest,
        "ns_per_lr_step_max": slowest,
        "lr_steps_per_s": 1e9 / ns,
        "flop_per_lr_step": cost.flop,
        "floor_ns_per_lr_step": flop_floor_ns,
        "transcendentals_per_lr_step": cost.transcendentals,
        "floor_with_transcendentals_ns": full_floor_ns,
        "speedup_over_textbook": textbook_ns / ns if optimizer == "gd" else np.nan,
        "ratio_to_floor": ns / flop_floor_ns,
        "ratio_to_floor_with_transcendentals": ns / full_floor_ns,
    }


def run_suite(
    cells: list[Cell],
    *,
    dtype: str,
    repeats: int,
    devices=None,
    progress=silent,
    problems: dict[str, gdjax.Problem] | None = None,
    cache: RunCache | None = None,
) -> SuiteTables:
    """Run every cell, its runs split over ``devices`` (default: the default backend's); return the tables.

    ``problems`` maps the cells' problem names to problems (default: each
    name resolved by ``bench.suites.resolve_problem``). With a ``cache``,
    the floor, each cell and the tables after the cells are kept as they
    finish, and an interrupted run's finished pieces are loaded instead of
    run again. The baselines and the floor run in ``dtype`` too (float64
    under x64 mode, for this call only).
    """
    if problems is None:
        problems = {name: resolve_problem(name) for name in dict.fromkeys(cell.problem for cell in cells)}
    cells = [
        one_seed_where_deterministic(cell, not gdjax.seeds_matter(problems[cell.problem], cell.optimizer))
        for cell in cells
    ]
    cache = cache or RunCache(None)
    with jax.enable_x64(dtype == "float64"):
        return _run_cells(
            cells, problems, cache, dtype=dtype, repeats=repeats, devices=devices, progress=progress
        )


def _run_cells(cells, problems, cache, *, dtype, repeats, devices, progress) -> SuiteTables:
    progress("floor", "the multiply-add and exp rates of these devices")
    where = {"dtype": dtype, "repeats": repeats, "devices": [str(d) for d in devices or jax.devices()]}
    rates = cache.get(
        {"piece": "floor", **where}, lambda: baselines.measure_floor_rates(dtype, devices=devices)
    )
    fingerprints = {
        name: problem_fingerprint(problem, sorted({s for c in cells if c.problem == name for s in c.seeds}))
        for name, problem in problems.items()
    }
    textbook_ns = {}
    timing, convergence, curves, summary, reruns = [], [], [], [], {}
    for number, cell in enumerate(cells, 1):
        problem = problems[cell.problem]
        n_runs = cell.n_points() * len(cell.seeds)
        progress(
            "sweeps", f"{cell.problem} {cell.optimizer} ({n_runs} runs x {cell.steps:,} steps)",
            done=number, total=len(cells),
        )  # fmt: skip
        if cell.problem not in textbook_ns:
            textbook = cache.get(
                {"piece": "textbook", "problem": fingerprints[cell.problem], **where},
                lambda p=problem: _textbook_timing(p, dtype, repeats, rates),
            )
            textbook_ns[cell.problem] = textbook["ns"]
            timing.extend(textbook["rows"])
        done = cache.get(
            {"piece": "cell", "problem": fingerprints[cell.problem], **config_of(cell), **where},
            lambda c=cell, p=problem: _run_cell(c, p, dtype, repeats, devices, rates, textbook_ns[c.problem]),
        )
        timing.extend(done["timing"])
        convergence.append(done["convergence"])
        summary.append(done["summary"])
        reruns[cell.problem, cell.optimizer] = done.get("rerun")  # None from a piece cached before reruns
        curves.append(done["curve"])
    convergence = pd.concat(convergence, ignore_index=True)
    summary = pd.DataFrame(summary)
    after = {
        "piece": "after the cells",
        "cells": [config_of(c) for c in cells],
        "problems": fingerprints,
        **where,
    }
    progress(
        "tuned",
        "each cell's best point on fresh seeds"
        + (", scikit-learn" if "linear_regression" in problems else ""),
    )

    def after_the_cells():
        per_seed = []
        sklearn = (
            baselines.sklearn_comparison(
                problems["linear_regression"], repeats=repeats, dtype=dtype, devices=devices
            )
            if "linear_regression" in problems
            else None
        )
        tuned = tuned_table(
            summary,
            convergence,
            cells,
            problems,
            dtype=dtype,
            devices=devices,
            reruns=reruns,
            ns_per_run_step={
                (row["problem"], row["optimizer"]): row["ns_per_lr_step"]
                for row in timing
                if row["implementation"] == "gdjax.sweep"
            },
            per_seed=per_seed,
        )
        return sklearn, tuned, pd.concat(per_seed, ignore_index=True)

    sklearn, tuned, fresh = cache.get(after, after_the_cells)
    return SuiteTables(
        timing=pd.DataFrame(timing),
        convergence=convergence,
        curves=pd.concat(curves, ignore_index=True),
        summary=summary,
        flop_rate=rates.flop_per_s,
        exp_rate=rates.exp_per_s,
        sklearn=sklearn,
        tuned=tuned,
        fresh=fresh,
    )


def sweep_and_loop_rows(
    name, optimizer, problem, program, sweep_timing, *, rates, loop_steps, repeats, textbook_ns
) -> list[dict]:
    """Timing rows of a timed sweep and of a Python loop of its step (one run, its first rate).

    The floor counts the work of the step the sweep takes (a minibatch's with a batch size).
    """
    loop_s, cost = baselines.loop_seconds_and_cost(
        problem,
        program._make_optimizer,
        float(program.learning_rates[0]),
        steps=loop_steps,
        repeats=repeats,
        dtype=program.dtype,
        batch_size=program.batch_size,
    )
    n_runs = len(program.learning_rates) * len(program.seeds)
    common = dict(cost=cost, rates=rates, textbook_ns=textbook_ns)
    every_step = watched_every_step(
        program.batch_size, problem.n_examples, problem.loss_takes_key, program.evaluation_params
    )
    extras = [
        "loss every step" if every_step else "parameters checked every step",
        f"loss on all data every {program.log_every}",
        *(["change norm"] if program.tolerance is not None else []),
    ]
    sweep_includes = f"step + {' + '.join(extras)} ({program.dtype})"
    sweep = ("gdjax.sweep", sweep_includes, n_runs, program.steps, sweep_timing.run_s, sweep_timing.compile_s)
    loop_includes = "step + its loss" if every_step else "step"
    loop = ("python loop of jitted step", f"{loop_includes} ({program.dtype})", 1, loop_steps, loop_s, np.nan)
    return [timing_row(name, optimizer, *row, **common) for row in (sweep, loop)]


def config_of(cell: Cell) -> dict:
    """A cell as plain JSON-able values (for the cache key)."""
    return {
        **cell._asdict(),
        "learning_rates": [float(rate) for rate in cell.learning_rates],
        "grid": [[name, [float(value) for value in values]] for name, values in cell.grid],
        "points": [[[name, float(value)] for name, value in point] for point in cell.points],
    }


def _textbook_timing(problem, dtype, repeats, rates) -> dict:
    """The textbook numpy loop's ns per step and its timing row (none for a problem of your own)."""
    if not baselines.has_textbook_loop(problem):
        return {"ns": np.nan, "rows": []}
    textbook_s = wall_times(lambda: baselines.run_textbook_loop(problem, TEXTBOOK_TIMED_STEPS), repeats)
    ns = float(np.median(textbook_s)) / TEXTBOOK_TIMED_STEPS * 1e9
    gd_cost = baselines.step_cost(problem, gdjax.OPTIMIZERS["gd"], dtype)
    row = timing_row(
        problem.name,
        "gd",
        "textbook numpy loop",
        "step (numpy float64, as the textbook wrote it)",
        1,
        TEXTBOOK_TIMED_STEPS,
        textbook_s,
        np.nan,
        gd_cost,
        rates,
        ns,
    )
    return {"ns": ns, "rows": [row]}


def _run_cell(cell, problem, dtype, repeats, devices, rates, textbook_ns) -> dict:
    """One cell: its sweep timed and measured, and the Python loop of a jitted step beside it."""
    program = gdjax.prepare_sweep(
        problem,
        cell.optimizer,
        steps=cell.steps,
        **cell.sweep_points(),
        schedule=cell.schedule,
        seeds=cell.seeds,
        log_every=cell.log_every,
        dtype=dtype,
        devices=devices,
        tolerance=STOP_TOLERANCE,
    )
    sweep_timing, result = time_sweep(program, repeats)
    timing = sweep_and_loop_rows(
        cell.problem,
        cell.optimizer,
        problem,
        program,
        sweep_timing,
        rates=rates,
        loop_steps=PYTHON_LOOP_TIMED_STEPS,
        repeats=repeats,
        textbook_ns=textbook_ns,
    )
    cell_convergence = convergence_frame(result, problem)
    row = summarize(cell_convergence, problem)
    curve = mean_curve(result, row["best_learning_rate"], row["best_hyperparameters"])
    if not row["seeds_matter"]:  # a fresh seed would run the same numbers: the tuning run is the run
        rerun = result.at_points(point_column(result, row["best_learning_rate"], row["best_hyperparameters"]))
    else:  # the best point on the fresh seeds, by this grid's compiled program (no second compile)
        try:
            rerun = program.rerun(seeds=fresh_seeds(row), points=[best_point_values(row)])
            rerun = rerun.result(rerun.execute(sweep_timing.compiled))
        except ValueError:  # a grid of fewer runs than fresh seeds (off a CPU): tuned_table runs its own
            rerun = None
    return {
        "timing": timing,
        "convergence": cell_convergence,
        "summary": row,
        "curve": curve,
        "rerun": rerun,
    }
